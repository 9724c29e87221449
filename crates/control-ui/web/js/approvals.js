// Exec approvals: one store fed by `exec.approval.requested` / `.resolved` events (and
// `exec.approval.list` after each connect), and a prominent prompt shown over any view.

import { ctx } from './context.js';
import { h, icon, button, duration } from './dom.js';
import { reportError, showError, toast } from './ui.js';

class ApprovalStore extends EventTarget {
  constructor() {
    super();
    this.pending = new Map();
    this.resolved = [];
    this.wired = false;
  }

  wire() {
    if (this.wired || !ctx.gw) return;
    this.wired = true;
    const gw = ctx.gw;
    gw.on('exec.approval.requested', (p) => this.add(p));
    gw.on('exec.approval.resolved', (p) => this.resolve(p));
    gw.onHello(() => this.reload());
    if (gw.connected) this.reload();
  }

  async reload() {
    const gw = ctx.gw;
    this.pending.clear();
    if (gw.has('exec.approval.list')) {
      try {
        const list = await gw.request('exec.approval.list', {});
        const items = Array.isArray(list) ? list : list?.approvals || list?.items || [];
        for (const a of items) this.add(a, false);
      } catch (e) {
        showError(e, 'exec.approval.list failed');
      }
    }
    this.changed();
  }

  add(a, notify = true) {
    if (!a?.id) return;
    this.pending.set(a.id, a);
    if (notify) this.changed();
  }

  resolve(p) {
    if (!p?.id) return;
    const a = this.pending.get(p.id);
    this.pending.delete(p.id);
    const entry = { ...(a || {}), ...p, request: p.request || a?.request, resolvedAt: p.ts || Date.now() };
    const seen = this.resolved.findIndex((r) => r.id === p.id);
    if (seen >= 0) this.resolved[seen] = { ...this.resolved[seen], ...entry, request: entry.request || this.resolved[seen].request };
    else this.resolved.unshift(entry);
    this.resolved.length = Math.min(this.resolved.length, 50);
    this.changed();
  }

  changed() {
    // Drop the ones that expired.
    const now = Date.now();
    for (const [id, a] of this.pending) if (a.expiresAtMs && a.expiresAtMs < now - 1000) this.pending.delete(id);
    ctx.setBadge('approvals', this.pending.size);
    this.dispatchEvent(new Event('change'));
  }

  async decide(id, decision) {
    try {
      await ctx.gw.request('exec.approval.resolve', { id, decision });
      // The gateway's exec.approval.resolved event may have arrived first.
      if (this.pending.has(id)) this.resolve({ id, decision, ts: Date.now(), resolvedBy: 'this page' });
      toast(decision === 'deny' ? 'Denied' : 'Approved', decision === 'deny' ? 'info' : 'ok');
    } catch (e) {
      reportError(e, 'exec.approval.resolve failed');
      if (e.details?.reason === 'APPROVAL_NOT_FOUND' || e.details?.reason === 'APPROVAL_ALREADY_RESOLVED') {
        this.pending.delete(id);
        this.changed();
      }
    }
  }
}

export const approvals = new ApprovalStore();

export function commandText(req = {}) {
  if (typeof req.command === 'string' && req.command) return req.command;
  if (Array.isArray(req.commandArgv)) return req.commandArgv.join(' ');
  if (Array.isArray(req.command)) return req.command.join(' ');
  return Object.keys(req).length ? JSON.stringify(req) : '—';
}

/** One approval card (used by the prompt and the Approvals view). */
export function approvalCard(a, { compact = false } = {}) {
  const req = a.request || {};
  const left = h('span', { class: 'expires muted' });
  const tick = () => {
    if (!a.expiresAtMs) return;
    const ms = a.expiresAtMs - Date.now();
    left.textContent = ms > 0 ? `expires in ${duration(ms)}` : 'expired';
  };
  tick();
  const timer = setInterval(() => (left.isConnected ? tick() : clearInterval(timer)), 1000);
  const facts = [
    ['Agent', req.agentId], ['Session', req.sessionKey], ['Directory', req.cwd], ['Host', req.host || req.nodeId],
    ['Policy', [req.security, req.ask].filter(Boolean).join(' / ')],
  ].filter(([, v]) => v);
  return h('article', { class: ['approval-card', compact ? 'compact' : ''], 'data-testid': 'approval-card', dataset: { id: a.id } },
    h('header', {}, icon('approvals'), h('strong', { text: 'Command needs approval' }), left),
    h('pre', { class: 'approval-command' }, h('code', { text: commandText(req) })),
    req.warningText ? h('div', { class: 'callout warn', text: req.warningText }) : null,
    facts.length ? h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: String(v) })])) : null,
    h('div', { class: 'approval-actions' },
      button('Deny', () => approvals.decide(a.id, 'deny'), { kind: 'ghost danger outline', testid: 'approval-deny' }),
      button('Always allow', () => approvals.decide(a.id, 'allow-always'), { kind: 'ghost', testid: 'approval-always' }),
      button('Allow once', () => approvals.decide(a.id, 'allow-once'), { kind: 'primary', testid: 'approval-allow' })));
}

class ApprovalPrompt extends HTMLElement {
  connectedCallback() {
    this.className = 'approval-prompt';
    this.hidden = true;
    approvals.wire();
    this.onChange = () => this.render();
    approvals.addEventListener('change', this.onChange);
    this.render();
  }

  disconnectedCallback() {
    approvals.removeEventListener('change', this.onChange);
  }

  render() {
    const items = [...approvals.pending.values()];
    // On the Approvals page itself the list is shown inline.
    const onPage = location.pathname.endsWith('/approvals');
    this.hidden = items.length === 0 || onPage;
    const first = items[0];
    this.replaceChildren(...(first ? [
      approvalCard(first),
      items.length > 1 ? h('p', { class: 'muted small more', text: `${items.length - 1} more waiting` }) : '',
    ] : []));
  }
}
customElements.define('pc-approval-prompt', ApprovalPrompt);
window.addEventListener('pincer:route', () => approvals.changed());
