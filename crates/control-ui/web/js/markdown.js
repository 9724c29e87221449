// A small, safe Markdown renderer for model and user text. It builds DOM nodes and puts
// every piece of text in with textContent / text nodes: HTML in the input stays literal
// text (`<img onerror=…>` shows as those characters). Links keep only http(s) and mailto
// URLs and open in a new tab without referrer; images are shown as links (no remote loads).

import { h, icon, copyText } from './dom.js';

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST = /^( *)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
const TABLE_RULE = /^ *\|? *:?-{1,}:? *(\| *:?-{1,}:? *)*\|? *$/;

export function safeHref(url) {
  const u = String(url || '').trim();
  if (/^(https?:|mailto:)/i.test(u)) {
    try {
      const parsed = new URL(u);
      if (['http:', 'https:', 'mailto:'].includes(parsed.protocol)) return parsed.href;
    } catch { /* not a URL */ }
  }
  return null;
}

function link(text, url) {
  const href = safeHref(url);
  if (!href) return document.createTextNode(text === url ? text : `${text} (${url})`);
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', text });
}

const INLINE_SOURCE = [
  '(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)', // 1,2 code span
  '!?\\[([^\\]\\n]{0,500})\\]\\(\\s*<?([^)\\s>]+)>?(?:\\s+"[^"\\n]*")?\\s*\\)', // 3,4 link / image
  '(\\*\\*|__)(?=\\S)([\\s\\S]*?\\S)\\5', // 5,6 strong
  '(\\*|_)(?=[^\\s*_])([\\s\\S]*?[^\\s\\\\])\\7(?![*\\w])', // 7,8 em
  '~~(?=\\S)([\\s\\S]*?\\S)~~', // 9 strike
  '(https?:\\/\\/[^\\s<>"\']*[^\\s<>"\'.,;:!?)\\]])', // 10 bare URL
  '(\\\\[\\\\`*_{}\\[\\]()#+\\-.!~|<>])', // 11 escape
  '( {2,}\\n|\\\\\\n|\\n)', // 12 line break
].join('|');

/** Inline Markdown → nodes appended to `parent`. */
export function inline(text, parent) {
  // A regex per call: the recursion below must not share `lastIndex`.
  const INLINE = new RegExp(INLINE_SOURCE, 'g');
  let last = 0;
  let m;
  while ((m = INLINE.exec(text)) !== null) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    last = INLINE.lastIndex;
    if (m[1]) parent.append(h('code', { text: m[2] }));
    else if (m[3] !== undefined) parent.append(link(m[3] || m[4], m[4]));
    else if (m[5]) inline(m[6], parent.appendChild(h('strong')));
    else if (m[7]) {
      // `_` inside a word (snake_case) is not emphasis.
      if (m[7] === '_' && m.index > 0 && /\w/.test(text[m.index - 1])) {
        parent.append(m[0][0]);
        last = m.index + 1;
        INLINE.lastIndex = last;
        continue;
      }
      inline(m[8], parent.appendChild(h('em')));
    } else if (m[9]) inline(m[9], parent.appendChild(h('del')));
    else if (m[10]) parent.append(link(m[10], m[10]));
    else if (m[11]) parent.append(m[11].slice(1));
    else if (m[12]) parent.append(h('br'));
    if (m[0].length === 0) INLINE.lastIndex += 1;
  }
  if (last < text.length) parent.append(text.slice(last));
  return parent;
}

function codeBlock(lang, code) {
  const copy = h('button', { type: 'button', class: 'code-copy', title: 'Copy code', 'aria-label': 'Copy code' }, icon('copy'));
  copy.addEventListener('click', () => {
    Promise.resolve(copyText(code)).then(() => {
      copy.classList.add('done');
      setTimeout(() => copy.classList.remove('done'), 1200);
    }).catch(() => copy.classList.add('failed'));
  });
  return h('div', { class: 'code-block' },
    h('div', { class: 'code-head' }, h('span', { class: 'code-lang', text: lang || 'text' }), copy),
    h('pre', {}, h('code', { class: lang ? `lang-${lang.replace(/[^\w-]/g, '')}` : '', text: code })));
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

function table(header, rule, rows) {
  const aligns = splitRow(rule).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : ''));
  const cell = (tag, text, i) => inline(text, h(tag, { class: aligns[i] ? `align-${aligns[i]}` : '' }));
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, splitRow(header).map((c, i) => cell('th', c, i)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, splitRow(r).map((c, i) => cell('td', c, i)))))));
}

function isBlockStart(line, next) {
  return FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line) || LIST.test(line) ||
    (line.includes('|') && next !== undefined && TABLE_RULE.test(next) && next.includes('-'));
}

/** Block Markdown → nodes appended to `parent`. */
export function blocks(text, parent) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i += 1; continue; }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i += 1;
      while (i < lines.length && !(lines[i].trim().startsWith(fence[0].repeat(fence.length)) && lines[i].trim().replace(new RegExp(`^\\${fence[0]}+`), '').trim() === '')) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // closing fence (or end of a still-streaming message)
      parent.append(codeBlock(m[2], body.join('\n')));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      parent.append(inline(m[2], h(`h${Math.min(6, m[1].length + 2)}`)));
      i += 1;
      continue;
    }
    if (HR.test(line)) {
      parent.append(h('hr'));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { body.push(m[1]); i += 1; }
      parent.append(blocks(body.join('\n'), h('blockquote')));
      continue;
    }
    if ((m = LIST.exec(line))) {
      const indent = m[1].length;
      const ordered = /\d/.test(m[2]);
      const list = ordered ? h('ol', { start: parseInt(m[2], 10) !== 1 ? parseInt(m[2], 10) : undefined }) : h('ul');
      while (i < lines.length) {
        const im = LIST.exec(lines[i]);
        if (!im || im[1].length !== indent || /\d/.test(im[2]) !== ordered) break;
        const body = [im[3]];
        i += 1;
        while (i < lines.length) {
          const l = lines[i];
          if (!l.trim()) {
            const nextIndented = i + 1 < lines.length && /^\s+/.test(lines[i + 1]) && (lines[i + 1].length - lines[i + 1].trimStart().length) > indent;
            if (!nextIndented) break;
            body.push('');
            i += 1;
            continue;
          }
          const lead = l.length - l.trimStart().length;
          const sub = LIST.exec(l);
          if (sub && sub[1].length <= indent) break;
          if (lead <= indent && isBlockStart(l, lines[i + 1])) break;
          body.push(lead > indent ? l.slice(Math.min(lead, indent + 2)) : l);
          i += 1;
        }
        const li = h('li');
        const task = /^\[([ xX])\]\s+/.exec(body[0]);
        if (task) {
          body[0] = body[0].slice(task[0].length);
          li.classList.add('task');
          li.append(h('input', { type: 'checkbox', checked: task[1] !== ' ', disabled: true }));
        }
        if (body.length === 1) inline(body[0], li);
        else blocks(body.join('\n'), li);
        list.append(li);
      }
      parent.append(list);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      const header = line;
      const rule = lines[i + 1];
      const rows = [];
      i += 2;
      while (i < lines.length && lines[i].includes('|') && lines[i].trim()) { rows.push(lines[i]); i += 1; }
      parent.append(table(header, rule, rows));
      continue;
    }
    const para = [line];
    i += 1;
    while (i < lines.length && lines[i].trim() && !isBlockStart(lines[i], lines[i + 1])) {
      para.push(lines[i]);
      i += 1;
    }
    parent.append(inline(para.join('\n'), h('p')));
  }
  return parent;
}

/** Markdown text → a `div.md` element. */
export function render(text) {
  return blocks(text || '', h('div', { class: 'md' }));
}
