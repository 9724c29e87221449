// DOM helpers. Everything is built with createElement/textContent: no HTML string ever
// reaches the DOM (the CSP's Trusted Types rule would refuse it anyway).

/** `h('div', {class: 'x', onclick: fn}, child, 'text', [more])` */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) setProps(el, props);
  append(el, children);
  return el;
}

const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'title', 'placeholder', 'type',
  'selected', 'readOnly', 'rows', 'tabIndex', 'spellcheck', 'autofocus', 'open', 'name', 'id', 'htmlFor']);

function setProps(el, props) {
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (PROPS.has(k)) el[k] = v;
    else if (k === 'style') throw new Error('inline styles are not allowed (CSP)');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false || c === true) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

const SVG = 'http://www.w3.org/2000/svg';
// 24×24 stroke icons.
const ICONS = {
  chat: 'M4 5h16v11H9l-5 4z',
  sessions: 'M4 6h16M4 12h16M4 18h10',
  devices: 'M3 5h13v10H3zM7 19h5M19 9h2v10h-4',
  nodes: 'M12 3v4M12 17v4M3 12h4M17 12h4M8 8h8v8H8z',
  approvals: 'M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6zM8.5 12l2.5 2.5 4.5-5',
  channels: 'M4 12a8 8 0 0 1 16 0M7.5 12a4.5 4.5 0 0 1 9 0M12 12v8',
  config: 'M4 7h10M18 7h2M4 17h4M12 17h8M14 4v6M8 14v6',
  logs: 'M6 3h9l4 4v14H6zM9 11h7M9 15h7M9 19h4',
  health: 'M3 12h4l2-5 4 10 2-5h6',
  sun: 'M12 4V2M12 22v-2M4 12H2M22 12h-2M5.6 5.6L4.2 4.2M19.8 19.8l-1.4-1.4M5.6 18.4l-1.4 1.4M19.8 4.2l-1.4 1.4M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z',
  moon: 'M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5z',
  send: 'M4 12l16-8-6 16-2.5-6.5z',
  stop: 'M7 7h10v10H7z',
  plus: 'M12 5v14M5 12h14',
  trash: 'M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3',
  refresh: 'M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7',
  search: 'M11 4a7 7 0 1 0 0 14 7 7 0 0 0 0-14zM21 21l-5-5',
  check: 'M5 12.5l4.5 4.5L19 7',
  x: 'M6 6l12 12M18 6L6 18',
  chevron: 'M9 6l6 6-6 6',
  copy: 'M9 9h11v11H9zM5 15H4V4h11v1',
  menu: 'M4 7h16M4 12h16M4 17h16',
  tool: 'M14.5 5.5a4 4 0 0 0 4.9 4.9L21 12l-9 9-3-3 9-9zM3 21l4-4',
  external: 'M14 4h6v6M20 4l-9 9M18 14v6H4V6h6',
  pause: 'M8 5v14M16 5v14',
  play: 'M7 5l12 7-12 7z',
  reset: 'M4 12a8 8 0 1 0 3-6.2M4 4v5h5',
  eye: 'M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12zM12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z',
  link: 'M10 14a4 4 0 0 0 6 0l3-3a4 4 0 0 0-6-6l-1 1M14 10a4 4 0 0 0-6 0l-3 3a4 4 0 0 0 6 6l1-1',
  key: 'M15 3a6 6 0 1 0 0 0zM3 21l7-7M6 18l2 2M8 16l2 2',
  alert: 'M12 3l10 18H2zM12 10v5M12 18v.5',
};

export function icon(name, cls) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', cls ? `icon ${cls}` : 'icon');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name] || ICONS.x);
  svg.append(path);
  return svg;
}

export function button(label, onclick, { kind = '', iconName, title, disabled, type = 'button', testid } = {}) {
  return h('button', {
    type, class: ['btn', kind], onclick, title: title || undefined, disabled,
    'data-testid': testid,
  }, iconName ? icon(iconName) : null, label ? h('span', { text: label }) : null);
}

export function iconButton(name, title, onclick, { kind = 'ghost', testid, disabled } = {}) {
  return h('button', {
    type: 'button', class: ['btn', 'icon-only', kind], title, 'aria-label': title, onclick,
    'data-testid': testid, disabled,
  }, icon(name));
}

export function pill(text, kind = '') {
  return h('span', { class: ['pill', kind], text });
}

// ---- formatting ----

export function relTime(ms) {
  if (!ms) return '—';
  const d = Date.now() - ms;
  const abs = Math.abs(d);
  const suffix = d >= 0 ? 'ago' : 'from now';
  if (abs < 45_000) return d >= 0 ? 'just now' : 'in a moment';
  if (abs < 3_600_000) return `${Math.round(abs / 60_000)} min ${suffix}`;
  if (abs < 86_400_000) return `${Math.round(abs / 3_600_000)} h ${suffix}`;
  return `${Math.round(abs / 86_400_000)} d ${suffix}`;
}

export function duration(ms) {
  if (ms == null || Number.isNaN(ms)) return '—';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

export function clock(ms) {
  if (!ms) return '';
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function dateTime(ms) {
  if (!ms) return '—';
  return new Date(ms).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

export function tokens(n) {
  if (n == null) return '—';
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (n >= 10_000) return `${Math.round(n / 1000)}k`;
  if (n >= 1000) return `${(n / 1000).toFixed(1)}k`;
  return String(n);
}

export function bytes(n) {
  if (n == null) return '—';
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export function shortId(id, n = 8) {
  return id ? (id.length > n ? `${id.slice(0, n)}…` : id) : '—';
}

/** A card telling that this gateway lacks the methods a view needs (never fake data). */
export function unavailable(title, missing) {
  return h('div', { class: 'empty-state unavailable', 'data-testid': 'unavailable' },
    icon('alert', 'big'),
    h('h3', { text: `${title} is not available on this gateway` }),
    h('p', { text: 'This gateway does not implement ' },
      ...missing.flatMap((m, i) => [i ? ', ' : '', h('code', { text: m })]),
      ' yet. The view turns on by itself once a gateway that has them is connected.'));
}

export function emptyState(title, text, iconName = 'check') {
  return h('div', { class: 'empty-state' }, icon(iconName, 'big'), h('h3', { text: title }),
    text ? h('p', { text }) : null);
}

export function copyText(text) {
  return navigator.clipboard?.writeText(text);
}
