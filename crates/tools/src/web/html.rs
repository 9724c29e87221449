//! A small HTML → Markdown / plain-text converter for `web_fetch`.
//!
//! Not a full HTML5 parser: it tokenises tags, drops non-content elements (script, style, head,
//! svg, nav chrome), maps structure to Markdown, decodes entities and collapses whitespace. That
//! is what a model needs from an article page, at a fraction of the cost of a DOM.

const SKIP: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "head", "iframe", "object", "canvas",
    "select", "button", "form",
];
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "nav",
    "ul",
    "ol",
    "table",
    "tr",
    "blockquote",
    "figure",
    "figcaption",
    "dl",
    "dt",
    "dd",
    "address",
    "details",
    "summary",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "hr",
    "li",
    "body",
    "html",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub title: Option<String>,
    pub text: String,
}

struct Writer {
    out: String,
    pending_space: bool,
    markdown: bool,
}

impl Writer {
    fn text(&mut self, s: &str) {
        if s.starts_with(char::is_whitespace) {
            self.pending_space = true;
        }
        for (i, word) in s.split_whitespace().enumerate() {
            if (i > 0 || self.pending_space)
                && !self.out.is_empty()
                && !self.out.ends_with(['\n', ' '])
            {
                self.out.push(' ');
            }
            self.out.push_str(word);
            self.pending_space = false;
        }
        if s.ends_with(char::is_whitespace) {
            self.pending_space = true;
        }
    }
    /// A closing marker (`**`, `](url)`) attaches to the preceding text; a pending space moves
    /// after it.
    fn raw_close(&mut self, s: &str) {
        self.out.push_str(s);
    }
    fn raw(&mut self, s: &str) {
        if self.pending_space && !self.out.is_empty() && !self.out.ends_with(['\n', ' ']) {
            self.out.push(' ');
        }
        self.pending_space = false;
        self.out.push_str(s);
    }
    fn newlines(&mut self, n: usize) {
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        if self.out.is_empty() {
            return;
        }
        let have = self.out.chars().rev().take_while(|c| *c == '\n').count();
        for _ in have..n {
            self.out.push('\n');
        }
        self.pending_space = false;
    }
}

/// Decode HTML entities.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[..e];
            let ch = if let Some(num) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
            {
                u32::from_str_radix(num, 16).ok().and_then(char::from_u32)
            } else if let Some(num) = name.strip_prefix('#') {
                num.parse::<u32>().ok().and_then(char::from_u32)
            } else {
                match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some(' '),
                    "mdash" => Some('—'),
                    "ndash" => Some('–'),
                    "hellip" => Some('…'),
                    "copy" => Some('©'),
                    "reg" => Some('®'),
                    "trade" => Some('™'),
                    "lsquo" => Some('‘'),
                    "rsquo" => Some('’'),
                    "ldquo" => Some('“'),
                    "rdquo" => Some('”'),
                    "middot" => Some('·'),
                    "bull" => Some('•'),
                    "euro" => Some('€'),
                    _ => None,
                }
            };
            ch.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn attr(tag_body: &str, name: &str) -> Option<String> {
    let lower = tag_body.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let start = from + pos;
        from = start + name.len();
        let before_ok = start == 0 || lower.as_bytes()[start - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let offset = tag_body.len() - rest.len() + 1;
        let value = tag_body[offset..].trim_start();
        let v = if let Some(q) = value.strip_prefix('"') {
            q.split('"').next().unwrap_or_default()
        } else if let Some(q) = value.strip_prefix('\'') {
            q.split('\'').next().unwrap_or_default()
        } else {
            value
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or_default()
        };
        return Some(decode_entities(v));
    }
    None
}

/// Convert an HTML document. `base` resolves relative links (markdown mode).
pub fn convert(html: &str, markdown: bool, base: Option<&url::Url>) -> Extracted {
    let mut w = Writer {
        out: String::new(),
        pending_space: false,
        markdown,
    };
    let mut title: Option<String> = None;
    let mut skip_depth: Vec<String> = Vec::new();
    let mut links: Vec<Option<String>> = Vec::new();
    let mut lists: Vec<(bool, usize)> = Vec::new(); // (ordered, counter)
    let mut pre = 0usize;
    let mut in_title = false;
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            emit_text(
                &mut w,
                rest,
                pre > 0,
                skip_depth.is_empty(),
                in_title,
                &mut title,
            );
            break;
        };
        emit_text(
            &mut w,
            &rest[..lt],
            pre > 0,
            skip_depth.is_empty(),
            in_title,
            &mut title,
        );
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |e| &after[e + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            break;
        };
        let body = &rest[1..gt];
        rest = &rest[gt + 1..];
        if body.starts_with('!') || body.starts_with('?') {
            continue;
        }
        let closing = body.starts_with('/');
        let body = body.trim_start_matches('/');
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        if name == "title" {
            in_title = !closing;
            continue;
        }
        if SKIP.contains(&name.as_str()) {
            if closing {
                if let Some(pos) = skip_depth.iter().rposition(|n| *n == name) {
                    skip_depth.truncate(pos);
                }
            } else if !body.ends_with('/') {
                skip_depth.push(name);
            }
            continue;
        }
        if !skip_depth.is_empty() {
            continue;
        }
        handle_tag(
            &mut w, &name, body, closing, &mut links, &mut lists, &mut pre, base,
        );
    }
    let mut text = String::new();
    let mut blank_run = 0;
    for line in w.out.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        text.push_str(line);
        text.push('\n');
    }
    Extracted {
        title: title.map(|t| t.split_whitespace().collect::<Vec<_>>().join(" ")),
        text: text.trim().to_owned(),
    }
}

fn emit_text(
    w: &mut Writer,
    s: &str,
    pre: bool,
    visible: bool,
    in_title: bool,
    title: &mut Option<String>,
) {
    if s.is_empty() {
        return;
    }
    let decoded = decode_entities(s);
    if in_title {
        title.get_or_insert_with(String::new).push_str(&decoded);
        return;
    }
    if !visible {
        return;
    }
    if pre {
        w.out.push_str(&decoded);
    } else {
        if decoded.trim().is_empty() {
            if decoded.contains(char::is_whitespace) {
                w.pending_space = true;
            }
            return;
        }
        w.text(&decoded);
    }
}

#[allow(clippy::too_many_arguments)]
fn handle_tag(
    w: &mut Writer,
    name: &str,
    body: &str,
    closing: bool,
    links: &mut Vec<Option<String>>,
    lists: &mut Vec<(bool, usize)>,
    pre: &mut usize,
    base: Option<&url::Url>,
) {
    let md = w.markdown;
    match name {
        "br" => w.newlines(1),
        "hr" => {
            w.newlines(2);
            if md {
                w.raw("---");
            }
            w.newlines(2);
        }
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            w.newlines(2);
            if !closing && md {
                let level = name[1..].parse::<usize>().unwrap_or(1);
                w.raw(&"#".repeat(level));
                w.raw(" ");
            }
        }
        "ul" | "ol" => {
            if closing {
                lists.pop();
            } else {
                lists.push((name == "ol", 0));
            }
            w.newlines(if lists.is_empty() { 2 } else { 1 });
        }
        "li" => {
            w.newlines(1);
            if !closing {
                let depth = lists.len().saturating_sub(1);
                let indent = "  ".repeat(depth);
                let marker = match lists.last_mut() {
                    Some((true, n)) => {
                        *n += 1;
                        format!("{n}. ")
                    }
                    _ => "- ".to_owned(),
                };
                w.raw(&format!("{indent}{marker}"));
            }
        }
        "pre" => {
            if closing {
                *pre = pre.saturating_sub(1);
                if md {
                    w.newlines(1);
                    w.raw_close("```");
                }
                w.newlines(2);
            } else {
                w.newlines(2);
                *pre += 1;
                if md {
                    w.raw("```");
                    w.newlines(1);
                }
            }
        }
        "blockquote" => {
            w.newlines(2);
            if !closing && md {
                w.raw("> ");
            }
        }
        "a" => {
            if closing {
                if let Some(Some(href)) = links.pop() {
                    w.raw_close(&format!("]({href})"));
                }
            } else {
                let href = attr(body, "href")
                    .filter(|h| {
                        !h.is_empty()
                            && !h.starts_with('#')
                            && !h.to_ascii_lowercase().starts_with("javascript:")
                    })
                    .map(|h| {
                        base.and_then(|b| b.join(&h).ok())
                            .map_or(h, |u| u.to_string())
                    });
                if md && href.is_some() {
                    w.raw("[");
                    links.push(href);
                } else {
                    links.push(None);
                }
            }
        }
        "strong" | "b" if md => {
            if closing {
                w.raw_close("**");
            } else {
                w.raw("**");
            }
        }
        "em" | "i" if md => {
            if closing {
                w.raw_close("*");
            } else {
                w.raw("*");
            }
        }
        "code" if md && *pre == 0 => {
            if closing {
                w.raw_close("`");
            } else {
                w.raw("`");
            }
        }
        "img" if md && !closing => {
            if let Some(alt) = attr(body, "alt").filter(|a| !a.trim().is_empty()) {
                w.raw(&format!("![{}]", alt.trim()));
            }
        }
        "td" | "th" if !closing => w.raw(if md { "| " } else { " " }),
        "td" | "th" => {}
        _ if BLOCK.contains(&name) => w.newlines(2),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_structure_to_markdown() {
        let html = r#"<html><head><title>The &amp; Title</title><style>p{}</style></head>
<body><nav>x</nav><h1>Hello</h1><p>Some <b>bold</b> and <a href="/x">a link</a>.</p>
<script>alert(1)</script><ul><li>one</li><li>two</li></ul><pre>let x = 1;
  y</pre><p>5 &lt; 6 &#x263A;</p></body></html>"#;
        let base = url::Url::parse("https://example.com/a/").ok();
        let e = convert(html, true, base.as_ref());
        assert_eq!(e.title.as_deref(), Some("The & Title"));
        assert!(e.text.contains("# Hello"), "{}", e.text);
        assert!(
            e.text
                .contains("Some **bold** and [a link](https://example.com/x)."),
            "{}",
            e.text
        );
        assert!(e.text.contains("- one\n- two"), "{}", e.text);
        assert!(e.text.contains("```\nlet x = 1;\n  y\n```"), "{}", e.text);
        assert!(e.text.contains("5 < 6 ☺"));
        assert!(!e.text.contains("alert"));
        let t = convert(html, false, None);
        assert!(t.text.contains("Some bold and a link."), "{}", t.text);
        assert!(!t.text.contains('#'));
    }
}
