// The gateway's shared secret (token or password): read once from the URL fragment that
// `pincer dashboard` prints (`#token=…`), or pasted. Kept in sessionStorage (this tab) unless
// the user ticks "remember" (then localStorage). The fragment is removed from the address bar.

const KEY = 'pincer.gateway.credential';

function parse(text) {
  try {
    const v = JSON.parse(text);
    if (v && (v.kind === 'token' || v.kind === 'password') && typeof v.secret === 'string' && v.secret) return v;
  } catch { /* not ours */ }
  return null;
}

/** Takes `#token=…` / `#password=…` out of the URL. */
export function takeFromFragment() {
  const hash = location.hash.replace(/^#/, '');
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get('token');
  const password = params.get('password');
  if (!token && !password) return null;
  params.delete('token');
  params.delete('password');
  const rest = params.toString();
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  return token ? { kind: 'token', secret: token } : { kind: 'password', secret: password };
}

export function load() {
  const s = parse(sessionStorage.getItem(KEY));
  if (s) return { ...s, remembered: false };
  const l = parse(localStorage.getItem(KEY));
  if (l) return { ...l, remembered: true };
  return null;
}

export function save(cred, remember) {
  const text = JSON.stringify({ kind: cred.kind, secret: cred.secret });
  if (remember) {
    localStorage.setItem(KEY, text);
    sessionStorage.removeItem(KEY);
  } else {
    sessionStorage.setItem(KEY, text);
    localStorage.removeItem(KEY);
  }
}

export function forget() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

/** Startup: a fragment credential wins (and keeps the "remember" choice already made). */
export function init() {
  const fromUrl = takeFromFragment();
  if (fromUrl) {
    const remembered = localStorage.getItem(KEY) != null;
    save(fromUrl, remembered);
  }
  return load();
}
