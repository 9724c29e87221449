// Channels: status of every configured chat channel account (channels.status).

import { View, pageHeader } from '../view.js';
import { h, iconButton, replace, relTime, emptyState, pill } from '../dom.js';
import { call } from '../ui.js';

function stateOf(acc) {
  if (acc.lastError || acc.error) return ['error', 'error'];
  if (acc.running || acc.connected || acc.status === 'running' || acc.status === 'connected') return ['running', 'ok'];
  if (acc.configured === false) return ['not configured', ''];
  if (acc.enabled === false) return ['disabled', ''];
  return [acc.status || 'stopped', 'warn'];
}

class ChannelsView extends View {
  static label = 'Channels';

  static requires = ['channels.status'];

  setup() {
    this.every(15_000, () => this.ready && this.gw.connected && this.load());
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
      return h('article', { class: 'card', 'data-testid': 'channel-card' },
        h('header', {}, h('strong', { text: label }), h('code', { class: 'muted small', text: ch })),
        accounts.length ? h('ul', { class: 'plain' }, accounts.map((a) => {
          const [word, kind] = stateOf(a);
          return h('li', { class: 'account' },
            h('div', {}, h('strong', { text: a.accountId || a.id || 'default' }), a.name ? h('span', { class: 'muted', text: ` ${a.name}` }) : null),
            pill(word, kind),
            a.lastError || a.error ? h('div', { class: 'callout error small', text: String(a.lastError || a.error) }) : null,
            a.lastInboundAt || a.lastEventAt ? h('div', { class: 'muted small', text: `last message ${relTime(a.lastInboundAt || a.lastEventAt)}` }) : null);
        })) : h('p', { class: 'muted', text: 'No accounts.' }));
    });
    replace(this, this.header(),
      res.statusIssues?.length ? h('div', { class: 'callout warn' }, res.statusIssues.map((i) => h('div', { text: typeof i === 'string' ? i : i.message || JSON.stringify(i) }))) : null,
      cards.length ? h('div', { class: 'cards' }, cards) : emptyState('No channels configured', 'Add Telegram, Discord or Slack under “channels” in the config.', 'channels'));
  }
}
customElements.define('pc-channels', ChannelsView);
