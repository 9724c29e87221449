// Protocol v4 client over one WebSocket (public protocol only): challenge → signed connect →
// hello-ok; requests with timeouts; events; automatic reconnect with backoff; pairing wait;
// a tick watchdog. Every failure is surfaced as a state or a rejected request, never dropped.

import * as identity from './identity.js';
import * as credentials from './credentials.js';

export const PROTOCOL = 4;
export const CLIENT_ID = 'openclaw-control-ui';
export const UI_VERSION = '0.1.0';
export const ROLE = 'operator';
export const SCOPES = ['operator.admin', 'operator.read', 'operator.write', 'operator.approvals', 'operator.pairing'];
const PLATFORM = 'web';

export class GatewayError extends Error {
  constructor(code, message, details, extra = {}) {
    super(message || code);
    this.code = code;
    this.details = details;
    this.retryable = extra.retryable;
    this.retryAfterMs = extra.retryAfterMs;
  }

  static from(err) {
    return new GatewayError(err?.code || 'UNKNOWN', err?.message || 'unknown error', err?.details,
      { retryable: err?.retryable, retryAfterMs: err?.retryAfterMs });
  }
}

/** The "remote" states the UI shows as full-screen panels. */
export const State = Object.freeze({
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  RECONNECTING: 'reconnecting',
  PAIRING: 'pairing',
  AUTH: 'auth-required',
  RELOAD: 'reload-required',
  FATAL: 'fatal',
});

const AUTH_CODES = new Set(['AUTH_TOKEN_MISSING', 'AUTH_PASSWORD_MISSING', 'AUTH_REQUIRED', 'AUTH_TOKEN_MISMATCH',
  'AUTH_PASSWORD_MISMATCH', 'AUTH_UNAUTHORIZED', 'DEVICE_IDENTITY_REQUIRED', 'AUTH_TOKEN_NOT_CONFIGURED',
  'AUTH_PASSWORD_NOT_CONFIGURED']);

function uuid() {
  return crypto.randomUUID ? crypto.randomUUID() : identity.hex(crypto.getRandomValues(new Uint8Array(16)));
}

function wsUrl(basePath) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${basePath || ''}/`;
}

export class Gateway extends EventTarget {
  constructor({ basePath = '', mode = 'ui', buildId }) {
    super();
    this.url = wsUrl(basePath);
    this.mode = mode;
    this.buildId = buildId;
    this.instanceId = uuid();
    this.state = State.CONNECTING;
    this.detail = {};
    this.hello = null;
    this.methods = new Set();
    this.events = new Set();
    this.ws = null;
    this.pending = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.timer = null;
    this.everConnected = false;
    this.lastFrameAt = 0;
    this.lastSeq = null;
    this.stopped = false;
    this.credential = credentials.init();
    this.identity = null;
  }

  // ---- public API ----

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000, 'bye');
  }

  has(method) {
    return this.methods.has(method);
  }

  missing(...methods) {
    return methods.filter((m) => !this.methods.has(m));
  }

  get connected() {
    return this.state === State.CONNECTED;
  }

  get scopes() {
    return this.hello?.auth?.scopes || [];
  }

  /** Use a pasted secret; `remember` keeps it in localStorage. Reconnects now. */
  setCredential(cred, remember) {
    credentials.save(cred, remember);
    this.credential = credentials.load();
    this.reconnectNow();
  }

  forgetCredential() {
    credentials.forget();
    this.credential = null;
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.attempt = 0;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, 'reconnect');
      this.ws = null;
    }
    this.rejectPending(new GatewayError('DISCONNECTED', 'reconnecting'));
    this.connect();
  }

  /**
   * One RPC. Resolves with the payload, rejects with a GatewayError. `expectFinal` waits
   * for the second `res` of two-phase methods (`agent`).
   */
  request(method, params = {}, { timeoutMs = 30_000, expectFinal = false } = {}) {
    if (!this.connected || !this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new GatewayError('DISCONNECTED', `not connected to the gateway (${method})`));
    }
    const id = `ui-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new GatewayError('TIMEOUT', `${method} timed out after ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, method, expectFinal });
      this.ws.send(JSON.stringify({ type: 'req', id, method, params }));
    });
  }

  /** Subscribe to a gateway event (`chat`, `agent`, …); returns an unsubscribe function. */
  on(event, fn) {
    const listener = (e) => fn(e.detail.payload, e.detail);
    this.addEventListener(`event:${event}`, listener);
    return () => this.removeEventListener(`event:${event}`, listener);
  }

  onState(fn) {
    const listener = () => fn(this.state, this.detail);
    this.addEventListener('state', listener);
    return () => this.removeEventListener('state', listener);
  }

  /** Called after every successful hello (first connect and reconnects). */
  onHello(fn) {
    const listener = () => fn(this.hello);
    this.addEventListener('hello', listener);
    return () => this.removeEventListener('hello', listener);
  }

  // ---- internals ----

  setState(state, detail = {}) {
    this.state = state;
    this.detail = detail;
    this.dispatchEvent(new Event('state'));
  }

  rejectPending(err) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }

  scheduleReconnect(delayMs, state = State.RECONNECTING, detail = {}) {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const at = Date.now() + delayMs;
    this.setState(state, { ...detail, retryAt: at, attempt: this.attempt });
    this.timer = setTimeout(() => this.connect(), delayMs);
  }

  backoff() {
    // 0.5 s doubling to 10 s, ±20 % jitter.
    const base = Math.min(10_000, 500 * 2 ** Math.min(this.attempt, 5));
    this.attempt += 1;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  async connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (!this.identity) {
      try {
        this.identity = await identity.loadIdentity();
      } catch (e) {
        this.setState(State.FATAL, { title: 'No device identity', message: e.message });
        return;
      }
    }
    if (this.state !== State.PAIRING && this.state !== State.RECONNECTING) {
      this.setState(State.CONNECTING, {});
    }
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.scheduleReconnect(this.backoff(), State.RECONNECTING, { message: e.message });
      return;
    }
    this.ws = ws;
    let phase = 'challenge';
    let sentDeviceToken = false;
    const challengeTimer = setTimeout(() => {
      if (phase === 'challenge') ws.close(4000, 'no challenge');
    }, 10_000);

    ws.onmessage = async (msg) => {
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        console.error('gateway sent a non-JSON frame', msg.data);
        return;
      }
      if (phase === 'challenge') {
        if (frame.type !== 'event' || frame.event !== 'connect.challenge') return;
        clearTimeout(challengeTimer);
        phase = 'connect';
        try {
          const { params, usedDeviceToken } = await this.connectParams(frame.payload || {});
          sentDeviceToken = usedDeviceToken;
          if (ws.readyState === WebSocket.OPEN) {
            ws.send(JSON.stringify({ type: 'req', id: 'connect', method: 'connect', params }));
          }
        } catch (e) {
          phase = 'failed';
          ws.onclose = null;
          ws.close(1000);
          this.setState(State.FATAL, { title: 'Cannot sign the connect request', message: e.message });
        }
        return;
      }
      if (phase === 'connect') {
        if (frame.type !== 'res' || frame.id !== 'connect') return;
        if (frame.ok) {
          phase = 'open';
          await this.onHelloOk(frame.payload);
        } else {
          phase = 'failed';
          await this.onConnectError(GatewayError.from(frame.error), sentDeviceToken);
        }
        return;
      }
      this.onFrame(frame);
    };

    ws.onclose = (ev) => {
      clearTimeout(challengeTimer);
      clearInterval(this.watchdog);
      if (this.ws !== ws) return;
      this.ws = null;
      // Views reload after the reconnect; the banner tells the user the connection dropped.
      this.rejectPending(new GatewayError('DISCONNECTED', `connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`));
      if (this.stopped || phase === 'failed') return;
      const reason = ev.reason || '';
      if (ev.code === 4001 && /device removed/.test(reason) && this.identity) {
        // Our device token was revoked: drop it and fall back to the shared secret.
        identity.clearDeviceToken(this.identity.id, ROLE).catch(() => {});
      }
      let message;
      if (phase === 'open') {
        message = ev.code === 1012 || this.shutdownInfo
          ? 'The gateway is restarting.'
          : `The connection to the gateway was lost (${ev.code}${reason ? `: ${reason}` : ''}).`;
        this.dropMessage = message;
      } else {
        message = this.dropMessage ? `${this.dropMessage} It is not reachable yet.` : 'The gateway is not reachable.';
      }
      this.scheduleReconnect(this.backoff(), State.RECONNECTING, { message, code: ev.code, reason });
    };
    ws.onerror = () => { /* onclose follows with the details */ };
  }

  async connectParams(challenge) {
    const id = this.identity;
    const deviceToken = await identity.getDeviceToken(id.id, ROLE).catch(() => null);
    const auth = {};
    const cred = this.credential;
    if (cred?.kind === 'token') auth.token = cred.secret;
    if (cred?.kind === 'password') auth.password = cred.secret;
    if (deviceToken) auth.deviceToken = deviceToken;
    const signedAt = Number.isFinite(challenge.ts) ? challenge.ts : Date.now();
    const signatureToken = auth.token ?? auth.deviceToken ?? '';
    const payload = identity.payloadV3({
      deviceId: id.id, clientId: CLIENT_ID, clientMode: this.mode, role: ROLE, scopes: SCOPES,
      signedAt, token: signatureToken, nonce: challenge.nonce, platform: PLATFORM,
    });
    const signature = await identity.sign(id, payload);
    const params = {
      minProtocol: PROTOCOL,
      maxProtocol: PROTOCOL,
      client: {
        id: CLIENT_ID,
        displayName: this.mode === 'webchat' ? 'Pincer WebChat' : 'Pincer Control UI',
        version: UI_VERSION,
        platform: PLATFORM,
        mode: this.mode,
        instanceId: this.instanceId,
        buildId: this.buildId || undefined,
        timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone?.slice(0, 64) || undefined,
      },
      role: ROLE,
      scopes: SCOPES,
      caps: ['tool-events'],
      auth: Object.keys(auth).length ? auth : undefined,
      device: { id: id.id, publicKey: id.publicKey, signature, signedAt, nonce: challenge.nonce },
      locale: navigator.language,
      userAgent: navigator.userAgent,
    };
    return { params, usedDeviceToken: Boolean(deviceToken) };
  }

  async onHelloOk(hello) {
    this.hello = hello;
    this.methods = new Set(hello.features?.methods || []);
    this.events = new Set(hello.features?.events || []);
    this.lastSeq = null;
    this.attempt = 0;
    this.dropMessage = null;
    this.shutdownInfo = null;
    const token = hello.auth?.deviceToken;
    if (token && this.identity) {
      await identity.setDeviceToken(this.identity.id, ROLE, token, hello.auth.scopes).catch((e) => {
        console.error('cannot store the device token', e);
      });
    }
    const wasReconnect = this.everConnected;
    this.everConnected = true;
    this.setState(State.CONNECTED, { reconnected: wasReconnect });
    const tick = hello.policy?.tickIntervalMs || 30_000;
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (this.ws && Date.now() - this.lastFrameAt > 2 * tick) this.ws.close(4000, 'tick timeout');
    }, Math.min(tick, 5000));
    this.dispatchEvent(new Event('hello'));
  }

  async onConnectError(err, sentDeviceToken) {
    const code = err.details?.code || err.code;
    this.ws?.close(1000);
    this.ws = null;
    if (code === 'AUTH_DEVICE_TOKEN_MISMATCH' && sentDeviceToken && this.identity) {
      // A stale device token (revoked, or another gateway): forget it and try again.
      await identity.clearDeviceToken(this.identity.id, ROLE).catch(() => {});
      this.scheduleReconnect(200, State.CONNECTING);
      return;
    }
    if (code === 'PAIRING_REQUIRED' || err.code === 'NOT_PAIRED' && err.details?.requestId) {
      this.attempt = 0;
      this.scheduleReconnect(2500, State.PAIRING, {
        requestId: err.details?.requestId,
        deviceId: err.details?.deviceId || this.identity?.id,
        reason: err.details?.reason,
        message: err.message,
      });
      return;
    }
    if (err.details?.reloadRequired || code === 'CONTROL_UI_BUILD_MISMATCH') {
      this.setState(State.RELOAD, { message: err.message });
      return;
    }
    if (code === 'AUTH_RATE_LIMITED') {
      const wait = err.retryAfterMs || 60_000;
      this.scheduleReconnect(wait, State.AUTH, { message: err.message, code, rateLimited: true });
      return;
    }
    if (AUTH_CODES.has(code)) {
      this.setState(State.AUTH, { message: err.message, code, hadCredential: Boolean(this.credential) });
      return;
    }
    if (code === 'CONTROL_UI_ORIGIN_NOT_ALLOWED' || code === 'CONTROL_UI_DEVICE_IDENTITY_REQUIRED' ||
        code === 'PROTOCOL_MISMATCH' || /^DEVICE_AUTH_/.test(code)) {
      this.setState(State.FATAL, { title: 'The gateway refused this page', message: err.message, code });
      return;
    }
    // Anything else (gateway starting, busy, …): show it and retry.
    const wait = err.retryAfterMs || this.backoff();
    this.scheduleReconnect(wait, State.RECONNECTING, { message: `${err.code}: ${err.message}`, code });
  }

  onFrame(frame) {
    if (frame.type === 'res') {
      const p = this.pending.get(frame.id);
      if (!p) return;
      if (frame.ok && p.expectFinal && frame.payload?.status === 'accepted') return;
      clearTimeout(p.timer);
      this.pending.delete(frame.id);
      if (frame.ok) p.resolve(frame.payload);
      else p.reject(GatewayError.from(frame.error));
      return;
    }
    if (frame.type === 'event') {
      if (typeof frame.seq === 'number') {
        if (this.lastSeq != null && frame.seq > this.lastSeq + 1) {
          this.dispatchEvent(new CustomEvent('gap', { detail: { expected: this.lastSeq + 1, received: frame.seq } }));
        }
        this.lastSeq = frame.seq;
      }
      if (frame.event === 'shutdown') {
        this.shutdownInfo = frame.payload;
      }
      this.dispatchEvent(new CustomEvent(`event:${frame.event}`, { detail: frame }));
      this.dispatchEvent(new CustomEvent('event', { detail: frame }));
    }
  }
}
