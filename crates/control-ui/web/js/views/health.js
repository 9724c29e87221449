// Health: gateway status, uptime, event loop, config reload, agents and sessions, and the
// live connections (presence).

import { View, pageHeader } from '../view.js';
import { h, iconButton, replace, duration, relTime, pill, emptyState } from '../dom.js';
import { call } from '../ui.js';

function card(title, ...body) {
  return h('article', { class: 'card stat' }, h('h3', { text: title }), body);
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v != null && v !== '').map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v instanceof Node ? v : String(v))]));
}

class HealthView extends View {
  static label = 'Health';

  static requires = ['health'];

  setup() {
    this.listen(this.gw.on('health', (p) => { this.health = p; this.paint(); }));
    this.listen(this.gw.on('presence', (p) => { this.presence = p?.presence; this.paint(); }));
    this.every(1000, () => this.ready && this.tickUptime());
  }

  header() {
    return pageHeader('Health', 'Is the gateway well, and who is connected.', iconButton('refresh', 'Refresh', () => this.load(true)));
  }

  async load(probe = false) {
    const [health, status, presence] = await Promise.all([
      call(this.gw, 'health', probe ? { probe: true } : {}),
      this.gw.has('status') ? call(this.gw, 'status', {}) : null,
      this.gw.has('system-presence') ? call(this.gw, 'system-presence', {}) : null,
    ]);
    if (health) this.health = health;
    this.status = status;
    this.presence = Array.isArray(presence) ? presence : this.gw.hello?.snapshot?.presence;
    this.uptimeBase = { ms: this.gw.hello?.snapshot?.uptimeMs ?? 0, at: performance.now() };
    if (status?.uptimeMs != null) this.uptimeBase = { ms: status.uptimeMs, at: performance.now() };
    this.paint();
  }

  uptime() {
    const b = this.uptimeBase;
    return b ? b.ms + (performance.now() - b.at) : null;
  }

  tickUptime() {
    const el = this.querySelector('[data-testid=uptime]');
    if (el) el.textContent = duration(this.uptime());
  }

  paint() {
    const hth = this.health || {};
    const hello = this.gw.hello || {};
    const server = hello.server || {};
    const loop = hth.eventLoop || {};
    const reload = hth.configReload || {};
    const agents = hth.agents || [];
    const presence = this.presence || [];
    replace(this, this.header(),
      h('div', { class: 'stats' },
        card('Gateway',
          h('div', { class: 'big-status' }, pill(hth.ok === false ? 'degraded' : 'healthy', hth.ok === false ? 'error' : 'ok'),
            h('span', { class: 'uptime' }, 'up ', h('strong', { 'data-testid': 'uptime', text: duration(this.uptime()) }))),
          facts([['Version', server.version], ['Build', server.buildId], ['Boot', server.bootId?.slice(0, 8)],
            ['Auth', hello.snapshot?.authMode], ['Signed in as', `${hello.auth?.method || '—'} · ${(hello.auth?.scopes || []).length} scopes`],
            ['PID', this.status?.pid]])),
        card('Event loop',
          facts([['Utilisation', loop.utilization != null ? `${Math.round(loop.utilization * 100)} %` : null],
            ['Delay p99', loop.delayP99Ms != null ? `${loop.delayP99Ms.toFixed(1)} ms` : null],
            ['Delay max', loop.delayMaxMs != null ? `${loop.delayMaxMs.toFixed(1)} ms` : null],
            ['State', loop.degraded ? pill('degraded', 'warn') : pill('ok', 'ok')]])),
        card('Config reload',
          facts([['Hot reload', reload.hotReloadStatus],
            ['Needs restart', reload.restartRequired?.length ? reload.restartRequired.join(', ') : 'nothing'],
            ['Last error', reload.lastError ? h('span', { class: 'error-text', text: typeof reload.lastError === 'string' ? reload.lastError : reload.lastError.message || JSON.stringify(reload.lastError) }) : null]])),
        card('Sessions',
          h('div', { class: 'big-number', text: String(hth.sessions?.count ?? '—') }),
          h('ul', { class: 'plain small' }, (hth.sessions?.recent || []).slice(0, 4).map((r) => h('li', {}, h('code', { text: r.key }), h('span', { class: 'muted', text: ` ${relTime(r.updatedAt)}` })))))),
      h('section', { class: 'section' }, h('h2', { text: 'Agents' }),
        agents.length ? h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, ['Agent', 'Sessions', 'Heartbeat'].map((t) => h('th', { text: t })))),
          h('tbody', {}, agents.map((a) => h('tr', {},
            h('td', {}, h('strong', { text: a.name || a.agentId }), a.isDefault ? pill('default', 'accent') : null),
            h('td', { text: String(a.sessions?.count ?? '—') }),
            h('td', { class: 'muted', text: a.heartbeat?.enabled ? `every ${a.heartbeat.every}` : 'off' })))))
          : h('p', { class: 'muted', text: 'No agents.' })),
      h('section', { class: 'section' }, h('h2', {}, 'Connections ', pill(String(presence.length))),
        presence.length ? h('table', { class: 'table', 'data-testid': 'presence-table' },
          h('thead', {}, h('tr', {}, ['Client', 'Mode', 'Address', 'Version', 'Since'].map((t) => h('th', { text: t })))),
          h('tbody', {}, presence.map((p) => h('tr', {},
            h('td', {}, h('strong', { text: p.host || p.clientId || '—' }), p.reason === 'self' ? pill('gateway', 'accent') : null),
            h('td', { class: 'muted', text: p.mode || '—' }),
            h('td', { class: 'muted', text: p.ip || '—' }),
            h('td', { class: 'muted', text: p.version || '—' }),
            h('td', { class: 'muted', text: relTime(p.onlineSince || p.ts) })))))
          : emptyState('No connections listed', null, 'health')));
  }
}
customElements.define('pc-health', HealthView);
