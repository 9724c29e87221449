// Shared UI pieces: toasts (every error is shown), confirm dialogs, the request helper that
// reports failures, and the theme.

import { h, icon, button } from './dom.js';

let toastHost;

function host() {
  toastHost ??= document.body.appendChild(h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' }));
  return toastHost;
}

/** A toast: kind `error` | `ok` | `info`. Errors stay until dismissed. */
export function toast(message, kind = 'info', { title, timeoutMs } = {}) {
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, icon('x'));
  const el = h('div', { class: ['toast', kind], 'data-testid': `toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    icon(kind === 'error' ? 'alert' : kind === 'ok' ? 'check' : 'health'),
    h('div', { class: 'toast-body' }, title ? h('strong', { text: title }) : null, h('span', { text: message })),
    close);
  const remove = () => {
    el.classList.add('leaving');
    setTimeout(() => el.remove(), 180);
  };
  close.addEventListener('click', remove);
  host().append(el);
  const ttl = timeoutMs ?? (kind === 'error' ? 12_000 : 3_500);
  if (ttl > 0) setTimeout(remove, ttl);
  while (host().children.length > 5) host().firstChild.remove();
  return el;
}

export function errorText(err) {
  if (!err) return 'unknown error';
  const code = err.details?.code || err.code;
  return code && code !== 'UNKNOWN' ? `${err.message} (${code})` : err.message || String(err);
}

export function showError(err, title) {
  if (err?.code === 'DISCONNECTED') {
    // The connection banner already says so, and every view reloads after the reconnect.
    console.warn(title || 'request interrupted', err.message);
    return null;
  }
  console.error(title || 'error', err);
  return toast(errorText(err), 'error', { title });
}

/**
 * Background request (a view loading its data): shows any failure as a toast, except a
 * dropped connection (the banner says so and the view reloads after the reconnect).
 * Resolves to the payload or null.
 */
export async function call(gw, method, params, opts) {
  try {
    return await gw.request(method, params, opts);
  } catch (err) {
    showError(err, `${method} failed`);
    return null;
  }
}

/** A request the user asked for (a button): every failure is shown, a dropped connection too. */
export async function act(gw, method, params, opts) {
  try {
    return await gw.request(method, params, opts);
  } catch (err) {
    reportError(err, `${method} failed`);
    return null;
  }
}

/** Shows an error whatever it is. */
export function reportError(err, title) {
  console.error(title || 'error', err);
  return toast(errorText(err), 'error', { title });
}

/** A modal confirm dialog; resolves true/false. */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'dialog', 'data-testid': 'confirm-dialog' });
    const done = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    dlg.append(
      h('h3', { text: title }),
      typeof body === 'string' ? h('p', { text: body }) : body,
      h('div', { class: 'dialog-actions' },
        button('Cancel', () => done(false), { kind: 'ghost' }),
        button(confirm, () => done(true), { kind: danger ? 'danger' : 'primary', testid: 'confirm-ok' })));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// ---- theme ----

const THEME_KEY = 'pincer.theme';

export function currentTheme() {
  const chosen = localStorage.getItem(THEME_KEY);
  if (chosen === 'light' || chosen === 'dark') return chosen;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function applyTheme(theme = currentTheme()) {
  document.documentElement.dataset.theme = theme;
  return theme;
}

export function toggleTheme() {
  const next = currentTheme() === 'dark' ? 'light' : 'dark';
  localStorage.setItem(THEME_KEY, next);
  return applyTheme(next);
}

matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  if (!localStorage.getItem(THEME_KEY)) applyTheme();
});
