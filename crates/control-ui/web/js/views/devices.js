// Devices: pending pairing requests (approve / reject), paired devices (revoke a role's
// token, remove). Live: device.pair.requested / resolved / changed.

import { View, pageHeader } from '../view.js';
import { h, button, iconButton, replace, relTime, shortId, emptyState, pill } from '../dom.js';
import { act, call, confirmDialog, toast } from '../ui.js';
import { ctx } from '../context.js';

class DevicesView extends View {
  static label = 'Devices';

  static requires = ['device.pair.list'];

  setup() {
    const reload = () => { clearTimeout(this.t); this.t = setTimeout(() => this.load(), 150); };
    for (const e of ['device.pair.requested', 'device.pair.resolved', 'device.pair.changed', 'presence']) this.listen(this.gw.on(e, reload));
  }

  header() {
    return pageHeader('Devices', 'Browsers, CLIs and apps that sign in with their own key.', iconButton('refresh', 'Refresh', () => this.load()));
  }

  async load() {
    const res = await call(this.gw, 'device.pair.list', {});
    if (!res) return;
    const pending = res.pending || [];
    const paired = res.paired || [];
    ctx.setBadge('devices', pending.length);
    const me = this.gw.identity?.id;
    replace(this, this.header(),
      h('section', { class: 'section' }, h('h2', {}, 'Waiting for approval ', pill(String(pending.length), pending.length ? 'warn' : '')),
        pending.length ? h('div', { class: 'cards', 'data-testid': 'pending-devices' }, pending.map((p) => this.pendingCard(p)))
          : emptyState('No pending requests', 'New devices that connect from another machine show up here.', 'check')),
      h('section', { class: 'section' }, h('h2', { text: 'Paired devices' }),
        paired.length ? h('table', { class: 'table', 'data-testid': 'paired-devices' },
          h('thead', {}, h('tr', {}, ['Device', 'Client', 'Roles', 'Approved', 'Last seen', ''].map((t) => h('th', { text: t })))),
          h('tbody', {}, paired.map((d) => this.pairedRow(d, me))))
          : emptyState('No paired devices', null, 'devices')));
  }

  pendingCard(p) {
    return h('article', { class: 'card pending', 'data-testid': 'pending-device', dataset: { requestId: p.requestId } },
      h('header', {}, h('strong', { text: p.displayName || p.clientId || 'Unknown device' }), pill(p.isRepair ? 'repair' : (p.reason || 'new'), 'warn')),
      h('dl', { class: 'facts' },
        h('dt', { text: 'Request' }), h('dd', {}, h('code', { text: p.requestId })),
        h('dt', { text: 'Device' }), h('dd', {}, h('code', { text: shortId(p.deviceId, 16) })),
        h('dt', { text: 'Client' }), h('dd', { text: [p.clientId, p.clientMode, p.platform].filter(Boolean).join(' · ') || '—' }),
        h('dt', { text: 'From' }), h('dd', { text: p.remoteIp || p.browserOrigin || '—' }),
        h('dt', { text: 'Role' }), h('dd', { text: [p.role || (p.roles || []).join(', '), (p.scopes || []).join(' ')].filter(Boolean).join(' — ') || '—' }),
        h('dt', { text: 'Asked' }), h('dd', { text: relTime(p.ts) })),
      h('div', { class: 'card-actions' },
        this.gw.has('device.pair.reject') ? button('Reject', () => this.decide('reject', p), { kind: 'ghost danger', testid: 'device-reject' }) : null,
        this.gw.has('device.pair.approve') ? button('Approve', () => this.decide('approve', p), { kind: 'primary', testid: 'device-approve' }) : null));
  }

  async decide(what, p) {
    if (what === 'reject') {
      const ok = await confirmDialog({ title: 'Reject this device?', body: `${p.displayName || p.deviceId} will not be able to connect.`, confirm: 'Reject', danger: true });
      if (!ok) return;
    }
    if (await act(this.gw, `device.pair.${what}`, { requestId: p.requestId })) {
      toast(what === 'approve' ? 'Device approved' : 'Device rejected', 'ok');
      this.load();
    }
  }

  pairedRow(d, me) {
    const roles = d.roles?.length ? d.roles : [d.role].filter(Boolean);
    return h('tr', { 'data-testid': 'paired-device', dataset: { deviceId: d.deviceId } },
      h('td', {}, h('div', { class: 'cell-title' },
        d.connected ? h('span', { class: 'live-dot', title: 'Connected now' }) : null,
        h('strong', { text: d.displayName || d.label || d.clientId || 'Device' }),
        d.deviceId === me ? pill('this browser', 'accent') : null), h('code', { class: 'muted small', text: shortId(d.deviceId, 20) })),
      h('td', { class: 'muted', text: [d.clientId, d.platform].filter(Boolean).join(' · ') }),
      h('td', {}, roles.map((r) => pill(r))),
      h('td', { class: 'muted', text: `${relTime(d.approvedAtMs)}${d.approvedVia ? ` (${d.approvedVia})` : ''}` }),
      h('td', { class: 'muted', text: relTime(d.lastSeenAtMs) }),
      h('td', { class: 'row-actions' },
        this.gw.has('device.token.revoke') ? roles.map((role) => button(`Revoke ${role}`, () => this.revoke(d, role), { kind: 'ghost small', testid: 'device-revoke' })) : null,
        this.gw.has('device.pair.remove') ? iconButton('trash', 'Remove device', () => this.removeDevice(d), { kind: 'ghost danger', testid: 'device-remove' }) : null));
  }

  async revoke(d, role) {
    const self = d.deviceId === this.gw.identity?.id;
    const ok = await confirmDialog({
      title: `Revoke the ${role} token?`,
      body: self ? 'This is the browser you are using: it will be signed out and need the gateway token again.' : `${d.displayName || d.deviceId} is disconnected and must sign in again.`,
      confirm: 'Revoke', danger: true,
    });
    if (!ok) return;
    if (await act(this.gw, 'device.token.revoke', { deviceId: d.deviceId, role })) {
      toast('Token revoked', 'ok');
      this.load();
    }
  }

  async removeDevice(d) {
    const ok = await confirmDialog({ title: 'Remove this device?', body: `${d.displayName || d.deviceId} loses its pairing and all tokens.`, confirm: 'Remove', danger: true });
    if (!ok) return;
    if (await act(this.gw, 'device.pair.remove', { deviceId: d.deviceId })) {
      toast('Device removed', 'ok');
      this.load();
    }
  }
}
customElements.define('pc-devices', DevicesView);
