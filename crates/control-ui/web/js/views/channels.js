// Channels: status of every configured chat channel account (channels.status), with start
// and stop when the gateway offers them.

import { View, pageHeader } from '../view.js';
import { h, button, iconButton, replace, relTime, emptyState, pill } from '../dom.js';
import { act, call, confirmDialog, toast } from '../ui.js';

const STATES = {
  running: ['running', 'ok'], starting: ['starting', 'warn'], reconnecting: ['reconnecting', 'warn'],
  stopped: ['stopped', ''], error: ['error', 'error'],
};

function stateOf(acc) {
  if (acc.state && STATES[acc.state]) return STATES[acc.state];
  if (acc.lastError || acc.error) return STATES.error;
  if (acc.running || acc.connected) return STATES.running;
  if (acc.configured === false) return ['not configured', ''];
  if (acc.enabled === false) return ['disabled', ''];
  return STATES.stopped;
}

class ChannelsView extends View {
  static label = 'Channels';

  static requires = ['channels.status'];

  setup() {
    this.every(10_000, () => this.ready && this.gw.connected && this.load());
  }

  header() {
    return pageHeader('Channels', 'Chat platforms the gateway listens on.', iconButton('refresh', 'Probe now', () => this.load(true)));
  }

  async load(probe = false) {
    const res = await call(this.gw, 'channels.status', probe ? { probe: true } : {});
    if (!res) return;
    const order = res.channelOrder?.length ? res.channelOrder : Object.keys(res.channelAccounts || res.channels || {});
    const cards = order.map((ch) => {
      const label = res.channelLabels?.[ch] || ch;
      let accounts = res.channelAccounts?.[ch];
      if (!Array.isArray(accounts)) accounts = accounts ? Object.entries(accounts).map(([id, a]) => ({ accountId: id, ...a })) : [];
      if (!accounts.length && res.channels?.[ch]) accounts = [{ accountId: res.channelDefaultAccountId?.[ch] || 'default', ...res.channels[ch] }];
      return h('article', { class: 'card', 'data-testid': 'channel-card', dataset: { channel: ch } },
        h('header', {}, h('strong', { text: label }), h('code', { class: 'muted small', text: ch })),
        accounts.length ? h('ul', { class: 'plain' }, accounts.map((a) => this.account(ch, a))) : h('p', { class: 'muted', text: 'No accounts.' }));
    });
    replace(this, this.header(),
      res.statusIssues?.length ? h('div', { class: 'callout warn', 'data-testid': 'channel-issues' }, res.statusIssues.map((i) => h('div', {
        text: typeof i === 'string' ? i : `${i.channel ? `${i.channel}${i.accountId ? `/${i.accountId}` : ''}: ` : ''}${i.message || JSON.stringify(i)}`,
      }))) : null,
      cards.length ? h('div', { class: 'cards' }, cards) : emptyState('No channels configured', 'Add Telegram, Discord or Slack under “channels” in the config.', 'channels'));
  }

  account(ch, a) {
    const [word, kind] = stateOf(a);
    const id = a.accountId || a.id || 'default';
    const facts = [
      a.mode ? `mode ${a.mode}` : null,
      a.botUsername ? `@${a.botUsername}` : null,
      a.lastInboundAt ? `last message in ${relTime(a.lastInboundAt)}` : null,
      a.lastOutboundAt ? `last reply ${relTime(a.lastOutboundAt)}` : null,
      a.reconnects ? `${a.reconnects} reconnects` : null,
    ].filter(Boolean);
    const running = a.state === 'running' || a.state === 'starting' || a.state === 'reconnecting' || (a.running && !a.state);
    return h('li', { class: 'account', 'data-testid': 'channel-account', dataset: { state: a.state || word } },
      h('div', {}, h('strong', { text: id }), a.name || a.accountLabel ? h('span', { class: 'muted', text: ` ${a.name || a.accountLabel}` }) : null),
      h('div', { class: 'account-actions' }, pill(word, kind),
        running && this.gw.has('channels.stop')
          ? button('Stop', () => this.toggle('stop', ch, id), { kind: 'ghost small' })
          : !running && a.configured !== false && this.gw.has('channels.start')
            ? button('Start', () => this.toggle('start', ch, id), { kind: 'ghost small' }) : null),
      a.lastError || a.error ? h('div', { class: 'callout error small', text: String(a.lastError || a.error) }) : null,
      facts.length ? h('div', { class: 'muted small', text: facts.join(' · ') }) : null);
  }

  async toggle(what, channel, accountId) {
    if (what === 'stop' && !(await confirmDialog({ title: `Stop ${channel}/${accountId}?`, body: 'Messages from this account are not received until it is started again.', confirm: 'Stop', danger: true }))) return;
    if (await act(this.gw, `channels.${what}`, { channel, accountId })) {
      toast(`${channel}/${accountId} ${what === 'stop' ? 'stopped' : 'started'}`, 'ok');
      this.load();
    }
  }
}
customElements.define('pc-channels', ChannelsView);
