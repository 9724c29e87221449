// The browser's own device identity (protocol §4.4): an Ed25519 key pair made with WebCrypto,
// the private key non-extractable, kept in IndexedDB together with the device tokens the
// gateway issues (a device token is useless without a signature from that key).

const DB_NAME = 'pincer-control-ui';
const STORE = 'kv';

let dbPromise;
function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`IndexedDB unavailable: ${req.error?.message || 'unknown error'}`));
  });
  return dbPromise;
}

function tx(mode, fn) {
  return db().then((d) => new Promise((resolve, reject) => {
    const t = d.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(req?.result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error('IndexedDB transaction aborted'));
  }));
}

const idbGet = (k) => tx('readonly', (s) => s.get(k));
const idbAdd = (k, v) => tx('readwrite', (s) => s.add(v, k));
const idbPut = (k, v) => tx('readwrite', (s) => s.put(v, k));
const idbDel = (k) => tx('readwrite', (s) => s.delete(k));

export function base64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export class IdentityError extends Error {}

/** The device identity, created on first use. */
export async function loadIdentity() {
  if (!globalThis.isSecureContext || !crypto?.subtle) {
    throw new IdentityError('This page is not a secure context, so the browser cannot create a device identity. Open the Control UI over HTTPS (pincer gateway run --tls) or from localhost.');
  }
  let rec = await idbGet('identity');
  if (rec?.keyPair?.privateKey) return rec;
  let keyPair;
  try {
    keyPair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  } catch (e) {
    throw new IdentityError(`This browser cannot create Ed25519 keys (WebCrypto): ${e.message}. Use a current Chromium, Firefox or Safari.`);
  }
  const raw = await crypto.subtle.exportKey('raw', keyPair.publicKey);
  const id = hex(await crypto.subtle.digest('SHA-256', raw));
  rec = { id, publicKey: base64url(raw), keyPair, createdAt: Date.now() };
  try {
    await idbAdd('identity', rec);
  } catch {
    // Another tab created one first: use that one.
    const other = await idbGet('identity');
    if (other?.keyPair?.privateKey) return other;
    await idbPut('identity', rec);
  }
  return rec;
}

export async function sign(identity, text) {
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, identity.keyPair.privateKey, new TextEncoder().encode(text));
  return base64url(sig);
}

/** `v3|deviceId|clientId|clientMode|role|scopes|signedAtMs|token|nonce|platform|deviceFamily` */
export function payloadV3({ deviceId, clientId, clientMode, role, scopes, signedAt, token, nonce, platform, deviceFamily }) {
  const norm = (v) => (v == null ? '' : String(v).trim().replace(/[A-Z]/g, (c) => c.toLowerCase()));
  return ['v3', deviceId, clientId, clientMode, role, scopes.join(','), String(signedAt), token || '', nonce,
    norm(platform), norm(deviceFamily)].join('|');
}

const tokenKey = (deviceId, role) => `deviceToken:${deviceId}:${role}`;

export async function getDeviceToken(deviceId, role) {
  return (await idbGet(tokenKey(deviceId, role)))?.token || null;
}

export async function setDeviceToken(deviceId, role, token, scopes) {
  await idbPut(tokenKey(deviceId, role), { token, scopes, storedAt: Date.now() });
}

export async function clearDeviceToken(deviceId, role) {
  await idbDel(tokenKey(deviceId, role));
}
