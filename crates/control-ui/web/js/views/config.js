// Config: the gateway's JSON5 file (config.get, secrets redacted), edited in place and saved
// with config.set + baseHash (optimistic concurrency). Validation errors from the gateway are
// shown on the offending line, next to the key, and listed below the editor.

import { View, pageHeader } from '../view.js';
import { h, button, iconButton, replace, icon } from '../dom.js';
import { call, reportError, toast, confirmDialog } from '../ui.js';

const LOCATION = /(?:^|\s)(\S+?):(\d+):(\d+) — (?:(\S+): )?(.*)$/;

/** Issues from a config.set error: `details.issues[]`, else `file:line:col — path: reason`. */
export function issuesOf(err) {
  const list = err?.details?.issues;
  if (Array.isArray(list) && list.length) {
    return list.map((i) => ({ line: i.line, col: i.col, path: i.path, message: i.message, file: i.file }));
  }
  const out = [];
  for (const l of String(err?.message || '').split('\n')) {
    const m = LOCATION.exec(l.trim());
    if (m) out.push({ file: m[1], line: Number(m[2]), col: Number(m[3]), path: m[4], message: m[5] });
  }
  return out;
}

class ConfigView extends View {
  static label = 'Config';

  static requires = ['config.get'];

  setup() {
    this.issues = [];
    this.text = h('textarea', {
      class: 'editor-input', spellcheck: false, wrap: 'off', 'data-testid': 'config-editor', 'aria-label': 'Configuration (JSON5)',
      oninput: () => { this.dirty = true; this.paint(); this.updateButtons(); },
      onscroll: () => this.syncScroll(),
      onkeydown: (e) => {
        if ((e.ctrlKey || e.metaKey) && e.key === 's') { e.preventDefault(); this.save(); }
        if (e.key === 'Tab' && !e.shiftKey) {
          e.preventDefault();
          const { selectionStart: a, selectionEnd: b, value } = this.text;
          this.text.value = `${value.slice(0, a)}  ${value.slice(b)}`;
          this.text.selectionStart = this.text.selectionEnd = a + 2;
          this.text.dispatchEvent(new Event('input'));
        }
      },
    });
    this.gutter = h('div', { class: 'editor-gutter', 'aria-hidden': 'true' });
    this.mirror = h('div', { class: 'editor-mirror', 'aria-hidden': 'true' });
    this.issuesEl = h('div', { class: 'issues', 'data-testid': 'config-issues' });
    this.meta = h('div', { class: 'muted small' });
    this.saveBtn = button('Save', () => this.save(), { kind: 'primary', iconName: 'check', testid: 'config-save' });
    this.revertBtn = button('Revert', () => this.revert(), { kind: 'ghost', testid: 'config-revert' });
  }

  header() {
    return pageHeader('Config', 'One JSON5 file with OpenClaw key names. Hot sections apply at once; the rest after a restart.',
      this.revertBtn, this.saveBtn, iconButton('refresh', 'Reload from the gateway', () => this.reload()));
  }

  async load() {
    if (this.dirty && this.loadedOnce) return; // keep unsaved edits across reconnects
    await this.reload();
  }

  async reload() {
    const res = await call(this.gw, 'config.get', {});
    if (!res) return;
    this.loadedOnce = true;
    this.doc = res;
    this.original = res.raw ?? '{\n}\n';
    this.text.value = this.original;
    this.dirty = false;
    this.issues = (res.issues || []).map((i) => (typeof i === 'string' ? { message: i } : i));
    replace(this, this.header(),
      h('div', { class: 'config-meta' }, this.meta),
      h('div', { class: 'editor' }, this.gutter, h('div', { class: 'editor-area' }, this.mirror, this.text)),
      this.issuesEl);
    replace(this.meta, h('code', { text: res.path || '' }), res.exists === false ? ' (not created yet: saving creates it)' : '',
      h('span', { text: ` · hash ${String(res.hash || '').slice(-10)}` }),
      res.valid === false ? h('span', { class: 'pill error', text: 'invalid' }) : null);
    this.paint();
    this.updateButtons();
  }

  updateButtons() {
    const canSet = this.gw.has('config.set');
    this.saveBtn.disabled = !canSet || !this.dirty;
    this.saveBtn.title = canSet ? 'Validate and save (Ctrl+S)' : 'config.set is not available on this gateway';
    this.revertBtn.disabled = !this.dirty;
  }

  paint() {
    const lines = this.text.value.split('\n');
    const byLine = new Map();
    for (const i of this.issues) if (i.line) byLine.set(i.line, [...(byLine.get(i.line) || []), i]);
    replace(this.gutter, lines.map((_, n) => h('div', { class: byLine.has(n + 1) ? 'err' : '', text: String(n + 1) })));
    replace(this.mirror, lines.map((l, n) => {
      const issues = byLine.get(n + 1);
      if (!issues) return h('div', { class: 'line', text: l || ' ' });
      return h('div', { class: 'line err', 'data-testid': 'config-error-line', dataset: { line: n + 1 } },
        h('span', { class: 'ghost', text: l }),
        h('span', { class: 'inline-issue', text: `  ⟵ ${issues.map((i) => `${i.path ? `${i.path}: ` : ''}${i.message}`).join('; ')}` }));
    }));
    replace(this.issuesEl, this.issues.length ? [
      h('h3', {}, icon('alert'), ` ${this.issues.length} problem${this.issues.length > 1 ? 's' : ''}`),
      h('ul', {}, this.issues.map((i) => h('li', {},
        h('button', { type: 'button', class: 'issue', 'data-testid': 'config-issue', onclick: () => this.jump(i) },
          i.line ? h('span', { class: 'pill error', text: `line ${i.line}${i.col ? `:${i.col}` : ''}` }) : null,
          i.path ? h('code', { text: i.path }) : null,
          h('span', { text: ` ${i.message}` }),
          i.allowedValues ? h('span', { class: 'muted', text: ` (allowed: ${i.allowedValues.join(', ')})` }) : null)))),
    ] : []);
    this.syncScroll();
  }

  syncScroll() {
    const { scrollTop, scrollLeft } = this.text;
    this.mirror.style.transform = `translate(${-scrollLeft}px, ${-scrollTop}px)`;
    this.gutter.style.transform = `translateY(${-scrollTop}px)`;
  }

  jump(issue) {
    if (!issue.line) return;
    const lines = this.text.value.split('\n');
    let pos = 0;
    for (let n = 0; n < issue.line - 1 && n < lines.length; n += 1) pos += lines[n].length + 1;
    const end = pos + (lines[issue.line - 1]?.length || 0);
    this.text.focus();
    this.text.setSelectionRange(pos + Math.max(0, (issue.col || 1) - 1), end);
    const lh = parseFloat(getComputedStyle(this.text).lineHeight) || 20;
    this.text.scrollTop = Math.max(0, (issue.line - 4) * lh);
  }

  async revert() {
    if (!(await confirmDialog({ title: 'Discard your changes?', body: 'The editor goes back to the file as it was loaded.', confirm: 'Discard', danger: true }))) return;
    this.text.value = this.original;
    this.dirty = false;
    this.issues = [];
    this.paint();
    this.updateButtons();
  }

  async save() {
    if (!this.dirty || !this.gw.has('config.set')) return;
    this.saveBtn.disabled = true;
    try {
      const res = await this.gw.request('config.set', { raw: this.text.value, baseHash: this.doc?.hash });
      this.issues = [];
      this.dirty = false;
      toast(res?.restart || res?.restartRequired?.length ? 'Saved; some changes need a gateway restart' : 'Saved and applied', 'ok');
      await this.reload();
    } catch (e) {
      this.issues = issuesOf(e);
      if (!this.issues.length) reportError(e, 'config.set failed');
      else toast(`${this.issues.length} problem${this.issues.length > 1 ? 's' : ''} in the config; nothing was saved`, 'error', { title: 'Not saved' });
      this.paint();
      if (this.issues[0]) this.jump(this.issues[0]);
      this.updateButtons();
    }
  }
}
customElements.define('pc-config', ConfigView);
