// Boot: theme, gateway client, the shell (sidebar, top bar, connection banner), routing
// between views (History API; the gateway serves the SPA for every path), and the
// full-screen panels for sign-in, pairing approval, reload and fatal errors.

import { ctx } from './context.js';
import { Gateway, State } from './gateway.js';
import { h, icon, iconButton, button, replace, copyText } from './dom.js';
import { applyTheme, toggleTheme, currentTheme, toast } from './ui.js';
import './approvals.js';
import './views/chat.js';
import './views/sessions.js';
import './views/devices.js';
import './views/nodes.js';
import './views/approvals.js';
import './views/channels.js';
import './views/config.js';
import './views/logs.js';
import './views/health.js';

const root = document.documentElement;
const basePath = root.dataset.basePath || '';
const buildId = root.dataset.buildId || 'dev';

const ROUTES = [
  { path: '', tag: 'pc-chat', label: 'Chat', icon: 'chat' },
  { path: '/sessions', tag: 'pc-sessions', label: 'Sessions', icon: 'sessions' },
  { path: '/approvals', tag: 'pc-approvals', label: 'Approvals', icon: 'approvals', badge: 'approvals' },
  { path: '/devices', tag: 'pc-devices', label: 'Devices', icon: 'devices', badge: 'devices' },
  { path: '/nodes', tag: 'pc-nodes', label: 'Nodes', icon: 'nodes' },
  { path: '/channels', tag: 'pc-channels', label: 'Channels', icon: 'channels' },
  { path: '/config', tag: 'pc-config', label: 'Config', icon: 'config' },
  { path: '/logs', tag: 'pc-logs', label: 'Logs', icon: 'logs' },
  { path: '/health', tag: 'pc-health', label: 'Health', icon: 'health' },
];

function appPath() {
  let p = location.pathname;
  if (basePath && p.startsWith(basePath)) p = p.slice(basePath.length);
  p = p.replace(/\/+$/, '');
  return p;
}

const webchat = appPath() === '/chat';
applyTheme();

const gw = new Gateway({ basePath, mode: webchat ? 'webchat' : 'ui', buildId });
ctx.gw = gw;
ctx.basePath = basePath;

// ---- shell ----

const app = document.getElementById('app');
app.className = webchat ? 'app webchat' : 'app';
const viewHost = h('main', { class: 'view-host', id: 'view' });
const banner = h('div', { class: 'conn-banner', hidden: true, role: 'status', 'data-testid': 'conn-banner' });
const statusPill = h('span', { class: 'conn-pill', 'data-testid': 'conn-pill' });
const themeButton = iconButton(currentTheme() === 'dark' ? 'sun' : 'moon', 'Toggle dark/light theme', () => {
  const t = toggleTheme();
  replace(themeButton, icon(t === 'dark' ? 'sun' : 'moon'));
}, { testid: 'theme-toggle' });
const panel = h('div', { class: 'panel-host', hidden: true, 'data-testid': 'panel' });
const navLinks = new Map();

function routeFor(path) {
  return ROUTES.find((r) => r.path === path) || ROUTES[0];
}

function navigate(path, { replaceState = false } = {}) {
  const url = `${basePath}${path || '/'}`;
  if (url !== location.pathname + location.search) {
    if (replaceState) history.replaceState(null, '', url);
    else history.pushState(null, '', url);
  }
  render();
}
ctx.navigate = navigate;

function setBadge(name, n) {
  ctx.badges[name] = n;
  for (const [route, link] of navLinks) {
    if (route.badge === name) {
      const b = link.querySelector('.badge');
      b.textContent = n > 0 ? String(n) : '';
      b.hidden = !(n > 0);
    }
  }
}
ctx.setBadge = setBadge;

const sidebar = h('aside', { class: 'sidebar' },
  h('div', { class: 'brand' }, h('div', { class: 'brand-mark', 'aria-hidden': 'true' }),
    h('div', {}, h('strong', { text: 'Pincer' }), h('span', { class: 'muted', text: 'Control' }))),
  h('nav', { 'aria-label': 'Views' }, ROUTES.map((r) => {
    const a = h('a', {
      href: `${basePath}${r.path || '/'}`, class: 'nav-link', 'data-testid': `nav-${r.label.toLowerCase()}`,
      onclick: (e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        app.classList.remove('nav-open');
        navigate(r.path);
      },
    }, icon(r.icon), h('span', { text: r.label }), h('span', { class: 'badge', hidden: true }));
    navLinks.set(r, a);
    return a;
  })),
  h('div', { class: 'sidebar-foot' },
    h('a', { href: `${basePath}/chat`, class: 'nav-link subtle', target: '_blank', rel: 'noopener' }, icon('external'), h('span', { text: 'Open WebChat' })),
    h('div', { class: 'muted small', 'data-testid': 'server-version' })));

const topbar = h('header', { class: 'topbar' },
  webchat ? null : iconButton('menu', 'Menu', () => app.classList.toggle('nav-open'), { kind: 'ghost mobile-only' }),
  h('div', { class: 'topbar-title' }, webchat
    ? h('div', { class: 'brand compact' }, h('div', { class: 'brand-mark', 'aria-hidden': 'true' }), h('strong', { text: 'Pincer Chat' }))
    : h('h2', { class: 'view-title' })),
  h('div', { class: 'topbar-actions' }, statusPill, themeButton));

replace(app,
  webchat ? null : sidebar,
  h('div', { class: 'main' }, topbar, banner, viewHost),
  h('div', { class: 'scrim', onclick: () => app.classList.remove('nav-open') }),
  h('pc-approval-prompt'),
  panel);

let currentTag = null;
function render() {
  window.dispatchEvent(new Event('pincer:route'));
  if (webchat) {
    if (currentTag !== 'pc-chat') {
      currentTag = 'pc-chat';
      replace(viewHost, h('pc-chat', { dataset: { mode: 'webchat' } }));
    }
    return;
  }
  const route = routeFor(appPath());
  for (const [r, a] of navLinks) a.classList.toggle('active', r === route);
  topbar.querySelector('.view-title').textContent = route.label;
  document.title = `${route.label} · Pincer`;
  if (currentTag !== route.tag || !viewHost.firstElementChild) {
    currentTag = route.tag;
    replace(viewHost, h(route.tag));
  } else {
    viewHost.firstElementChild.routeChanged?.();
  }
}
window.addEventListener('popstate', render);

// ---- connection state → pill, banner, panels ----

let bannerTimer;
function countdown(at) {
  return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function showPanel(...content) {
  panel.hidden = false;
  replace(panel, h('div', { class: 'panel-card' }, h('div', { class: 'brand-mark big', 'aria-hidden': 'true' }), content));
}

function hidePanel() {
  panel.hidden = true;
  panel.replaceChildren();
}

function loginPanel(detail) {
  const secret = h('input', { type: 'password', class: 'input', placeholder: 'Gateway token or password', autocomplete: 'current-password', 'data-testid': 'login-secret', 'aria-label': 'Gateway token or password' });
  const kind = h('select', { class: 'input', 'aria-label': 'Secret kind', 'data-testid': 'login-kind' },
    h('option', { value: 'token', text: 'Token' }), h('option', { value: 'password', text: 'Password' }));
  const remember = h('input', { type: 'checkbox', id: 'remember', 'data-testid': 'login-remember' });
  const form = h('form', {
    class: 'login-form',
    onsubmit: (e) => {
      e.preventDefault();
      if (!secret.value.trim()) return;
      gw.setCredential({ kind: kind.value, secret: secret.value.trim() }, remember.checked);
    },
  },
  h('div', { class: 'row' }, kind, secret),
  h('label', { class: 'check', htmlFor: 'remember' }, remember, h('span', { text: 'Remember on this browser (otherwise only for this tab)' })),
  button('Connect', null, { kind: 'primary wide', type: 'submit', testid: 'login-submit' }));
  const problem = detail.rateLimited
    ? `Too many failed attempts. Trying again in ${countdown(detail.retryAt)} s.`
    : detail.hadCredential ? detail.message : null;
  showPanel(
    h('h1', { text: 'Connect to your gateway' }),
    h('p', { class: 'muted' }, 'On the gateway host, run ', h('code', { text: 'pincer dashboard' }),
      ' and open the link it prints, or paste the gateway token below (', h('code', { text: '~/.pincer/gateway.token' }), ').'),
    problem ? h('div', { class: 'callout error', 'data-testid': 'login-error', text: problem }) : null,
    form);
  secret.focus();
}

function pairingPanel(detail) {
  const cmd = `pincer devices approve ${detail.requestId || detail.deviceId || ''}`.trim();
  showPanel(
    h('h1', { text: 'Waiting for approval' }),
    h('p', { class: 'muted', text: 'This browser is a new device for this gateway. Approve it from the gateway host (or from a Control UI that is already signed in, under Devices):' }),
    h('div', { class: 'command', 'data-testid': 'pair-command' }, h('code', { text: cmd }),
      iconButton('copy', 'Copy command', () => Promise.resolve(copyText(cmd)).then(() => toast('Command copied', 'ok')).catch((e) => toast(e.message, 'error')))),
    h('dl', { class: 'facts' },
      h('dt', { text: 'Device' }), h('dd', {}, h('code', { text: detail.deviceId || '—' })),
      detail.reason ? [h('dt', { text: 'Reason' }), h('dd', { text: detail.reason })] : null),
    h('p', { class: 'waiting' }, h('span', { class: 'spinner' }), h('span', { class: 'pair-countdown', text: 'Checking again shortly…' })),
    h('p', { class: 'muted small', text: 'This page connects by itself as soon as the device is approved. Requests expire after 5 minutes and are renewed while this page is open.' }));
}

function updateCountdowns() {
  const d = gw.detail;
  if (d.retryAt) {
    const s = countdown(d.retryAt);
    const el = panel.querySelector('.pair-countdown');
    if (el) el.textContent = s > 0 ? `Checking again in ${s} s…` : 'Checking…';
    const b = banner.querySelector('.banner-countdown');
    if (b) b.textContent = s > 0 ? `Reconnecting in ${s} s (attempt ${d.attempt + 1})…` : 'Reconnecting…';
  }
}
setInterval(updateCountdowns, 250);

function onState(state, detail) {
  clearTimeout(bannerTimer);
  statusPill.className = `conn-pill ${state}`;
  const labels = {
    [State.CONNECTING]: 'Connecting…', [State.CONNECTED]: 'Connected', [State.RECONNECTING]: 'Reconnecting…',
    [State.PAIRING]: 'Waiting for approval', [State.AUTH]: 'Sign-in needed', [State.RELOAD]: 'Reload needed', [State.FATAL]: 'Error',
  };
  replace(statusPill, h('span', { class: 'dot' }), labels[state] || state);
  switch (state) {
    case State.CONNECTED: {
      hidePanel();
      const v = gw.hello?.server?.version;
      sidebar.querySelector('[data-testid=server-version]').textContent = v ? `Gateway ${v}` : '';
      if (detail.reconnected) {
        banner.hidden = false;
        banner.className = 'conn-banner ok';
        replace(banner, icon('check'), h('span', { text: 'Reconnected to the gateway.' }));
        bannerTimer = setTimeout(() => { banner.hidden = true; }, 4000);
        toast('Reconnected to the gateway', 'ok');
      } else {
        banner.hidden = true;
      }
      break;
    }
    case State.RECONNECTING:
      if (gw.everConnected) {
        hidePanel();
        banner.hidden = false;
        banner.className = 'conn-banner warn';
        replace(banner, h('span', { class: 'spinner' }),
          h('span', { text: detail.message || 'The connection to the gateway was lost.' }),
          h('span', { class: 'banner-countdown muted' }),
          button('Retry now', () => gw.reconnectNow(), { kind: 'ghost small' }));
      } else {
        showPanel(h('h1', { text: 'Cannot reach the gateway' }),
          h('p', { class: 'muted', text: detail.message || 'The gateway is not reachable.' }),
          h('p', { class: 'waiting' }, h('span', { class: 'spinner' }), h('span', { class: 'pair-countdown' })),
          button('Retry now', () => gw.reconnectNow(), { kind: 'primary' }));
      }
      break;
    case State.PAIRING:
      pairingPanel(detail);
      break;
    case State.AUTH:
      loginPanel(detail);
      break;
    case State.RELOAD:
      showPanel(h('h1', { text: 'Pincer was updated' }),
        h('p', { class: 'muted', text: 'The gateway runs a newer build than this page. Reload to continue.' }),
        button('Reload', () => location.reload(), { kind: 'primary', testid: 'reload' }));
      break;
    case State.FATAL:
      showPanel(h('h1', { text: detail.title || 'Something went wrong' }),
        h('div', { class: 'callout error', 'data-testid': 'fatal-error', text: detail.message || 'Unknown error' }),
        button('Try again', () => gw.reconnectNow(), { kind: 'primary' }));
      break;
    default:
      if (!gw.everConnected) showPanel(h('h1', { text: 'Connecting…' }), h('p', { class: 'waiting' }, h('span', { class: 'spinner' }), h('span', { text: 'Opening a secure session with the gateway' })));
  }
  updateCountdowns();
}

gw.onState(onState);
window.addEventListener('unhandledrejection', (e) => toast(e.reason?.message || String(e.reason), 'error', { title: 'Unexpected error' }));
window.addEventListener('error', (e) => toast(e.message || 'script error', 'error', { title: 'Unexpected error' }));
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') app.classList.remove('nav-open');
});

render();
onState(gw.state, gw.detail);
gw.start();
// For tests and debugging from the console (read-only use).
window.pincer = { gw };
