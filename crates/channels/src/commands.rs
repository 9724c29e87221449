//! Chat commands and directives (runtime spec §10).
//!
//! A *command* is a whole message starting with `/` (`/new`, `/status`, `/activation always`,
//! …). *Directives* (`/think`, `/fast`, `/verbose`, `/trace`, `/reasoning`, `/elevated`,
//! `/exec`, `/model`, `/queue`) may stand anywhere at a line start or after whitespace; they
//! are stripped from the text. A message consisting only of directives is *directive-only*
//! (persisted and acknowledged by the agent layer). Telegram's `/cmd@botname` form is
//! accepted. What each command does is decided by the agent layer; this module only parses.

use serde::Serialize;

/// Directive names and their aliases, mapped to the canonical name.
const DIRECTIVES: &[(&str, &str)] = &[
    ("think", "think"),
    ("thinking", "think"),
    ("t", "think"),
    ("fast", "fast"),
    ("verbose", "verbose"),
    ("v", "verbose"),
    ("trace", "trace"),
    ("reasoning", "reasoning"),
    ("reason", "reasoning"),
    ("elevated", "elevated"),
    ("elev", "elevated"),
    ("exec", "exec"),
    ("model", "model"),
    ("queue", "queue"),
];

/// Known commands (not directives). Unknown `/words` are ordinary text.
const COMMANDS: &[&str] = &[
    "new",
    "reset",
    "stop",
    "compact",
    "status",
    "models",
    "steer",
    "tell",
    "activation",
    "send",
    "usage",
    "context",
    "tools",
    "help",
    "commands",
    "whoami",
    "id",
    "tasks",
    "goal",
    "approve",
    "name",
    "session",
    "export-session",
    "export-trajectory",
    "subagents",
    "agents",
    "acp",
    "skill",
    "learn",
    "loop",
    "btw",
    "side",
    "allowlist",
    "config",
    "mcp",
    "plugins",
    "debug",
    "restart",
    "update",
    "tts",
    "login",
    "dashboard",
    "diagnostics",
    "openclaw",
    "bash",
    "pair",
];

/// A parsed chat command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatCommand {
    /// Canonical lower-case name without the slash (`new`, `activation`, …).
    pub name: String,
    /// Everything after the name, trimmed.
    pub args: String,
}

/// An inline directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Canonical name (`think`, `model`, …).
    pub name: String,
    /// Its argument tokens (`high`, `provider/model`, `host=sandbox security=full`).
    pub args: String,
}

/// The result of parsing one inbound text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ParsedText {
    /// A whole-message command, when the text is one.
    pub command: Option<ChatCommand>,
    pub directives: Vec<Directive>,
    /// The text with directives removed (the command text itself when `command` is set).
    pub body: String,
    /// Only directives, no other text.
    pub directive_only: bool,
    /// `! cmd` host shell shorthand (needs `commands.bash`).
    pub bash: Option<String>,
}

/// `/name@bot` → `name` when `@bot` is us (or no bot name is known).
fn command_word<'a>(word: &'a str, bot_username: Option<&str>) -> Option<&'a str> {
    let word = word.strip_prefix('/')?;
    let (name, at) = match word.split_once('@') {
        Some((n, at)) => (n, Some(at)),
        None => (word, None),
    };
    if let (Some(at), Some(bot)) = (at, bot_username) {
        if !at.eq_ignore_ascii_case(bot) {
            return None;
        }
    }
    (!name.is_empty()).then_some(name)
}

fn directive_name(name: &str) -> Option<&'static str> {
    DIRECTIVES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map(|(_, canonical)| *canonical)
}

/// How many following tokens a directive consumes as arguments.
fn directive_arity(name: &str, args: &[&str]) -> usize {
    match name {
        // `/exec host=… security=…`: every `key=value` token.
        "exec" => args.iter().take_while(|a| a.contains('=')).count(),
        // `/queue mode [debounce:… cap:… drop:…]`
        "queue" => {
            let first = usize::from(!args.is_empty());
            first
                + args
                    .iter()
                    .skip(first)
                    .take_while(|a| a.contains(':'))
                    .count()
        }
        _ => usize::from(!args.is_empty()),
    }
}

/// Parses `text`. `bot_username` accepts Telegram's `/cmd@bot` addressing.
pub fn parse(text: &str, bot_username: Option<&str>) -> ParsedText {
    let trimmed = text.trim();
    if let Some(rest) = trimmed.strip_prefix('!') {
        let cmd = rest.trim();
        if !cmd.is_empty() && rest.starts_with(' ') {
            return ParsedText {
                bash: Some(cmd.to_string()),
                body: trimmed.to_string(),
                ..ParsedText::default()
            };
        }
    }
    if trimmed.starts_with('/') {
        let (first, rest) = match trimmed.split_once(char::is_whitespace) {
            Some((f, r)) => (f, r.trim()),
            None => (trimmed, ""),
        };
        if let Some(name) = command_word(first, bot_username) {
            let lower = name.to_ascii_lowercase();
            if COMMANDS.contains(&lower.as_str()) {
                if lower == "bash" {
                    return ParsedText {
                        bash: Some(rest.to_string()),
                        body: trimmed.to_string(),
                        ..ParsedText::default()
                    };
                }
                return ParsedText {
                    command: Some(ChatCommand {
                        name: lower,
                        args: rest.to_string(),
                    }),
                    body: trimmed.to_string(),
                    ..ParsedText::default()
                };
            }
        }
    }
    strip_directives(text, bot_username)
}

fn strip_directives(text: &str, bot_username: Option<&str>) -> ParsedText {
    let mut directives = Vec::new();
    let mut lines_out: Vec<String> = Vec::new();
    for line in text.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let mut kept: Vec<&str> = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let token = tokens[i];
            let name = command_word(token, bot_username).and_then(directive_name);
            match name {
                Some(name) => {
                    let args = &tokens[i + 1..];
                    let n = directive_arity(name, args);
                    directives.push(Directive {
                        name: name.to_string(),
                        args: args[..n].join(" "),
                    });
                    i += 1 + n;
                }
                None => {
                    kept.push(token);
                    i += 1;
                }
            }
        }
        if kept.len() == tokens.len() {
            // Untouched lines keep their exact spacing.
            lines_out.push(line.to_string());
        } else {
            lines_out.push(kept.join(" "));
        }
    }
    let body = lines_out.join("\n").trim().to_string();
    ParsedText {
        command: None,
        directive_only: !directives.is_empty() && body.is_empty(),
        directives,
        body,
        bash: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_message_commands() {
        let p = parse("/new", None);
        assert_eq!(
            p.command,
            Some(ChatCommand {
                name: "new".into(),
                args: String::new()
            })
        );
        let p = parse("  /Activation   always ", None);
        assert_eq!(p.command.as_ref().map(|c| c.args.as_str()), Some("always"));
        assert_eq!(
            p.command.as_ref().map(|c| c.name.as_str()),
            Some("activation")
        );
        assert_eq!(
            parse("/reset soft keep going", None).command,
            Some(ChatCommand {
                name: "reset".into(),
                args: "soft keep going".into()
            })
        );
        // Unknown commands are plain text.
        let p = parse("/shrug hello", None);
        assert!(p.command.is_none() && p.directives.is_empty());
        assert_eq!(p.body, "/shrug hello");
        // A command not at the start is just text.
        assert!(parse("please /new", None).command.is_none());
    }

    #[test]
    fn telegram_bot_addressing() {
        assert_eq!(
            parse("/status@pincer_bot", Some("Pincer_Bot"))
                .command
                .map(|c| c.name),
            Some("status".into())
        );
        assert!(
            parse("/status@other_bot", Some("pincer_bot"))
                .command
                .is_none(),
            "a command addressed to another bot is not ours"
        );
    }

    #[test]
    fn directives_are_stripped_and_classified() {
        let p = parse("/think high explain monads", None);
        assert_eq!(
            p.directives,
            vec![Directive {
                name: "think".into(),
                args: "high".into()
            }]
        );
        assert_eq!(p.body, "explain monads");
        assert!(!p.directive_only);

        let p = parse("/t low /model openai/gpt-5", None);
        assert_eq!(
            p.directives
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            vec!["think", "model"]
        );
        assert!(p.directive_only && p.body.is_empty());

        let p = parse("/exec host=sandbox security=full run ls", None);
        assert_eq!(p.directives[0].args, "host=sandbox security=full");
        assert_eq!(p.body, "run ls");

        let p = parse("/queue collect debounce:2s cap:10 now please", None);
        assert_eq!(p.directives[0].args, "collect debounce:2s cap:10");
        assert_eq!(p.body, "now please");

        let p = parse("line one\n  indented /verbose on\nline three", None);
        assert_eq!(p.body, "line one\nindented\nline three");
        assert_eq!(p.directives[0].name, "verbose");
    }

    #[test]
    fn plain_text_is_untouched() {
        let text = "no commands here, just a path like a/b and 50/50 odds";
        let p = parse(text, None);
        assert_eq!(p.body, text);
        assert!(p.command.is_none() && p.directives.is_empty() && !p.directive_only);
    }

    #[test]
    fn bash_shorthand() {
        assert_eq!(parse("! ls -la", None).bash.as_deref(), Some("ls -la"));
        assert_eq!(parse("/bash uname", None).bash.as_deref(), Some("uname"));
        assert!(parse("!important", None).bash.is_none());
    }
}
