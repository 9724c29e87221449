// Sessions: search, preview, reset, delete; open in chat.

import { View, pageHeader } from '../view.js';
import { h, iconButton, replace, relTime, tokens, emptyState } from '../dom.js';
import { act, call, confirmDialog, toast } from '../ui.js';
import { ctx } from '../context.js';
import { shortKey } from './chat.js';

class SessionsView extends View {
  static label = 'Sessions';

  static requires = ['sessions.list'];

  setup() {
    this.search = '';
    this.searchInput = h('input', {
      class: 'input', type: 'search', placeholder: 'Search by key, label or title', 'aria-label': 'Search sessions', 'data-testid': 'sessions-search',
      oninput: () => { clearTimeout(this.t); this.t = setTimeout(() => { this.search = this.searchInput.value; this.load(); }, 200); },
    });
    this.body = h('div', { class: 'card-list', 'data-testid': 'sessions-table' });
    this.preview = h('aside', { class: 'preview-pane', 'data-testid': 'session-preview', hidden: true });
    this.listen(this.gw.on('sessions.changed', () => { clearTimeout(this.ct); this.ct = setTimeout(() => this.load(), 300); }));
  }

  header() {
    return pageHeader('Sessions', 'Every conversation the gateway keeps, newest first.',
      this.searchInput, iconButton('refresh', 'Refresh', () => this.load()));
  }

  async load() {
    if (!this.contains(this.body)) replace(this, this.header(), h('div', { class: 'split' }, this.body, this.preview));
    const params = { limit: 200 };
    if (this.search.trim()) params.search = this.search.trim();
    const res = await call(this.gw, 'sessions.list', params);
    if (!res) return;
    if (this.gw.has('sessions.subscribe')) call(this.gw, 'sessions.subscribe', {});
    const rows = res.sessions || [];
    if (!rows.length) {
      replace(this.body, emptyState(this.search ? 'No session matches' : 'No sessions yet', this.search ? 'Try another search.' : 'Start one from the Chat view.', 'sessions'));
      return;
    }
    replace(this.body, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Session', 'Kind', 'Model', 'Tokens', 'Updated', ''].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows.map((s) => this.row(s)))),
    h('p', { class: 'muted small', text: `${rows.length} of ${res.totalCount ?? res.count ?? rows.length} sessions` }));
  }

  row(s) {
    const title = s.label || s.derivedTitle || shortKey(s.key);
    const has = (m) => this.gw.has(m);
    return h('tr', { 'data-testid': 'session-row', dataset: { key: s.key } },
      h('td', {}, h('div', { class: 'cell-title' },
        s.hasActiveRun ? h('span', { class: 'live-dot', title: 'A reply is in progress' }) : null,
        h('strong', { text: title })), h('code', { class: 'muted small', text: s.key })),
      h('td', {}, h('span', { class: 'pill', text: s.kind || s.chatType || '—' })),
      h('td', { class: 'muted', text: s.model ? `${s.modelProvider ? `${s.modelProvider}/` : ''}${s.model}` : '—' }),
      h('td', { class: 'muted', text: `${tokens(s.inputTokens)} / ${tokens(s.outputTokens)}` }),
      h('td', { class: 'muted', text: relTime(s.updatedAt) }),
      h('td', { class: 'row-actions' },
        has('sessions.preview') ? iconButton('eye', 'Preview', () => this.showPreview(s), { testid: 'session-preview-btn' }) : null,
        iconButton('chat', 'Open in chat', () => {
          localStorage.setItem('pincer.chat.session', s.key);
          ctx.navigate(`/?session=${encodeURIComponent(s.key)}`);
        }),
        has('sessions.reset') ? iconButton('reset', 'Reset (start a fresh transcript)', () => this.reset(s), { testid: 'session-reset' }) : null,
        has('sessions.delete') ? iconButton('trash', 'Delete', () => this.removeSession(s), { kind: 'ghost danger', testid: 'session-delete' }) : null));
  }

  async showPreview(s) {
    this.preview.hidden = false;
    replace(this.preview, h('div', { class: 'preview-head' }, h('strong', { text: s.label || shortKey(s.key) }),
      iconButton('x', 'Close preview', () => { this.preview.hidden = true; })), h('p', { class: 'muted', text: 'Loading…' }));
    const res = await call(this.gw, 'sessions.preview', { keys: [s.key], limit: 12, maxChars: 400 });
    const items = res?.previews?.[0]?.items || [];
    replace(this.preview,
      h('div', { class: 'preview-head' }, h('strong', { text: s.label || shortKey(s.key) }),
        iconButton('x', 'Close preview', () => { this.preview.hidden = true; })),
      items.length ? h('ol', { class: 'preview-items' }, items.map((it) => h('li', { class: it.role },
        h('span', { class: 'pill', text: it.role }), h('p', { text: it.text || '' }))))
        : h('p', { class: 'muted', text: res ? 'No messages.' : 'Preview failed.' }));
  }

  async reset(s) {
    const ok = await confirmDialog({ title: 'Reset this session?', body: `${s.key} gets a fresh transcript; the old one is kept on disk.`, confirm: 'Reset' });
    if (!ok) return;
    if (await act(this.gw, 'sessions.reset', { key: s.key })) {
      toast('Session reset', 'ok');
      this.load();
    }
  }

  async removeSession(s) {
    const ok = await confirmDialog({ title: 'Delete this session?', body: `${s.key} and its transcript will be deleted.`, confirm: 'Delete', danger: true });
    if (!ok) return;
    if (await act(this.gw, 'sessions.delete', { key: s.key, deleteTranscript: true })) {
      toast('Session deleted', 'ok');
      this.load();
    }
  }
}
customElements.define('pc-sessions', SessionsView);
