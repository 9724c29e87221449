// Browser scenarios for the Control UI, driven by playwright-core on Debian's chromium.
// Started by crates/cli/tests/e2e/ui.rs (which runs the gateway and the fake LLM):
//
//   node run.mjs <scenario>
//
// Environment: PINCER_UI_URL (http://127.0.0.1:<port>), PINCER_UI_TOKEN, PINCER_UI_ARTIFACTS
// (screenshot dir), PINCER_BIN + PINCER_STATE_DIR (to run `pincer devices approve` like a
// user would). Lines starting with `@@` ask the Rust harness to act (`@@restart-gateway`);
// the harness answers on stdin with `done`. The last line is `RESULT {json}`; exit code 0 =
// pass, 1 = fail, and `RESULT {"skip": "..."}` = skipped with the reason.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const env = process.env;
const BASE = env.PINCER_UI_URL;
const TOKEN = env.PINCER_UI_TOKEN;
const ART = env.PINCER_UI_ARTIFACTS || path.join(os.tmpdir(), 'pincer-ui-artifacts');
const CHROMIUM = env.PINCER_CHROMIUM || '/usr/bin/chromium';
const scenario = process.argv[2];
const result = { scenario, steps: [] };
const contexts = [];
const T = 30_000; // generous: these detect hangs, they do not measure speed

fs.mkdirSync(ART, { recursive: true });

function step(name) {
  result.steps.push(name);
  console.log(`ok - ${name}`);
}

function check(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

const stdinLines = readline.createInterface({ input: process.stdin });
const stdinQueue = [];
const stdinWaiters = [];
stdinLines.on('line', (l) => (stdinWaiters.length ? stdinWaiters.shift()(l) : stdinQueue.push(l)));

/** Asks the Rust harness to do something and waits for its `done`. */
async function harness(command) {
  console.log(`@@${command}`);
  const line = stdinQueue.length ? stdinQueue.shift() : await new Promise((r) => stdinWaiters.push(r));
  check(line.trim() === 'done', `harness answered ${line} to ${command}`);
}

async function launch({ theme = 'light', viewport = { width: 1280, height: 800 }, mobile = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pincer-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    colorScheme: theme,
    viewport,
    isMobile: mobile,
    hasTouch: mobile,
    // The remote scenario uses the gateway's self-signed certificate.
    ignoreHTTPSErrors: BASE.startsWith('https:'),
    deviceScaleFactor: mobile ? 2 : 1,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-default-apps', '--no-default-browser-check'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  const handle = { ctx, page, errors, dir };
  contexts.push(handle);
  return handle;
}

async function closeAll() {
  for (const c of contexts.splice(0)) {
    await c.ctx.close().catch(() => {});
    fs.rmSync(c.dir, { recursive: true, force: true });
  }
}

const gwState = (page) => page.evaluate(() => window.pincer?.gw?.state);

async function waitState(page, state, timeout = T) {
  await page.waitForFunction((s) => window.pincer?.gw?.state === s, state, { timeout });
}

async function shot(page, name) {
  await page.waitForTimeout(150); // let animations settle
  await page.screenshot({ path: path.join(ART, `${name}.png`) });
  step(`screenshot ${name}.png`);
}

async function open(handle, route = '/', { token = TOKEN } = {}) {
  await handle.page.goto(`${BASE}${route}${token ? `#token=${encodeURIComponent(token)}` : ''}`);
}

async function gotoView(page, label) {
  await page.click(`[data-testid=nav-${label}]`);
  await page.waitForFunction((l) => document.querySelector('.view-title')?.textContent?.toLowerCase() === l, label, { timeout: T });
  await page.waitForTimeout(400);
}

// Chromium aborts in-flight loads when the host's interfaces change (other tests create
// network namespaces and veth pairs in parallel); that is the machine, not the page.
const ENVIRONMENT_NOISE = ['net::ERR_NETWORK_CHANGED'];

function noPageErrors(handle, allow = []) {
  const ok = [...allow, ...ENVIRONMENT_NOISE];
  const bad = handle.errors.filter((e) => e.startsWith('pageerror') || !ok.some((a) => e.includes(a)));
  check(bad.length === 0, `no errors in the page, got:\n${bad.join('\n')}`);
}

async function send(page, text) {
  await page.fill('[data-testid=composer]', text);
  await page.press('[data-testid=composer]', 'Enter');
}

// ---- scenarios ----

const scenarios = {
  /** Load, silent local pairing, credentials handling, every view in both themes, first paint. */
  async smoke() {
    const a = await launch();
    const { page } = a;
    const resp = await page.goto(`${BASE}/#token=${encodeURIComponent(TOKEN)}`);
    const csp = resp.headers()['content-security-policy'] || '';
    check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `strict CSP: ${csp}`);
    await waitState(page, 'connected');
    step('connected with a signed device identity (silent local pairing)');
    check(!page.url().includes('token='), `token removed from the URL: ${page.url()}`);
    const stored = await page.evaluate(() => ({ s: sessionStorage.getItem('pincer.gateway.credential'), l: localStorage.getItem('pincer.gateway.credential') }));
    check(stored.s && stored.s.includes(TOKEN) && !stored.l, 'the token is in sessionStorage only');
    step('token taken from the fragment, kept in sessionStorage');
    const info = await page.evaluate(() => ({
      method: window.pincer.gw.hello.auth.method,
      deviceToken: Boolean(window.pincer.gw.hello.auth.deviceToken),
      scopes: window.pincer.gw.hello.auth.scopes,
      deviceId: window.pincer.gw.identity.id,
      extractable: window.pincer.gw.identity.keyPair.privateKey.extractable,
      paint: performance.getEntriesByType('paint').map((e) => [e.name, e.startTime]),
      transfer: performance.getEntriesByType('resource').reduce((n, e) => n + (e.transferSize || 0), 0)
        + (performance.getEntriesByType('navigation')[0]?.transferSize || 0),
      encodings: performance.getEntriesByType('resource').map((e) => [e.name.split('/').pop(), e.encodedBodySize, e.decodedBodySize]),
    }));
    check(info.deviceToken, 'a device token was issued');
    check(info.extractable === false, 'the private key is not extractable');
    check(info.scopes.includes('operator.admin'), `scopes: ${info.scopes}`);
    result.firstPaintMs = Object.fromEntries(info.paint)['first-contentful-paint'] ?? Object.fromEntries(info.paint)['first-paint'];
    result.transferBytes = info.transfer;
    result.deviceId = info.deviceId;
    step(`first contentful paint ${Math.round(result.firstPaintMs)} ms, ${info.transfer} bytes transferred`);

    // A reload reuses the identity and the stored device token (no new pairing).
    await page.reload();
    await waitState(page, 'connected');
    const again = await page.evaluate(() => window.pincer.gw.identity.id);
    check(again === info.deviceId, 'the device identity persists in IndexedDB');
    step('reload keeps the device identity');
    const warm = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('paint').map((e) => [e.name, e.startTime])));
    result.firstPaintWarmMs = warm['first-contentful-paint'] ?? warm['first-paint'];
    step(`first contentful paint after a reload (cached assets) ${Math.round(result.firstPaintWarmMs)} ms`);
    // A new tab has no token (sessionStorage is per tab): the stored device token is enough.
    await page.evaluate(() => sessionStorage.clear());
    await page.reload();
    await waitState(page, 'connected');
    const method = await page.evaluate(() => window.pincer.gw.hello.auth.method);
    check(method === 'device-token', `reconnected with the device token alone (${method})`);
    step('without the shared token the device token signs in');

    for (const theme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: theme });
      await page.evaluate((t) => { localStorage.setItem('pincer.theme', t); document.documentElement.dataset.theme = t; }, theme);
      for (const view of ['chat', 'sessions', 'approvals', 'devices', 'nodes', 'channels', 'config', 'logs', 'health']) {
        await gotoView(page, view);
        if (view === 'logs') await page.waitForSelector('[data-testid=log-line]', { timeout: T });
        await shot(page, `${view}-${theme}`);
      }
    }
    // Theme toggle button flips the theme.
    const before = await page.evaluate(() => document.documentElement.dataset.theme);
    await page.click('[data-testid=theme-toggle]');
    const after = await page.evaluate(() => document.documentElement.dataset.theme);
    check(before !== after, 'the theme toggle switches themes');
    step('theme toggle');

    // Views whose methods are missing say so (driven by features.methods).
    const missing = await page.evaluate(() => ['node.list', 'channels.status', 'exec.approval.resolve'].filter((m) => !window.pincer.gw.has(m)));
    if (missing.includes('node.list')) {
      await gotoView(page, 'nodes');
      await page.waitForSelector('[data-testid=unavailable]', { timeout: T });
      step('Nodes says "not available on this gateway"');
    }
    result.missingMethods = missing;

    // A page from another origin cannot talk to the gateway as the Control UI.
    const foreign = http.createServer((_req, res) => res.end('<!doctype html><title>elsewhere</title>'));
    await new Promise((r) => foreign.listen(0, '127.0.0.1', r));
    const other = await launch();
    await other.page.goto(`http://127.0.0.1:${foreign.address().port}/`);
    const refused = await other.page.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onmessage = (m) => {
        const f = JSON.parse(m.data);
        if (f.event === 'connect.challenge') {
          ws.send(JSON.stringify({ type: 'req', id: 'c', method: 'connect', params: {
            minProtocol: 4, maxProtocol: 4, role: 'operator', scopes: ['operator.admin'],
            client: { id: 'openclaw-control-ui', version: '1', platform: 'web', mode: 'ui' } } }));
        } else if (f.type === 'res') resolve(f.error?.details?.code || 'accepted');
      };
      ws.onclose = (e) => resolve(`closed ${e.code}`);
    }), BASE.replace(/^http/, 'ws'));
    foreign.close();
    check(refused === 'CONTROL_UI_ORIGIN_NOT_ALLOWED', `a foreign origin is refused: ${refused}`);
    step('a page from another origin is refused (CONTROL_UI_ORIGIN_NOT_ALLOWED)');

    // WebChat on a phone.
    const phone = await launch({ viewport: { width: 390, height: 844 }, mobile: true, theme: 'dark' });
    await open(phone, '/chat');
    await waitState(phone.page, 'connected');
    await phone.page.waitForSelector('[data-testid=composer]');
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    check(!overflow, 'WebChat fits the phone screen (no horizontal scroll)');
    await shot(phone.page, 'webchat-phone-dark');
    noPageErrors(a);
    noPageErrors(phone);
  },

  /** Chat with the fake LLM: streamed Markdown reply, tool-call card, code block, usage. */
  async chat() {
    const a = await launch();
    const { page } = a;
    await open(a, '/');
    await waitState(page, 'connected');
    await send(page, 'Please read my notes');
    // The streaming bubble shows partial text before the run ends.
    await page.waitForSelector('.msg.assistant.streaming .segment', { timeout: T });
    const partial = await page.textContent('.msg.assistant.streaming');
    step(`streaming: "${partial.trim().slice(0, 40)}…"`);
    await page.waitForSelector('[data-testid=tool-card]', { timeout: T });
    step('tool-call card shown');
    await page.waitForFunction(() => !document.querySelector('.msg.assistant.streaming'), null, { timeout: T });
    const last = page.locator('[data-testid=msg-assistant]').last();
    const text = await last.textContent();
    check(text.includes('Here is the summary'), `final reply: ${text}`);
    check(await last.locator('strong', { hasText: 'important' }).count() === 1, 'bold rendered');
    check(await last.locator('.code-block code', { hasText: 'cargo build' }).count() === 1, 'code block rendered');
    check(await last.locator('li').count() >= 2, 'list rendered');
    step('streamed reply rendered as Markdown (bold, list, code block)');
    const card = page.locator('[data-testid=tool-card]').first();
    await card.locator('summary').click();
    const body = await card.textContent();
    check(body.includes('USER.md') && /done|error/.test(body), `tool card expands with args and result: ${body}`);
    step('tool card expands with arguments and result');
    await page.waitForFunction(() => /in ·/.test(document.querySelector('[data-testid=usage]')?.textContent || ''), null, { timeout: T });
    step(`usage: ${await page.textContent('[data-testid=usage]')}`);
    // History after a reload shows the same conversation (tool card included).
    await page.reload();
    await waitState(page, 'connected');
    await page.waitForSelector('[data-testid=tool-card]', { timeout: T });
    const hist = await page.textContent('[data-testid=messages]');
    check(hist.includes('Please read my notes') && hist.includes('Here is the summary'), 'history shows the conversation');
    step('chat.history shows the conversation after a reload');
    // A message sent by another client (the CLI) shows up live, with its streamed reply.
    execFileSync(env.PINCER_BIN, ['gateway', 'call', 'agent', '--params',
      JSON.stringify({ message: 'Hello from the terminal', sessionKey: 'main', idempotencyKey: `cli-${Date.now()}` })],
    { env: { ...env, PINCER_STATE_DIR: env.PINCER_STATE_DIR }, stdio: 'pipe' });
    await page.waitForFunction(() => {
      const t = document.querySelector('[data-testid=messages]')?.textContent || '';
      return t.includes('Hello from the terminal') && t.includes('You said') && !document.querySelector('.msg.assistant.streaming');
    }, null, { timeout: T });
    step('a message from another client (CLI) and its reply appear live');
    await shot(page, 'chat-conversation-light');
    // The same conversation in WebChat on a phone, dark theme.
    const phone = await launch({ viewport: { width: 390, height: 844 }, mobile: true, theme: 'dark' });
    await open(phone, '/chat?session=main');
    await waitState(phone.page, 'connected');
    await phone.page.waitForSelector('[data-testid=tool-card]', { timeout: T });
    await send(phone.page, 'sent from the phone');
    await phone.page.waitForFunction(() => /You said: sent from the phone/.test(document.querySelector('[data-testid=messages]')?.textContent || '') && !document.querySelector('.msg.assistant.streaming'), null, { timeout: T });
    step('WebChat (?session=main) sends and streams the reply');
    execFileSync(env.PINCER_BIN, ['gateway', 'call', 'agent', '--params',
      JSON.stringify({ message: 'Terminal again', sessionKey: 'main', idempotencyKey: `cli2-${Date.now()}` })],
    { env: { ...env, PINCER_STATE_DIR: env.PINCER_STATE_DIR }, stdio: 'pipe' });
    await phone.page.waitForFunction(() => /You said: Terminal again/.test(document.querySelector('[data-testid=messages]')?.textContent || ''), null, { timeout: T });
    step('WebChat shows a run started by another client live');
    await shot(phone.page, 'webchat-phone-conversation-dark');
    noPageErrors(phone);
    // New session.
    await page.click('[data-testid=new-session]');
    await page.waitForSelector('[data-testid=chat-empty]', { timeout: T });
    const key = await page.textContent('[data-testid=session-key]');
    check(/^agent:main:dashboard:/.test(key), `new session key ${key}`);
    step(`new session ${key}`);
    noPageErrors(a);
  },

  /** A slow reply is stopped with Esc. */
  async abort() {
    const a = await launch();
    const { page } = a;
    await open(a, '/');
    await waitState(page, 'connected');
    await send(page, 'Tell me a long story');
    await page.waitForSelector('.msg.assistant.streaming .segment', { timeout: T });
    step('reply streaming');
    await page.waitForSelector('[data-testid=abort]:not([hidden])', { timeout: T });
    await page.press('[data-testid=composer]', 'Escape');
    await page.waitForSelector('[data-testid=stopped]', { timeout: T });
    step('Esc stopped the run ("Stopped" shown)');
    check(await page.isHidden('[data-testid=abort]'), 'stop button hidden after the abort');
    const text = await page.locator('[data-testid=msg-assistant]').last().textContent();
    check(!text.includes('THE END'), 'the rest of the story never arrived');
    await shot(page, 'chat-aborted-light');
    noPageErrors(a);
  },

  /** A first run's session shows in the list (with the live dot) while the reply streams. */
  async 'sessions-live'() {
    const a = await launch();
    const { page } = a;
    await open(a, '/');
    await waitState(page, 'connected');
    await page.waitForFunction(() => /No sessions yet/.test(document.querySelector('[data-testid=session-list]')?.textContent || ''), null, { timeout: T });
    step('empty session list before the first message');
    await send(page, 'Tell me a slow story');
    await page.waitForSelector('.msg.assistant.streaming .segment', { timeout: T });
    step('reply streaming');
    const live = '[data-testid=session-item][data-key="agent:main:main"] .live-dot';
    // Both at once: the row is listed and marked running while the reply still streams.
    await page.waitForFunction((sel) => document.querySelector(sel) && document.querySelector('.msg.assistant.streaming'), live, { timeout: T });
    step('the new session is listed as running during its first run');
    await shot(page, 'chat-session-listed-while-streaming');
    await page.waitForFunction(() => !document.querySelector('.msg.assistant.streaming'), null, { timeout: 60000 });
    await page.waitForFunction((sel) => !document.querySelector(sel) && document.querySelector('[data-testid=session-item][data-key="agent:main:main"]'), live, { timeout: T });
    step('the live dot goes away when the run ends; the session stays listed');
    noPageErrors(a);
  },

  /** HTML in messages stays text: nothing runs, the DOM has the literal characters. */
  async xss() {
    const a = await launch();
    const { page } = a;
    await open(a, '/');
    await waitState(page, 'connected');
    const payload = 'look <img src=x onerror="window.pwned=1"> and <script>window.pwned=2</script> [x](javascript:window.pwned=3)';
    await send(page, payload);
    await page.waitForFunction(() => !document.querySelector('.msg.assistant.streaming') && document.querySelectorAll('[data-testid=msg-assistant]').length > 0, null, { timeout: T });
    await page.waitForTimeout(500);
    const r = await page.evaluate(() => ({
      xss: window.pwned,
      imgs: document.querySelectorAll('[data-testid=messages] img').length,
      scripts: document.querySelectorAll('[data-testid=messages] script').length,
      jsLinks: [...document.querySelectorAll('[data-testid=messages] a')].filter((l) => !/^https?:|^mailto:/.test(l.href)).length,
      user: [...document.querySelectorAll('[data-testid=msg-user]')].pop()?.textContent || '',
      assistant: [...document.querySelectorAll('[data-testid=msg-assistant]')].pop()?.textContent || '',
    }));
    check(r.xss === undefined, `no script ran (window.pwned=${r.xss})`);
    check(r.imgs === 0 && r.scripts === 0 && r.jsLinks === 0, `no img/script/javascript: link elements (${JSON.stringify(r)})`);
    check(r.user.includes('<img src=x onerror="window.pwned=1">') && r.user.includes('<script>window.pwned=2</script>'), `user text literal: ${r.user}`);
    check(r.assistant.includes('<img src=x onerror=') && r.assistant.includes('<script>'), `echoed reply literal: ${r.assistant}`);
    step('HTML in user and model text rendered as literal text; nothing executed');
    await shot(page, 'chat-xss-light');
    noPageErrors(a);
  },

  /** Pairing needs approval (autoApproveLocal off): the page shows the command, the CLI
   * approves, the page connects by itself; then a second browser is approved from Devices. */
  async pairing() {
    const a = await launch();
    await open(a, '/');
    await waitState(a.page, 'pairing');
    await a.page.waitForSelector('[data-testid=pair-command]');
    const cmd = (await a.page.textContent('[data-testid=pair-command] code')).trim();
    const m = /^pincer devices approve ([0-9a-f-]{36})$/.exec(cmd);
    check(m, `the exact approval command is shown: ${cmd}`);
    await shot(a.page, 'pairing-wait-light');
    step(`waiting for approval: ${cmd}`);
    execFileSync(env.PINCER_BIN, ['devices', 'approve', m[1]], { env: { ...env, PINCER_STATE_DIR: env.PINCER_STATE_DIR }, stdio: 'pipe' });
    await waitState(a.page, 'connected', 20_000);
    step('approved with the CLI: the page connected by itself');

    const b = await launch({ theme: 'dark' });
    await open(b, '/');
    await waitState(b.page, 'pairing');
    const cmdB = (await b.page.textContent('[data-testid=pair-command] code')).trim();
    const reqB = cmdB.split(' ').pop();
    step(`second browser waiting (${reqB})`);
    await gotoView(a.page, 'devices');
    const card = a.page.locator(`[data-testid=pending-device][data-request-id="${reqB}"]`);
    await card.waitFor({ timeout: T });
    await shot(a.page, 'devices-pending-light');
    await card.locator('[data-testid=device-approve]').click();
    await waitState(b.page, 'connected', 20_000);
    step('approved from the Devices view: the second browser connected by itself');
    await a.page.waitForFunction(() => document.querySelectorAll('[data-testid=paired-device]').length >= 2, null, { timeout: T });
    await shot(a.page, 'devices-paired-light');
    // Revoking B's token signs B out (4001 device removed); B comes back to pairing or sign-in.
    const bId = await b.page.evaluate(() => window.pincer.gw.identity.id);
    await a.page.locator(`[data-testid=paired-device][data-device-id="${bId}"] [data-testid=device-revoke]`).click();
    await a.page.click('[data-testid=confirm-ok]');
    await b.page.waitForFunction(() => window.pincer.gw.state !== 'connected', null, { timeout: T });
    step('revoking the second browser disconnected it');
    noPageErrors(a, ['WebSocket']);
  },

  /** From a non-loopback address over TLS: the page waits for approval, shows the command,
   * connects by itself once approved, and chats over wss://. */
  async remote() {
    const a = await launch({ theme: 'dark' });
    const { page } = a;
    check(BASE.startsWith('https://') && !BASE.includes('127.0.0.1'), `remote URL ${BASE}`);
    await open(a, '/');
    await waitState(page, 'pairing');
    const cmd = (await page.textContent('[data-testid=pair-command] code')).trim();
    const m = /^pincer devices approve ([0-9a-f-]{36})$/.exec(cmd);
    check(m, `the exact approval command is shown: ${cmd}`);
    await shot(page, 'remote-pairing-dark');
    step(`remote browser waits for approval: ${cmd}`);
    execFileSync(env.PINCER_BIN, ['devices', 'approve', m[1]], { env: { ...env, PINCER_STATE_DIR: env.PINCER_STATE_DIR }, stdio: 'pipe' });
    await waitState(page, 'connected', 20_000);
    step('approved on the gateway host: connected by itself over wss://');
    await send(page, 'hello over wss');
    await page.waitForFunction(() => /You said: hello over wss/.test(document.querySelector('[data-testid=messages]')?.textContent || '') && !document.querySelector('.msg.assistant.streaming'), null, { timeout: T });
    step('chat works from the remote browser');
    await shot(page, 'remote-chat-dark');
    noPageErrors(a);
  },

  /** Exec approvals: a prompt over any view; Allow once lets the command run. */
  async approvals() {
    const a = await launch();
    const { page } = a;
    await open(a, '/');
    await waitState(page, 'connected');
    const has = await page.evaluate(() => window.pincer.gw.has('exec.approval.resolve'));
    if (!has) {
      result.skip = 'this gateway has no exec.approval.* methods yet (issue 6 integration); the prompt and the Approvals view show "not available"';
      await gotoView(page, 'approvals');
      await page.waitForSelector('[data-testid=unavailable]', { timeout: T });
      return;
    }
    await send(page, 'Run the approval demo');
    await page.waitForSelector('pc-approval-prompt [data-testid=approval-card]', { timeout: T });
    await shot(page, 'approval-prompt-light');
    step('approval prompt shown over the Chat view');
    await page.click('pc-approval-prompt [data-testid=approval-allow]');
    await page.waitForFunction(() => !document.querySelector('pc-approval-prompt [data-testid=approval-card]'), null, { timeout: T });
    await page.waitForFunction(() => !document.querySelector('.msg.assistant.streaming'), null, { timeout: T });
    step('allowed once; the run finished');
    // The next request is denied from the Approvals view.
    await send(page, 'Run it again');
    await page.waitForSelector('pc-approval-prompt [data-testid=approval-card]', { timeout: T });
    await gotoView(page, 'approvals');
    check(await page.isHidden('pc-approval-prompt'), 'the floating prompt hides on the Approvals page');
    await page.waitForSelector('[data-testid=pending-approvals] [data-testid=approval-card]', { timeout: T });
    await shot(page, 'approvals-pending-light');
    await page.click('[data-testid=pending-approvals] [data-testid=approval-deny]');
    await page.waitForFunction(() => !document.querySelector('[data-testid=pending-approvals]'), null, { timeout: T });
    const decided = await page.textContent('pc-approvals');
    check(/deny/.test(decided), `the decision is listed: ${decided}`);
    step('denied from the Approvals view; the decision is listed');
    await gotoView(page, 'chat');
    await page.waitForFunction(() => !document.querySelector('.msg.assistant.streaming'), null, { timeout: T });
    noPageErrors(a);
  },

  /** The gateway restarts: the page says so, reconnects by itself and says so. */
  async reconnect() {
    const a = await launch();
    const { page } = a;
    await open(a, '/');
    await waitState(page, 'connected');
    await harness('restart-gateway');
    await page.waitForSelector('[data-testid=conn-banner]:has-text("Reconnected")', { timeout: 40_000 });
    check(await gwState(page) === 'connected', 'connected again');
    step('the page reconnected by itself and said so');
    await shot(page, 'reconnected-light');
    // Works after the restart: a request succeeds.
    const ok = await page.evaluate(() => window.pincer.gw.request('health', {}).then((h) => h.ok));
    check(ok === true, 'health works after the reconnect');
    const events = await page.evaluate(() => document.querySelector('[data-testid=conn-banner]').textContent);
    result.banner = events;
    noPageErrors(a, ['WebSocket']);
  },

  /** The banner during a restart (the harness holds the gateway down). */
  async outage() {
    const a = await launch();
    const { page } = a;
    await open(a, '/');
    await waitState(page, 'connected');
    await harness('stop-gateway');
    await waitState(page, 'reconnecting');
    await page.waitForSelector('[data-testid=conn-banner]:not([hidden])');
    await shot(page, 'reconnecting-light');
    step('banner while the gateway is down');
    await harness('start-gateway');
    await waitState(page, 'connected', 40_000);
    step('reconnected');
    noPageErrors(a, ['WebSocket']);
  },

  /** Nodes: a real `pincer node run` host asks for its commands; approve from the Nodes view. */
  async nodes() {
    const a = await launch();
    const { page } = a;
    await open(a, '/nodes');
    await waitState(page, 'connected');
    const has = await page.evaluate(() => window.pincer.gw.has('node.list'));
    if (!has) {
      result.skip = 'this gateway has no node.* methods';
      return;
    }
    await harness('start-node');
    const card = page.locator('[data-testid=pending-node]').first();
    await card.waitFor({ timeout: T });
    const text = await card.textContent();
    check(text.includes('laptop') && text.includes('system.run'), `pending node card: ${text}`);
    step('the node asks for its commands (pending card)');
    await shot(page, 'nodes-pending-light');
    await card.locator('[data-testid=node-approve]').click();
    await page.waitForSelector('[data-testid=node-row][data-approval=approved]', { timeout: T });
    await page.waitForFunction(() => !document.querySelector('[data-testid=pending-node]'), null, { timeout: T });
    step('approved from the Nodes view: the node is listed with its commands');
    await shot(page, 'nodes-approved-light');
    noPageErrors(a);
  },

  /** Channels: a Telegram account whose API is unreachable shows its error; stop and start. */
  async channels() {
    const a = await launch();
    const { page } = a;
    await open(a, '/channels');
    await waitState(page, 'connected');
    if (!(await page.evaluate(() => window.pincer.gw.has('channels.status')))) {
      result.skip = 'this gateway has no channels.status yet (issue 9)';
      await page.waitForSelector('[data-testid=unavailable]', { timeout: T });
      return;
    }
    const account = page.locator('[data-testid=channel-card][data-channel=telegram] [data-testid=channel-account]').first();
    await account.waitFor({ timeout: T });
    await page.waitForFunction(() => /connection failed|error/i.test(document.querySelector('[data-testid=channel-account]')?.textContent || ''), null, { timeout: T });
    step(`telegram account shown with its error: ${(await account.textContent()).trim().slice(0, 80)}`);
    await shot(page, 'channels-error-light');
    if (await page.evaluate(() => window.pincer.gw.has('channels.stop'))) {
      await account.locator('button', { hasText: 'Stop' }).click();
      await page.click('[data-testid=confirm-ok]');
      await page.waitForSelector('[data-testid=channel-account][data-state=stopped]', { timeout: T });
      step('stopped from the Channels view');
      await page.locator('[data-testid=channel-account] button', { hasText: 'Start' }).click();
      await page.waitForSelector('[data-testid=channel-account]:not([data-state=stopped])', { timeout: T });
      step('started again');
    }
    noPageErrors(a);
  },

  /** Sign-in: no token → the form; a wrong token is refused with the reason; the right one
   * with "remember" connects and is kept in localStorage. */
  async login() {
    const a = await launch();
    const { page } = a;
    await page.goto(`${BASE}/`);
    await waitState(page, 'auth-required');
    await page.waitForSelector('[data-testid=login-secret]');
    await shot(page, 'login-light');
    await page.fill('[data-testid=login-secret]', 'definitely-not-the-token');
    await page.click('[data-testid=login-submit]');
    await page.waitForSelector('[data-testid=login-error]', { timeout: T });
    const why = await page.textContent('[data-testid=login-error]');
    check(/token mismatch/i.test(why), `the refusal says why: ${why}`);
    step(`wrong token refused: ${why.trim()}`);
    await page.fill('[data-testid=login-secret]', TOKEN);
    await page.check('[data-testid=login-remember]');
    await page.click('[data-testid=login-submit]');
    await waitState(page, 'connected');
    const stored = await page.evaluate(() => ({ s: sessionStorage.getItem('pincer.gateway.credential'), l: localStorage.getItem('pincer.gateway.credential') }));
    check(stored.l && stored.l.includes(TOKEN) && !stored.s, 'remembered: localStorage only');
    step('right token with "remember": connected, kept in localStorage');
    noPageErrors(a);
  },

  /** Sessions: search, preview, reset, delete. */
  async sessions() {
    const cli = (...args) => execFileSync(env.PINCER_BIN, ['gateway', 'call', ...args], { env: { ...env, PINCER_STATE_DIR: env.PINCER_STATE_DIR }, stdio: 'pipe' });
    for (const [key, msg] of [['agent:main:alpha', 'alpha notes'], ['agent:main:beta', 'beta plans']]) {
      const runId = `seed-${key.replace(/:/g, '-')}`;
      cli('agent', '--params', JSON.stringify({ message: msg, sessionKey: key, idempotencyKey: runId }));
      cli('agent.wait', '--params', JSON.stringify({ runId, timeoutMs: 20000 }));
    }
    const a = await launch();
    const { page } = a;
    await open(a, '/sessions');
    await waitState(page, 'connected');
    await page.waitForSelector('[data-testid=session-row][data-key="agent:main:alpha"]', { timeout: T });
    await page.fill('[data-testid=sessions-search]', 'beta');
    await page.waitForFunction(() => !document.querySelector('[data-testid=session-row][data-key="agent:main:alpha"]') && document.querySelector('[data-testid=session-row][data-key="agent:main:beta"]'), null, { timeout: T });
    step('search narrows the list');
    await page.fill('[data-testid=sessions-search]', '');
    await page.waitForSelector('[data-testid=session-row][data-key="agent:main:alpha"]', { timeout: T });
    await page.click('[data-testid=session-row][data-key="agent:main:alpha"] [data-testid=session-preview-btn]');
    await page.waitForFunction(() => /alpha notes/.test(document.querySelector('[data-testid=session-preview]')?.textContent || ''), null, { timeout: T });
    step('preview shows the messages');
    await shot(page, 'sessions-preview-light');
    await page.click('[data-testid=session-row][data-key="agent:main:alpha"] [data-testid=session-reset]');
    await page.click('[data-testid=confirm-ok]');
    await page.waitForSelector('[data-testid=toast-ok]', { timeout: T });
    step('reset confirmed');
    await page.click('[data-testid=session-row][data-key="agent:main:beta"] [data-testid=session-delete]');
    await page.click('[data-testid=confirm-ok]');
    await page.waitForFunction(() => !document.querySelector('[data-testid=session-row][data-key="agent:main:beta"]'), null, { timeout: T });
    step('deleted session disappears');
    // A long transcript pages back with "Load earlier messages".
    await page.evaluate(async () => {
      for (let i = 1; i <= 205; i += 1) await window.pincer.gw.request('chat.inject', { sessionKey: 'agent:main:alpha', message: `note ${i}` });
    });
    await page.goto(`${BASE}/?session=${encodeURIComponent('agent:main:alpha')}`);
    await waitState(page, 'connected');
    await page.waitForSelector('[data-testid=load-older]', { timeout: T });
    const before = await page.locator('.msg').count();
    await page.click('[data-testid=load-older]');
    await page.waitForFunction((b) => document.querySelectorAll('.msg').length > b, before, { timeout: T });
    const first = await page.locator('.msg').first().textContent();
    check(first.includes('note 1') || first.includes('alpha notes'), `the oldest message is shown first: ${first}`);
    step(`older messages loaded (${before} → ${await page.locator('.msg').count()})`);
    noPageErrors(a);
  },

  /** Config: a bad edit is refused and the problem is shown on the offending line. */
  async config() {
    const a = await launch();
    const { page } = a;
    await open(a, '/config');
    await waitState(page, 'connected');
    await page.waitForSelector('[data-testid=config-editor]');
    const original = await page.inputValue('[data-testid=config-editor]');
    const broken = original.replace(/\{/, '{\n  session: { dmScope: "bogus" },\n  agents_typo: 1,');
    await page.fill('[data-testid=config-editor]', broken);
    await page.click('[data-testid=config-save]');
    await page.waitForSelector('[data-testid=config-error-line]', { timeout: T });
    const lines = await page.$$eval('[data-testid=config-error-line]', (els) => els.map((e) => [e.dataset.line, e.textContent]));
    check(lines.some(([l, t]) => l === '2' && t.includes('session.dmScope')), `error shown at session.dmScope (line 2): ${JSON.stringify(lines)}`);
    check(lines.some(([l, t]) => l === '3' && t.includes('agents_typo')), `error shown at agents_typo (line 3): ${JSON.stringify(lines)}`);
    step('validation errors shown at the offending keys');
    await shot(page, 'config-errors-light');
    // A valid edit is saved (baseHash) and reloads.
    await page.fill('[data-testid=config-editor]', original.replace(/\{/, '{\n  session: { dmScope: "per-peer" },'));
    await page.click('[data-testid=config-save]');
    await page.waitForSelector('[data-testid=toast-ok]', { timeout: T });
    const saved = await page.inputValue('[data-testid=config-editor]');
    check(saved.includes('per-peer'), 'saved config reloaded');
    step('valid edit saved');
    noPageErrors(a);
  },
};

async function main() {
  const fn = scenarios[scenario];
  if (!fn) throw new Error(`unknown scenario ${scenario}; one of: ${Object.keys(scenarios).join(', ')}`);
  check(BASE && TOKEN, 'PINCER_UI_URL and PINCER_UI_TOKEN are set');
  await fn();
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  result.error = String(e?.stack || e);
  for (const c of contexts) {
    const name = `FAILED-${scenario}-${contexts.indexOf(c)}`;
    await c.page.screenshot({ path: path.join(ART, `${name}.png`) }).catch(() => {});
    result.pageErrors = [...(result.pageErrors || []), ...c.errors];
  }
} finally {
  await closeAll();
  stdinLines.close();
}
console.log(`RESULT ${JSON.stringify(result)}`);
process.exit(code);
