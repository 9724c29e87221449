// Approvals: pending exec approval requests (the same cards as the global prompt) and the
// decisions made while this page was open.

import { View, pageHeader } from '../view.js';
import { h, replace, relTime, emptyState, pill } from '../dom.js';
import { approvals, approvalCard, commandText } from '../approvals.js';

class ApprovalsView extends View {
  static label = 'Approvals';

  static requires = ['exec.approval.resolve'];

  setup() {
    approvals.wire();
    const onChange = () => this.ready && this.load();
    approvals.addEventListener('change', onChange);
    this.listen(() => approvals.removeEventListener('change', onChange));
    this.every(1000, () => this.ready && approvals.pending.size && this.querySelectorAll('.approval-card').length !== approvals.pending.size && this.load());
  }

  header() {
    return pageHeader('Approvals', 'Commands the agent wants to run that need your decision. New requests also pop up over every view.');
  }

  load() {
    const pending = [...approvals.pending.values()];
    replace(this, this.header(),
      h('section', { class: 'section' }, h('h2', {}, 'Pending ', pill(String(pending.length), pending.length ? 'warn' : '')),
        pending.length ? h('div', { class: 'cards', 'data-testid': 'pending-approvals' }, pending.map((a) => approvalCard(a)))
          : emptyState('Nothing to approve', 'Exec requests that need a decision show up here as they arrive.', 'approvals')),
      h('section', { class: 'section' }, h('h2', { text: 'Decided while this page was open' }),
        approvals.resolved.length ? h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, ['Command', 'Decision', 'By', 'When'].map((t) => h('th', { text: t })))),
          h('tbody', {}, approvals.resolved.map((r) => h('tr', {},
            h('td', {}, h('code', { text: commandText(r.request || {}) })),
            h('td', {}, pill(r.decision || '—', r.decision === 'deny' ? 'error' : 'ok')),
            h('td', { class: 'muted', text: r.resolvedBy || '—' }),
            h('td', { class: 'muted', text: relTime(r.resolvedAt) })))))
          : h('p', { class: 'muted', text: 'None yet.' })));
  }
}
customElements.define('pc-approvals', ApprovalsView);
