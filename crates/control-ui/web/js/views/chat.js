// Chat (Control UI) and WebChat (`/chat`, data-mode="webchat"): session picker, streamed
// replies rendered as safe Markdown, expandable tool-call cards, abort, new session, model
// and thinking pickers, usage. Keyboard: Enter sends, Shift+Enter adds a line, Esc stops.

import { ctx } from '../context.js';
import { View } from '../view.js';
import { h, icon, button, iconButton, replace, clock, tokens, relTime, shortId, unavailable } from '../dom.js';
import { render as markdown } from '../markdown.js';
import { act, call, reportError, showError, toast } from '../ui.js';

const SESSION_KEY = 'pincer.chat.session';
const RESULT_PREVIEW = 20_000;

function uuid() {
  return crypto.randomUUID();
}

function textOf(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.filter((b) => b && (b.type === 'text' || b.type === 'output_text')).map((b) => b.text || '').join('');
}

function pretty(value) {
  if (value == null) return '';
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

function argsPreview(args) {
  let v = args;
  if (typeof v === 'string') {
    try { v = JSON.parse(v); } catch { return v.slice(0, 80); }
  }
  if (v && typeof v === 'object') {
    const first = Object.values(v).find((x) => typeof x === 'string');
    if (first) return first.length > 80 ? `${first.slice(0, 80)}…` : first;
    return JSON.stringify(v).slice(0, 80);
  }
  return String(v ?? '');
}

/** An expandable tool-call card; `setResult` fills it in later. */
function toolCard({ id, name, args }) {
  const status = h('span', { class: 'pill running', text: 'running' });
  const result = h('div', { class: 'tool-result' });
  const card = h('details', { class: 'tool-card', 'data-testid': 'tool-card', dataset: { toolCallId: id || '' } },
    h('summary', {}, icon('tool'), h('strong', { text: name || 'tool' }), h('span', { class: 'tool-args muted', text: argsPreview(args) }), status, icon('chevron', 'chev')),
    h('div', { class: 'tool-body' },
      h('div', { class: 'tool-section' }, h('h5', { text: 'Arguments' }), h('pre', {}, h('code', { text: pretty(args) || '{}' }))),
      result));
  card.setResult = (value, isError) => {
    status.className = `pill ${isError ? 'error' : 'ok'}`;
    status.textContent = isError ? 'error' : 'done';
    const text = typeof value === 'string' ? value : textOf(value) || pretty(value);
    const pre = h('pre', {}, h('code', { text: text.length > RESULT_PREVIEW ? `${text.slice(0, RESULT_PREVIEW)}\n…` : text }));
    replace(result, h('h5', { text: isError ? 'Error' : 'Result' }), pre,
      text.length > RESULT_PREVIEW ? button(`Show all ${text.length} characters`, (e) => {
        pre.firstChild.textContent = text;
        e.currentTarget.remove();
      }, { kind: 'ghost small' }) : null);
  };
  return card;
}

class ChatView extends View {
  static label = 'Chat';

  static requires = ['chat.history', 'chat.send'];

  setup() {
    this.webchat = this.dataset.mode === 'webchat';
    this.classList.add('chat-view');
    if (this.webchat) this.classList.add('webchat');
    this.sessionKey = new URLSearchParams(location.search).get('session') || localStorage.getItem(SESSION_KEY) || null;
    this.canonicalKey = null;
    this.run = null;
    this.shownSeqs = new Set();
    this.recentRuns = new Set(); // runs streamed on this page (their replies are on screen)
    this.sentRuns = new Set(); // runs this page started (their user messages are on screen)
    this.toolCards = new Map();
    this.sessions = [];
    this.models = [];
    this.search = '';
    this.build();
    this.listen(this.gw.on('chat', (p) => this.onChat(p)));
    this.listen(this.gw.on('agent', (p) => this.onAgent(p)));
    this.listen(this.gw.on('session.message', (p) => this.onSessionMessage(p)));
    this.listen(this.gw.on('sessions.changed', (p) => this.onSessionsChanged(p)));
    const gap = () => this.load();
    this.gw.addEventListener('gap', gap);
    this.listen(() => this.gw.removeEventListener('gap', gap));
  }

  build() {
    this.messagesEl = h('div', { class: 'messages', 'data-testid': 'messages', role: 'log', 'aria-live': 'polite' });
    this.scrollEl = h('div', { class: 'chat-scroll' }, this.messagesEl);
    this.input = h('textarea', {
      class: 'composer-input', rows: 1, placeholder: 'Message the assistant…', 'data-testid': 'composer', 'aria-label': 'Message',
      onkeydown: (e) => this.onKey(e),
    });
    this.sendBtn = iconButton('send', 'Send (Enter)', () => this.send(), { kind: 'primary round', testid: 'send' });
    this.stopBtn = iconButton('stop', 'Stop (Esc)', () => this.abort(), { kind: 'danger round', testid: 'abort' });
    this.stopBtn.hidden = true;
    this.modelSel = h('select', { class: 'input compact', 'aria-label': 'Model', 'data-testid': 'model-picker', onchange: () => this.patchSession({ model: this.modelSel.value || null }) });
    this.thinkSel = h('select', { class: 'input compact', 'aria-label': 'Thinking level', 'data-testid': 'thinking-picker', onchange: () => this.patchSession({ thinkingLevel: this.thinkSel.value || null }) });
    this.usageEl = h('div', { class: 'usage muted', 'data-testid': 'usage' });
    this.titleEl = h('div', { class: 'chat-title' });
    this.statusEl = h('div', { class: 'run-status muted', 'data-testid': 'run-status' });
    const composer = h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); this.send(); } },
      h('div', { class: 'composer-box' }, this.input, this.stopBtn, this.sendBtn),
      h('div', { class: 'composer-foot' }, this.statusEl,
        h('span', { class: 'hint muted' }, h('kbd', { text: 'Enter' }), ' send · ', h('kbd', { text: 'Shift+Enter' }), ' new line · ', h('kbd', { text: 'Esc' }), ' stop')));
    const toolbar = h('div', { class: 'chat-toolbar' }, this.titleEl,
      h('div', { class: 'chat-controls' },
        h('label', { class: 'control' }, h('span', { class: 'muted', text: 'Model' }), this.modelSel),
        h('label', { class: 'control' }, h('span', { class: 'muted', text: 'Thinking' }), this.thinkSel),
        this.usageEl));
    this.main = h('section', { class: 'chat-main' }, toolbar, this.scrollEl, composer);
    if (this.webchat) {
      replace(this, this.main);
      return;
    }
    this.searchInput = h('input', {
      class: 'input', type: 'search', placeholder: 'Search sessions', 'aria-label': 'Search sessions', 'data-testid': 'session-search',
      oninput: () => { this.search = this.searchInput.value; clearTimeout(this.searchT); this.searchT = setTimeout(() => this.loadSessions(), 200); },
    });
    this.sessionList = h('ul', { class: 'session-list', 'data-testid': 'session-list' });
    const side = h('aside', { class: 'chat-sessions' },
      h('div', { class: 'chat-sessions-head' }, this.searchInput,
        iconButton('plus', 'New session', () => this.newSession(), { kind: 'primary', testid: 'new-session' })),
      this.sessionList);
    replace(this, side, this.main);
  }

  routeChanged() {
    const key = new URLSearchParams(location.search).get('session');
    if (key && key !== this.sessionKey) this.select(key);
  }

  onKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.send();
    } else if (e.key === 'Escape' && this.run) {
      e.preventDefault();
      this.abort();
    }
  }

  async load() {
    if (!this.sessionKey) this.sessionKey = this.gw.hello?.snapshot?.sessionDefaults?.mainSessionKey || 'main';
    this.input.disabled = false;
    await Promise.all([this.loadHistory(), this.loadSessions(), this.loadModels()]);
    if (this.gw.has('sessions.subscribe')) call(this.gw, 'sessions.subscribe', {});
  }

  async select(key) {
    if (this.canonicalKey && this.gw.has('sessions.messages.unsubscribe')) {
      this.gw.request('sessions.messages.unsubscribe', { key: this.canonicalKey }).catch(() => {});
    }
    this.sessionKey = key;
    this.canonicalKey = null;
    this.run = null;
    this.setRunning(false);
    localStorage.setItem(SESSION_KEY, key);
    const url = new URL(location.href);
    url.searchParams.set('session', key);
    history.replaceState(null, '', url);
    await this.loadHistory();
    this.renderSessions();
    this.syncPickers();
    this.input.focus();
  }

  newSession() {
    const agent = this.gw.hello?.snapshot?.sessionDefaults?.defaultAgentId || 'main';
    const stamp = new Date().toISOString().slice(0, 10);
    const key = `agent:${agent}:dashboard:${stamp}-${uuid().slice(0, 6)}`;
    this.sessions.unshift({ key, label: 'New session', updatedAt: Date.now(), draft: true });
    this.select(key);
    toast('New session: send a message to start it', 'info');
  }

  // ---- history ----

  async loadHistory() {
    const key = this.sessionKey;
    let res;
    try {
      res = await this.gw.request('chat.history', { sessionKey: key, limit: 200 });
    } catch (e) {
      showError(e, 'chat.history failed');
      replace(this.messagesEl, h('div', { class: 'callout error', text: `Cannot load this session: ${e.message}` }));
      return;
    }
    if (key !== this.sessionKey) return;
    // `sessionKey` echoes what was asked ("main"); events carry the canonical key.
    this.canonicalKey = res.sessionInfo?.key || res.sessionKey || key;
    this.history = res;
    this.shownSeqs.clear();
    this.toolCards.clear();
    const nodes = [];
    if (res.hasMore) nodes.push(this.olderButton(res.nextCursor));
    for (const m of res.messages || []) nodes.push(...this.renderMessage(m));
    if (!(res.messages || []).length) nodes.push(this.emptyChat());
    replace(this.messagesEl, nodes);
    const info = res.sessionInfo || {};
    const active = info.activeRunIds?.[0] || res.inFlightRun?.runId;
    if (active && !this.run) {
      this.run = { runId: active, text: '', segStart: 0, container: null };
      this.setRunning(true, 'A reply is in progress…');
    }
    this.renderTitle();
    this.syncPickers();
    this.scrollToEnd(true);
    if (this.gw.has('sessions.messages.subscribe')) {
      this.gw.request('sessions.messages.subscribe', { key: this.canonicalKey }).catch((e) => showError(e, 'sessions.messages.subscribe failed'));
    }
  }

  /** "Load earlier messages": pages back with chat.history's `nextCursor`. */
  olderButton(cursor) {
    if (!cursor) return h('div', { class: 'history-more muted', text: 'Older messages are not shown.' });
    const btn = button('Load earlier messages', async () => {
      btn.disabled = true;
      const key = this.canonicalKey || this.sessionKey;
      try {
        const res = await this.gw.request('chat.history', { sessionKey: key, limit: 200, cursor });
        if (key !== (this.canonicalKey || this.sessionKey)) return;
        const el = this.scrollEl;
        const fromBottom = el.scrollHeight - el.scrollTop;
        const nodes = [];
        if (res.hasMore) nodes.push(this.olderButton(res.nextCursor));
        for (const m of res.messages || []) nodes.push(...this.renderMessage(m));
        btn.replaceWith(...nodes);
        el.scrollTop = el.scrollHeight - fromBottom;
      } catch (e) {
        btn.disabled = false;
        reportError(e, 'chat.history failed');
      }
    }, { kind: 'ghost small', iconName: 'chevron', testid: 'load-older' });
    return h('div', { class: 'history-more' }, btn);
  }

  emptyChat() {
    return h('div', { class: 'chat-empty', 'data-testid': 'chat-empty' },
      h('div', { class: 'brand-mark big', 'aria-hidden': 'true' }),
      h('h3', { text: 'How can I help?' }),
      h('p', { class: 'muted', text: 'Messages go to the agent of this session. Replies stream in as they are written.' }));
  }

  /** Re-reads the transcript (messages written by other clients) and keeps a streaming reply. */
  async syncHistory() {
    const key = this.canonicalKey || this.sessionKey;
    let res;
    try {
      res = await this.gw.request('chat.history', { sessionKey: key, limit: 200 });
    } catch (e) {
      showError(e, 'chat.history failed');
      return;
    }
    if (key !== (this.canonicalKey || this.sessionKey)) return;
    const streaming = this.run?.el;
    const runId = this.run?.runId;
    this.shownSeqs.clear();
    this.toolCards.clear();
    const nodes = [];
    for (const m of res.messages || []) {
      if (runId && m.__openclaw?.runId === runId && m.role !== 'user') continue;
      nodes.push(...this.renderMessage(m));
    }
    replace(this.messagesEl, nodes);
    if (streaming) this.messagesEl.append(streaming);
    this.scrollToEnd();
  }

  renderMessage(m) {
    const seq = m.__openclaw?.seq;
    if (seq != null) this.shownSeqs.add(seq);
    const role = m.role;
    const time = m.timestamp ? clock(m.timestamp) : '';
    if (role === 'user') {
      return [this.bubble('user', markdown(textOf(m.content)), time, m)];
    }
    if (role === 'assistant') {
      const parts = [];
      for (const b of Array.isArray(m.content) ? m.content : [{ type: 'text', text: String(m.content ?? '') }]) {
        if (!b) continue;
        if (b.type === 'text' && b.text) parts.push(markdown(b.text));
        else if (b.type === 'thinking' && b.thinking) parts.push(h('details', { class: 'thinking' }, h('summary', { text: 'Thinking' }), markdown(b.thinking)));
        else if (b.type === 'toolCall' || b.type === 'tool_use' || b.type === 'toolUse') {
          const card = toolCard({ id: b.id, name: b.name, args: b.arguments ?? b.input });
          if (b.id) this.toolCards.set(b.id, card);
          parts.push(card);
        }
      }
      if (m.stopReason === 'aborted' || m.stopReason === 'rpc') parts.push(h('div', { class: 'note muted', text: 'Stopped' }));
      if (m.errorMessage) parts.push(h('div', { class: 'callout error', text: m.errorMessage }));
      if (!parts.length) return [];
      const meta = [time, m.model, m.usage ? `${tokens(m.usage.input)} in · ${tokens(m.usage.output)} out` : null].filter(Boolean).join(' · ');
      return [this.bubble('assistant', parts, meta, m)];
    }
    if (role === 'toolResult' || role === 'tool') {
      const card = this.toolCards.get(m.toolCallId);
      if (card) {
        card.setResult(m.content, Boolean(m.isError));
        return [];
      }
      const orphan = toolCard({ id: m.toolCallId, name: m.toolName, args: {} });
      orphan.setResult(m.content, Boolean(m.isError));
      return [this.bubble('assistant', [orphan], time, m)];
    }
    const text = textOf(m.content) || (m.summary ?? '');
    return text ? [h('div', { class: 'note muted', text: `${role || 'note'}: ${text}` })] : [];
  }

  bubble(role, content, meta, m) {
    const el = h('div', { class: ['msg', role], 'data-testid': `msg-${role}`, dataset: { seq: m?.__openclaw?.seq ?? '' } },
      role === 'assistant' ? h('div', { class: 'avatar', 'aria-hidden': 'true' }) : null,
      h('div', { class: 'msg-body' }, h('div', { class: 'msg-content' }, content), meta ? h('div', { class: 'msg-meta muted', text: meta }) : null));
    return el;
  }

  scrollToEnd(force = false) {
    const el = this.scrollEl;
    const near = el.scrollHeight - el.scrollTop - el.clientHeight < 160;
    if (force || near) requestAnimationFrame(() => { el.scrollTop = el.scrollHeight; });
  }

  // ---- sending and streaming ----

  async send() {
    const text = this.input.value;
    if (!text.trim()) return;
    if (!this.gw.connected) {
      toast('Not connected to the gateway; your message was kept in the box.', 'error');
      return;
    }
    if (this.run) {
      toast('A reply is still streaming: stop it (Esc) or wait for it to finish.', 'info');
      return;
    }
    const idempotencyKey = uuid();
    this.recentRuns.add(idempotencyKey);
    this.sentRuns.add(idempotencyKey);
    this.input.value = '';
    this.messagesEl.querySelector('.chat-empty')?.remove();
    const userEl = this.bubble('user', markdown(text), clock(Date.now()));
    userEl.classList.add('pending');
    this.messagesEl.append(userEl);
    this.run = { runId: idempotencyKey, text: '', segStart: 0, container: null, userEl };
    this.startAssistant();
    this.setRunning(true, 'Sending…');
    this.scrollToEnd(true);
    const params = { sessionKey: this.canonicalKey || this.sessionKey, message: text, idempotencyKey };
    try {
      const res = await this.gw.request('chat.send', params);
      userEl.classList.remove('pending');
      if (this.run && this.run.runId === idempotencyKey) {
        this.run.runId = res?.runId || idempotencyKey;
        if (!this.run.started) this.setRunning(true, 'Waiting for the model…');
      }
      // A first message creates the session: list it.
      if (!this.webchat && !this.sessions.some((x) => x.key === this.canonicalKey && !x.draft)) this.loadSessions();
    } catch (e) {
      userEl.classList.remove('pending');
      userEl.classList.add('failed');
      this.failRun(`Not sent: ${e.message}`);
      this.input.value = text;
      reportError(e, 'chat.send failed');
    }
  }

  startAssistant() {
    const typing = h('div', { class: 'typing', 'aria-label': 'Assistant is writing' }, h('span'), h('span'), h('span'));
    const content = h('div', { class: 'msg-content' }, typing);
    const meta = h('div', { class: 'msg-meta muted' });
    const el = h('div', { class: 'msg assistant streaming', 'data-testid': 'msg-assistant' },
      h('div', { class: 'avatar', 'aria-hidden': 'true' }), h('div', { class: 'msg-body' }, content, meta));
    this.messagesEl.append(el);
    Object.assign(this.run, { el, content, meta, typing, segment: null });
  }

  segment() {
    const run = this.run;
    if (!run.el) this.startAssistant();
    if (!run.segment) {
      run.typing?.remove();
      run.segment = h('div', { class: 'segment' });
      run.content.append(run.segment);
    }
    return run.segment;
  }

  paint() {
    const run = this.run;
    if (!run || run.painting) return;
    run.painting = true;
    requestAnimationFrame(() => {
      run.painting = false;
      if (this.run !== run) return;
      const text = run.text.slice(run.segStart);
      replace(this.segment(), markdown(text));
      this.scrollToEnd();
    });
  }

  mine(p) {
    if (!p) return false;
    if (this.run && p.runId === this.run.runId) return true;
    const key = p.sessionKey;
    return key && (key === this.canonicalKey || key === this.sessionKey);
  }

  onChat(p) {
    if (!this.mine(p)) return;
    if (!this.run || this.run.runId !== p.runId) {
      // A run started elsewhere (another tab, the CLI, a channel): show its message, follow it.
      if (p.state === 'final' || p.state === 'aborted' || p.state === 'error') {
        if (!this.run) this.syncHistory();
        return;
      }
      this.run = { runId: p.runId, text: '', segStart: 0, container: null, external: true };
      this.recentRuns.add(p.runId);
      this.startAssistant();
      this.syncHistory();
    }
    const run = this.run;
    run.started = true;
    switch (p.state) {
      case 'status':
        this.setRunning(true, statusText(p));
        break;
      case 'delta': {
        const full = textOf(p.message?.content);
        if (full) {
          if (full.length < run.text.length && !full.startsWith(run.text.slice(0, full.length))) run.segStart = 0;
          run.text = full;
        } else if (p.replace) run.text = run.text.slice(0, run.segStart) + (p.deltaText || '');
        else run.text += p.deltaText || '';
        if (run.text.length < run.segStart) run.segStart = 0;
        this.setRunning(true, 'Writing…');
        this.paint();
        break;
      }
      case 'final': {
        const full = textOf(p.message?.content);
        if (full && full.length >= run.text.length - run.segStart) run.text = run.text.slice(0, run.segStart) + full.slice(0);
        this.finishRun(p.usage ? `${tokens(p.usage.input)} in · ${tokens(p.usage.output)} out` : '');
        if (run.external) this.syncHistory();
        break;
      }
      case 'aborted':
        this.finishRun('Stopped', true);
        break;
      case 'error':
        this.failRun(p.errorMessage || p.message?.content?.[0]?.text || `The run failed (${p.errorKind || 'error'})`);
        break;
      default:
    }
  }

  onAgent(p) {
    if (!this.run || p?.runId !== this.run.runId) return;
    if (p.stream === 'tool') {
      const d = p.data || {};
      if (d.phase === 'start') {
        this.segment();
        const card = toolCard({ id: d.toolCallId, name: d.name, args: d.args });
        this.toolCards.set(d.toolCallId, card);
        this.run.content.append(card);
        // Text after the tool goes into a new segment.
        this.run.segment = null;
        this.run.segStart = this.run.text.length;
        this.setRunning(true, `Running ${d.name}…`);
        this.scrollToEnd();
      } else if (d.phase === 'result') {
        this.toolCards.get(d.toolCallId)?.setResult(d.result, Boolean(d.isError));
      }
    } else if (p.stream === 'lifecycle' && p.data?.phase === 'error' && this.run) {
      this.failRun(p.data.error || 'The run failed');
    }
  }

  finishRun(meta, stopped = false) {
    const run = this.run;
    if (!run) return;
    if (run.text.slice(run.segStart)) replace(this.segment(), markdown(run.text.slice(run.segStart)));
    run.typing?.remove();
    run.el?.classList.remove('streaming');
    if (stopped) run.content?.append(h('div', { class: 'note muted', 'data-testid': 'stopped', text: 'Stopped' }));
    if (run.meta) run.meta.textContent = [clock(Date.now()), meta && !stopped ? meta : null].filter(Boolean).join(' · ');
    this.run = null;
    this.setRunning(false);
    this.refreshSessionRow();
  }

  failRun(message) {
    const run = this.run;
    if (run) {
      if (!run.el) this.startAssistant();
      run.typing?.remove();
      run.el.classList.remove('streaming');
      run.el.classList.add('failed');
      run.content.append(h('div', { class: 'callout error', 'data-testid': 'run-error', text: message }));
    }
    this.run = null;
    this.setRunning(false);
    toast(message, 'error', { title: 'The reply failed' });
  }

  setRunning(running, status = '') {
    this.stopBtn.hidden = !running;
    this.sendBtn.hidden = running;
    this.statusEl.textContent = running ? status : '';
    this.classList.toggle('running', running);
  }

  async abort() {
    if (!this.run) return;
    const { runId } = this.run;
    this.setRunning(true, 'Stopping…');
    try {
      const res = await this.gw.request('chat.abort', { sessionKey: this.canonicalKey || this.sessionKey, runId });
      if (!res?.aborted && this.run?.runId === runId) this.finishRun('', true);
    } catch (e) {
      reportError(e, 'chat.abort failed');
      this.setRunning(Boolean(this.run), 'Writing…');
    }
  }

  onSessionMessage(p) {
    if (!p || !(p.sessionKey === this.canonicalKey || p.sessionKey === this.sessionKey)) return;
    const seq = p.messageSeq ?? p.message?.__openclaw?.seq;
    if (seq != null && this.shownSeqs.has(seq)) return;
    const m = p.message || {};
    if (seq != null) this.shownSeqs.add(seq);
    // Our own user messages and the runs we streamed are already on screen.
    const ownUser = typeof m.idempotencyKey === 'string' && this.sentRuns.has(m.idempotencyKey.replace(/:user$/, ''));
    const runId = m.__openclaw?.runId;
    if ((m.role === 'user' && ownUser) || (runId && this.recentRuns.has(runId))) return;
    if (this.run && (m.role === 'assistant' || m.role === 'toolResult')) return; // streamed live
    const nodes = this.renderMessage(m);
    if (nodes.length) {
      this.messagesEl.querySelector('.chat-empty')?.remove();
      if (this.run?.el) this.run.el.before(...nodes);
      else this.messagesEl.append(...nodes);
      this.scrollToEnd();
    }
  }

  // ---- sessions, models, usage ----

  async loadSessions() {
    if (this.webchat || !this.gw.has('sessions.list')) {
      if (!this.webchat) replace(this.sessionList, h('li', { class: 'muted small pad' }, unavailable('The session list', ['sessions.list'])));
      return;
    }
    const params = { limit: 60 };
    if (this.search.trim()) params.search = this.search.trim();
    const res = await call(this.gw, 'sessions.list', params);
    if (!res) return;
    this.defaults = res.defaults || {};
    const drafts = this.sessions.filter((s) => s.draft && !(res.sessions || []).some((r) => r.key === s.key));
    this.sessions = [...drafts, ...(res.sessions || [])];
    this.renderSessions();
    this.syncPickers();
  }

  renderSessions() {
    if (!this.sessionList) return;
    const current = this.canonicalKey || this.sessionKey;
    if (!this.sessions.length) {
      replace(this.sessionList, h('li', { class: 'muted small pad', text: this.search ? 'No session matches.' : 'No sessions yet.' }));
      return;
    }
    replace(this.sessionList, this.sessions.map((s) => {
      const title = s.label || s.displayName || s.derivedTitle || shortKey(s.key);
      return h('li', {},
        h('button', {
          type: 'button', class: ['session-item', s.key === current || s.key === this.sessionKey ? 'active' : ''],
          'data-testid': 'session-item', dataset: { key: s.key },
          onclick: () => this.select(s.key),
        },
        h('span', { class: 'session-title', text: title }),
        h('span', { class: 'session-sub muted' },
          s.hasActiveRun ? h('span', { class: 'live-dot', title: 'A reply is in progress' }) : null,
          h('span', { text: shortKey(s.key) }), h('span', { text: relTime(s.updatedAt) }))));
    }));
  }

  currentRow() {
    const key = this.canonicalKey || this.sessionKey;
    return this.sessions.find((s) => s.key === key);
  }

  async refreshSessionRow() {
    if (!this.gw.has('sessions.describe')) return;
    try {
      const row = await this.gw.request('sessions.describe', { key: this.canonicalKey || this.sessionKey });
      const i = this.sessions.findIndex((s) => s.key === row.key);
      if (i >= 0) this.sessions[i] = row;
      else this.sessions.unshift(row);
      this.renderSessions();
      this.syncPickers();
    } catch (e) {
      // A session that does not exist yet is not an error worth a toast.
      if (!/not found|unknown session/i.test(e.message)) showError(e, 'sessions.describe failed');
    }
  }

  onSessionsChanged(p) {
    clearTimeout(this.sessionsT);
    this.sessionsT = setTimeout(() => this.loadSessions(), 250);
    if (!p?.sessionKey) return;
    const i = this.sessions.findIndex((s) => s.key === p.sessionKey);
    if (p.reason === 'delete') {
      if (i >= 0) this.sessions.splice(i, 1);
    } else if (p.session && (i >= 0 || !this.search.trim())) {
      // The event carries the fresh row (a run starting or ending): show it at once; a
      // session that is new to this list goes on top, as the list is newest first.
      if (i >= 0) this.sessions[i] = p.session;
      else this.sessions.unshift(p.session);
    } else {
      return;
    }
    this.renderSessions();
    if (p.sessionKey === this.canonicalKey) this.syncPickers();
  }

  async loadModels() {
    if (!this.gw.has('models.list')) {
      this.modelSel.disabled = true;
      this.thinkSel.disabled = true;
      replace(this.modelSel, h('option', { text: 'not available' }));
      replace(this.thinkSel, h('option', { text: 'not available' }));
      return;
    }
    const res = await call(this.gw, 'models.list', {});
    this.models = res?.models || [];
    this.syncPickers();
  }

  syncPickers() {
    const row = this.currentRow() || {};
    const d = this.history?.defaults || this.defaults || {};
    const provider = row.modelProvider || d.modelProvider;
    const model = row.model || d.model;
    const current = provider && model ? `${provider}/${model}` : '';
    const canPatch = this.gw.has('sessions.patch') && !row.draft && this.sessions.some((s) => s.key === row.key);
    if (this.gw.has('models.list')) {
      const opts = this.models.map((m) => h('option', { value: `${m.provider}/${m.id}`, text: m.name && m.name !== m.id ? `${m.name} (${m.provider})` : `${m.provider}/${m.id}`, disabled: m.available === false }));
      if (current && !this.models.some((m) => `${m.provider}/${m.id}` === current)) opts.unshift(h('option', { value: current, text: current }));
      if (!opts.length) opts.push(h('option', { value: '', text: 'no models configured' }));
      replace(this.modelSel, opts);
      this.modelSel.value = current;
      this.modelSel.disabled = !canPatch;
      this.modelSel.title = canPatch ? 'Model for this session' : 'Send a first message to create the session, then pick its model';
      const m = this.models.find((x) => `${x.provider}/${x.id}` === current);
      const levels = (m?.thinkingLevels || d.thinkingLevels || [{ id: 'off', label: 'off' }]).map((l) => (typeof l === 'string' ? { id: l, label: l } : l));
      replace(this.thinkSel, levels.map((l) => h('option', { value: l.id, text: l.label || l.id })));
      this.thinkSel.value = row.thinkingLevel || m?.thinkingDefault || d.thinkingDefault || levels[0]?.id || '';
      this.thinkSel.disabled = !canPatch || levels.length < 2;
    }
    const parts = [];
    if (row.inputTokens != null || row.outputTokens != null) parts.push(`${tokens(row.inputTokens || 0)} in · ${tokens(row.outputTokens || 0)} out`);
    const ctxTokens = row.contextTokens || d.contextTokens;
    if (ctxTokens) parts.push(`context ${tokens(ctxTokens)}`);
    if (row.estimatedCostUsd) parts.push(`$${row.estimatedCostUsd.toFixed(4)}`);
    this.usageEl.textContent = parts.join(' · ');
    this.renderTitle();
  }

  renderTitle() {
    const row = this.currentRow() || {};
    const key = this.canonicalKey || this.sessionKey || '';
    replace(this.titleEl,
      h('strong', { text: row.label || row.derivedTitle || (row.isMain ? 'Main session' : shortKey(key)) }),
      h('code', { class: 'muted small', 'data-testid': 'session-key', text: key }));
  }

  async patchSession(patch) {
    const key = this.canonicalKey || this.sessionKey;
    const res = await act(this.gw, 'sessions.patch', { key, ...patch });
    if (res) {
      toast(patch.model ? `Model: ${patch.model}` : `Thinking: ${patch.thinkingLevel}`, 'ok');
      if (res.entry) {
        const i = this.sessions.findIndex((s) => s.key === key);
        if (i >= 0) this.sessions[i] = { ...this.sessions[i], ...res.entry, key };
      }
      this.refreshSessionRow();
    } else {
      this.syncPickers();
    }
  }
}

function statusText(p) {
  const phases = {
    preparing_workspace: 'Preparing the workspace…', preparing_context: 'Preparing the context…',
    starting_model: 'Starting the model…', memory_flushing: 'Saving memory…',
  };
  const base = phases[p.phase] || 'Working…';
  return p.retry ? `${base} (retry ${p.retry.attempt}/${p.retry.maxAttempts}: ${p.retry.reason})` : base;
}

export function shortKey(key) {
  if (!key) return '';
  const m = /^agent:([^:]+):(.*)$/.exec(key);
  if (!m) return key;
  return m[1] === 'main' ? m[2] : `${m[1]} · ${m[2]}`;
}

customElements.define('pc-chat', ChatView);
export { ChatView, ctx };
