// Nodes: capability hosts (`pincer node run`, apps): pending capability approvals and the
// node list. Needs the node.* methods.

import { View, pageHeader } from '../view.js';
import { h, button, iconButton, replace, relTime, shortId, emptyState, pill } from '../dom.js';
import { act, call, confirmDialog, toast } from '../ui.js';

class NodesView extends View {
  static label = 'Nodes';

  static requires = ['node.list'];

  setup() {
    const reload = () => { clearTimeout(this.t); this.t = setTimeout(() => this.load(), 150); };
    for (const e of ['node.pair.requested', 'node.pair.resolved', 'node.presence']) this.listen(this.gw.on(e, reload));
  }

  header() {
    return pageHeader('Nodes', 'Machines and apps that offer commands (system.run, canvas, camera…) to the agent.', iconButton('refresh', 'Refresh', () => this.load()));
  }

  async load() {
    const [list, pairs] = await Promise.all([
      call(this.gw, 'node.list', {}),
      this.gw.has('node.pair.list') ? call(this.gw, 'node.pair.list', {}) : Promise.resolve(null),
    ]);
    if (!list) return;
    const nodes = list.nodes || [];
    const pending = pairs?.pending || [];
    replace(this, this.header(),
      this.gw.has('node.pair.list') ? h('section', { class: 'section' }, h('h2', {}, 'Waiting for approval ', pill(String(pending.length), pending.length ? 'warn' : '')),
        pending.length ? h('div', { class: 'cards' }, pending.map((p) => this.pendingCard(p))) : emptyState('No pending capability requests', null, 'check')) : null,
      h('section', { class: 'section' }, h('h2', { text: 'Nodes' }),
        nodes.length ? h('table', { class: 'table', 'data-testid': 'node-table' },
          h('thead', {}, h('tr', {}, ['Node', 'Platform', 'Commands', 'State', 'Last seen', ''].map((t) => h('th', { text: t })))),
          h('tbody', {}, nodes.map((n) => h('tr', { 'data-testid': 'node-row', dataset: { nodeId: n.nodeId, approval: n.approvalState || '' } },
            h('td', {}, h('div', { class: 'cell-title' }, n.connected ? h('span', { class: 'live-dot' }) : null, h('strong', { text: n.displayName || shortId(n.nodeId, 12) })),
              h('code', { class: 'muted small', text: shortId(n.nodeId, 20) })),
            h('td', { class: 'muted', text: [n.platform, n.version].filter(Boolean).join(' · ') }),
            h('td', {}, (n.commands || []).length ? null : h('span', { class: 'muted', text: 'none approved yet' }), (n.commands || []).slice(0, 6).map((c) => h('code', { class: 'chip', text: c })), (n.commands || []).length > 6 ? h('span', { class: 'muted', text: ` +${n.commands.length - 6}` }) : null),
            h('td', {}, pill(n.connected ? 'online' : 'offline', n.connected ? 'ok' : ''), n.approvalState && n.approvalState !== 'approved' ? pill(n.approvalState, 'warn') : null),
            h('td', { class: 'muted', text: relTime(n.lastSeenAtMs) }),
            h('td', { class: 'row-actions' }, this.gw.has('node.pair.remove') ? iconButton('trash', 'Remove node', () => this.removeNode(n), { kind: 'ghost danger' }) : null)))))
          : emptyState('No nodes', 'Start “pincer node run” on a machine to offer its commands here.', 'nodes')));
  }

  pendingCard(p) {
    return h('article', { class: 'card pending', 'data-testid': 'pending-node', dataset: { requestId: p.requestId } },
      h('header', {}, h('strong', { text: p.displayName || shortId(p.nodeId, 12) }), pill('capabilities', 'warn')),
      h('dl', { class: 'facts' },
        h('dt', { text: 'Node' }), h('dd', {}, h('code', { text: shortId(p.nodeId, 20) })),
        h('dt', { text: 'Platform' }), h('dd', { text: [p.platform, p.version].filter(Boolean).join(' · ') || '—' }),
        h('dt', { text: 'Commands' }), h('dd', {}, (p.commands || []).map((c) => h('code', { class: 'chip', text: c }))),
        p.requiredApproveScopes?.length ? [h('dt', { text: 'Needs' }), h('dd', { text: p.requiredApproveScopes.join(', ') })] : null),
      h('div', { class: 'card-actions' },
        this.gw.has('node.pair.reject') ? button('Reject', () => this.decide('reject', p), { kind: 'ghost danger', testid: 'node-reject' }) : null,
        this.gw.has('node.pair.approve') ? button('Approve', () => this.decide('approve', p), { kind: 'primary', testid: 'node-approve' }) : null));
  }

  async decide(what, p) {
    if (await act(this.gw, `node.pair.${what}`, { requestId: p.requestId })) {
      toast(what === 'approve' ? 'Node approved' : 'Node rejected', 'ok');
      this.load();
    }
  }

  async removeNode(n) {
    if (!(await confirmDialog({ title: 'Remove this node?', body: `${n.displayName || n.nodeId} must pair again.`, confirm: 'Remove', danger: true }))) return;
    if (await act(this.gw, 'node.pair.remove', { nodeId: n.nodeId })) {
      toast('Node removed', 'ok');
      this.load();
    }
  }
}
customElements.define('pc-nodes', NodesView);
