// Logs: live tail of the gateway's log file through logs.tail cursor polling, with a text
// filter and a level filter; pause, clear, follow.

import { View, pageHeader } from '../view.js';
import { h, button, replace } from '../dom.js';
import { showError } from '../ui.js';

const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
const MAX_LINES = 2000;

function parse(line) {
  try {
    const r = JSON.parse(line);
    const fields = { ...(r.fields || {}) };
    const message = fields.message ?? r.message ?? r.msg ?? '';
    delete fields.message;
    return { ts: r.timestamp || r.time || '', level: String(r.level || 'INFO').toUpperCase(), target: r.target || '', message: String(message), fields, raw: line };
  } catch {
    return { ts: '', level: 'INFO', target: '', message: line, fields: {}, raw: line };
  }
}

class LogsView extends View {
  static label = 'Logs';

  static requires = ['logs.tail'];

  setup() {
    this.lines = [];
    this.cursor = undefined;
    this.paused = false;
    this.follow = true;
    this.filter = h('input', { class: 'input', type: 'search', placeholder: 'Filter (text or key=value)', 'aria-label': 'Filter logs', 'data-testid': 'logs-filter', oninput: () => this.paint() });
    this.level = h('select', { class: 'input compact', 'aria-label': 'Minimum level', 'data-testid': 'logs-level', onchange: () => this.paint() },
      LEVELS.map((l) => h('option', { value: l, text: `${l.toLowerCase()}+`, selected: l === 'DEBUG' })));
    this.pauseBtn = button('Pause', () => this.togglePause(), { kind: 'ghost', iconName: 'pause', testid: 'logs-pause' });
    this.list = h('div', { class: 'log-list', 'data-testid': 'log-list', role: 'log', onscroll: () => {
      const el = this.list;
      this.follow = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    } });
    this.info = h('div', { class: 'muted small' });
    replace(this, this.header(), this.list, this.info);
    this.every(1000, () => this.ready && !this.paused && this.gw.connected && this.poll());
  }

  header() {
    return pageHeader('Logs', 'The gateway log, live.', this.filter, this.level, this.pauseBtn,
      button('Clear', () => { this.lines = []; this.paint(); }, { kind: 'ghost', iconName: 'trash' }));
  }

  load() {
    if (!this.contains(this.list)) replace(this, this.header(), this.list, this.info);
    this.poll();
  }

  togglePause() {
    this.paused = !this.paused;
    replace(this.pauseBtn, ...button(this.paused ? 'Resume' : 'Pause', null, { iconName: this.paused ? 'play' : 'pause' }).childNodes);
  }

  async poll() {
    if (this.polling) return;
    this.polling = true;
    try {
      const params = this.cursor == null ? { limit: 300 } : { cursor: this.cursor, limit: 1000, maxBytes: 500_000 };
      const res = await this.gw.request('logs.tail', params);
      if (res.reset) this.lines.push(parse(JSON.stringify({ level: 'INFO', fields: { message: '— log file rotated —' } })));
      this.cursor = res.cursor;
      if (res.lines?.length) {
        this.lines.push(...res.lines.map(parse));
        if (this.lines.length > MAX_LINES) this.lines.splice(0, this.lines.length - MAX_LINES);
        this.paint();
      }
      this.info.textContent = `${res.file || ''} · ${this.lines.length} lines kept${res.truncated ? ' · older lines skipped' : ''}`;
      this.failed = false;
    } catch (e) {
      if (!this.failed) showError(e, 'logs.tail failed');
      this.failed = true;
    } finally {
      this.polling = false;
    }
  }

  paint() {
    const min = LEVELS.indexOf(this.level.value);
    const q = this.filter.value.trim().toLowerCase();
    const shown = this.lines.filter((l) => (LEVELS.indexOf(l.level) < 0 || LEVELS.indexOf(l.level) >= min) && (!q || l.raw.toLowerCase().includes(q)));
    replace(this.list, shown.slice(-800).map((l) => h('div', { class: ['log-line', `lvl-${l.level.toLowerCase()}`], 'data-testid': 'log-line' },
      h('span', { class: 'log-ts', text: l.ts ? l.ts.replace('T', ' ').replace(/\.\d+Z$/, 'Z').slice(11) : '' }),
      h('span', { class: 'log-level', text: l.level }),
      h('span', { class: 'log-target', text: l.target.replace(/^pincer_/, '') }),
      h('span', { class: 'log-msg' }, l.message,
        Object.keys(l.fields).length ? h('span', { class: 'log-fields', text: Object.entries(l.fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') }) : null))));
    if (!shown.length) this.list.append(h('div', { class: 'muted pad', text: this.lines.length ? 'No line matches the filter.' : 'Waiting for log lines…' }));
    if (this.follow) this.list.scrollTop = this.list.scrollHeight;
  }
}
customElements.define('pc-logs', LogsView);
