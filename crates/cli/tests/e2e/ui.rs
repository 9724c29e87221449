//! The Control UI: HTTP serving (headers, compression, cache rules, SPA fallback,
//! `control-ui-config.json` auth, base path), the browser-facing handshake rules (Origin,
//! build id), and real-browser scenarios: `node crates/control-ui/browser-tests/run.mjs
//! <scenario>` drives Debian's chromium (playwright-core) against this gateway and the fake
//! LLM. Screenshots land in `test-artifacts/ui/`.
//!
//! Without chromium, node or `npm ci` in the browser-tests directory the browser tests print
//! `SKIP:` and pass, unless `PINCER_UI_TESTS_REQUIRED=1` (set by `scripts/test.sh` after it
//! installed them), in which case they fail.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pincer_fakes::llm::{DefaultReply, FakeLlm, FakeLlmOptions, Reply};
use pincer_testkit::http::{http_request, HttpResponse};
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::bin;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn browser_tests_dir() -> PathBuf {
    workspace_root().join("crates/control-ui/browser-tests")
}

fn artifacts_dir() -> PathBuf {
    let dir = workspace_root().join("test-artifacts/ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Why the browser tests cannot run here, if they cannot.
fn browser_missing() -> Option<String> {
    let chromium = std::env::var("PINCER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is missing".into());
    }
    if !browser_tests_dir()
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Some(
            "playwright-core is not installed (npm ci in crates/control-ui/browser-tests)".into(),
        );
    }
    None
}

fn skip_browser() -> bool {
    match browser_missing() {
        None => false,
        Some(why) if std::env::var("PINCER_UI_TESTS_REQUIRED").as_deref() == Ok("1") => {
            panic!("browser tests required but cannot run: {why}")
        }
        Some(why) => {
            eprintln!("SKIP: browser test: {why}");
            true
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fake LLM answering with the echo of the last user message unless turns are queued.
fn fake_llm(rt: &tokio::runtime::Runtime) -> FakeLlm {
    rt.block_on(FakeLlm::start_with(FakeLlmOptions {
        default_reply: Some(DefaultReply::Echo {
            chunk_delay: Duration::from_millis(15),
        }),
        models: vec!["fake-model".into()],
        ..Default::default()
    }))
    .unwrap()
}

/// A state dir whose config points the default agent at the fake LLM.
fn state_with_provider(fake: &FakeLlm, extra: Value) -> tempfile::TempDir {
    let state = tempfile::tempdir().unwrap();
    let mut config = json!({
        "agents": {"defaults": {"model": {"primary": "fake/fake-model"}}},
        "models": {"mode": "replace", "providers": {"fake": {
            "baseUrl": fake.openai_base_url(),
            "apiKey": "sk-local-fake",
            "api": "openai-completions",
            "models": [{"id": "fake-model", "name": "Fake Model", "reasoning": false,
                        "input": ["text"], "contextWindow": 32000, "maxTokens": 1024}]
        }}}
    });
    merge(&mut config, extra);
    std::fs::write(
        state.path().join("pincer.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    state
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// `pincer gateway run` on a given port (for restarts on the same port).
fn spawn_on_port(state: tempfile::TempDir, port: u16, args: &[&str]) -> GatewayProcess {
    let out = std::fs::File::create(state.path().join("stdout.txt")).unwrap();
    let err = std::fs::File::create(state.path().join("stderr.txt")).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["gateway", "run", "--port", &port.to_string()])
        .args(args)
        .env("PINCER_STATE_DIR", state.path());
    for var in [
        "PINCER_GATEWAY_TOKEN",
        "OPENCLAW_GATEWAY_TOKEN",
        "PINCER_GATEWAY_PASSWORD",
        "OPENCLAW_GATEWAY_PASSWORD",
        "PINCER_GATEWAY_PORT",
        "OPENCLAW_GATEWAY_PORT",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + START_TIMEOUT;
    let info = loop {
        // The port may still be held for a moment by the previous process.
        match wait_for_gateway_json(state.path(), &mut child, START_TIMEOUT) {
            Ok(v) => break v,
            Err(e) if Instant::now() < deadline && e.contains("exited") => {
                std::thread::sleep(Duration::from_millis(200));
                child = cmd.spawn().unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    };
    GatewayProcess {
        child,
        state_dir: state,
        port,
        url: format!("ws://127.0.0.1:{port}"),
        info,
    }
}

/// The gateway a scenario runs against (restartable on the same port).
struct Ui {
    gw: Option<GatewayProcess>,
    /// The state dir while the gateway is held down (`@@stop-gateway`).
    parked: Option<tempfile::TempDir>,
    /// The page URL when not `http://127.0.0.1:<port>` (the remote scenario).
    url: Option<String>,
    /// A `pincer node run` host (`@@start-node`), killed on drop.
    node: Option<(std::process::Child, tempfile::TempDir)>,
    args: Vec<String>,
    token: String,
    port: u16,
}

impl Drop for Ui {
    fn drop(&mut self) {
        if let Some((mut child, _dir)) = self.node.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Ui {
    fn start(state: tempfile::TempDir, args: &[&str]) -> Ui {
        let mut opts = SpawnOptions::default();
        for a in args {
            opts = opts.arg(*a);
        }
        let gw = GatewayProcess::spawn_in(bin(), state, opts);
        Ui {
            token: gw.token(),
            port: gw.port,
            gw: Some(gw),
            parked: None,
            url: None,
            node: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn gw(&self) -> &GatewayProcess {
        self.gw.as_ref().unwrap()
    }

    fn stop(&mut self) -> tempfile::TempDir {
        let mut gw = self.gw.take().unwrap();
        gw.sigterm();
        assert!(gw.wait_exit(Duration::from_secs(10)).is_some());
        let state = std::mem::replace(&mut gw.state_dir, tempfile::tempdir().unwrap());
        drop(gw);
        state
    }

    fn start_again(&mut self, state: tempfile::TempDir) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.gw = Some(spawn_on_port(state, self.port, &args));
    }

    /// Runs one browser scenario; answers its `@@` requests; returns its RESULT.
    fn scenario(&mut self, name: &str) -> Value {
        let gw = self.gw();
        let mut child = Command::new("node")
            .arg("run.mjs")
            .arg(name)
            .current_dir(browser_tests_dir())
            .env(
                "PINCER_UI_URL",
                self.url
                    .clone()
                    .unwrap_or_else(|| format!("http://127.0.0.1:{}", gw.port)),
            )
            .env("PINCER_UI_TOKEN", &self.token)
            .env("PINCER_UI_ARTIFACTS", artifacts_dir())
            .env("PINCER_BIN", bin())
            .env("PINCER_STATE_DIR", gw.state_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node");
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let stderr_thread = std::thread::spawn(move || {
            let mut s = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                s.push_str(&line);
                s.push('\n');
            }
            s
        });
        let mut stdin = child.stdin.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut transcript = String::new();
        let mut result = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("[{name}] {line}");
                    transcript.push_str(&line);
                    transcript.push('\n');
                    if let Some(cmd) = line.strip_prefix("@@") {
                        self.harness(cmd);
                        writeln!(stdin, "done").unwrap();
                        stdin.flush().unwrap();
                    } else if let Some(json) = line.strip_prefix("RESULT ") {
                        result = Some(serde_json::from_str::<Value>(json).unwrap());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("browser scenario {name} hung:\n{transcript}");
                }
            }
        }
        drop(stdin);
        let status = child.wait().unwrap();
        let stderr = stderr_thread.join().unwrap_or_default();
        let result = result.unwrap_or_else(|| {
            panic!("scenario {name}: no RESULT line\n{transcript}\nstderr:\n{stderr}")
        });
        assert!(
            status.success(),
            "browser scenario {name} failed: {}\n{transcript}\nstderr:\n{stderr}\ngateway log:\n{}",
            result["error"].as_str().unwrap_or(""),
            self.gw.as_ref().map(|g| g.all_logs()).unwrap_or_default()
        );
        if let Some(gw) = self.gw.as_mut() {
            gw.assert_alive_without_panic();
        }
        result
    }

    fn harness(&mut self, cmd: &str) {
        match cmd {
            "restart-gateway" => {
                let state = self.stop();
                self.start_again(state);
            }
            "stop-gateway" => {
                let state = self.stop();
                self.parked = Some(state);
            }
            "start-gateway" => {
                let state = self.parked.take().unwrap();
                self.start_again(state);
            }
            "start-node" => {
                let dir = tempfile::tempdir().unwrap();
                let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
                let child = Command::new(bin())
                    .args([
                        "node",
                        "run",
                        "--url",
                        &self.gw().url,
                        "--display-name",
                        "laptop",
                    ])
                    .arg(format!("--token={}", self.token))
                    .env("PINCER_STATE_DIR", dir.path())
                    .env_remove("PINCER_GATEWAY_TOKEN")
                    .env_remove("PINCER_GATEWAY_URL")
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                self.node = Some((child, dir));
            }
            other => panic!("unknown harness request {other}"),
        }
    }
}

// ---- HTTP and handshake (no browser) ----

async fn req(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut headers = headers.to_vec();
    if method == "POST" {
        headers.push(("content-length", "0"));
    }
    http_request(addr, method, path, &headers, Duration::from_secs(10))
        .await
        .unwrap()
}

fn header<'a>(r: &'a HttpResponse, name: &str) -> &'a str {
    r.header(name).unwrap_or("")
}

#[tokio::test]
async fn the_ui_is_served_with_compression_cache_rules_and_a_strict_csp() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let port = gw.port;
    let index = req(port, "GET", "/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(index.status, 200);
    assert_eq!(header(&index, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&index, "cache-control"), "no-cache");
    assert_eq!(header(&index, "content-encoding"), "gzip");
    let csp = header(&index, "content-security-policy");
    for part in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(
        csp.contains(&format!("ws://127.0.0.1:{}", gw.port)),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&index, "x-content-type-options"), "nosniff");
    assert_eq!(header(&index, "referrer-policy"), "no-referrer");

    // SPA fallback: unmatched paths are the app; probes still answer JSON.
    let plain = req(port, "GET", "/sessions/whatever", &[]).await;
    assert_eq!(plain.status, 200);
    let html = plain.body_text();
    assert!(html.contains("<script type=\"module\""), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");
    let probe = req(port, "GET", "/healthz", &[]).await;
    assert_eq!(probe.json()["status"], "live");

    // Hashed assets: immutable, negotiated, revalidated.
    let js_path = html
        .split('"')
        .find(|s| s.ends_with("/js/main.js") && s.starts_with("/assets/"))
        .unwrap()
        .to_string();
    let br = req(port, "GET", &js_path, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(br.status, 200);
    assert_eq!(header(&br, "content-encoding"), "br");
    assert_eq!(
        header(&br, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&br, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let identity = req(port, "GET", &js_path, &[]).await;
    assert_eq!(header(&identity, "content-encoding"), "");
    assert!(identity.body_text().contains("import"));
    assert!(br.body.len() < identity.body.len());
    let etag = header(&br, "etag").to_string();
    let again = req(
        port,
        "GET",
        &js_path,
        &[("accept-encoding", "br"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let stale = req(port, "GET", "/assets/0123456789abcdef/js/main.js", &[]).await;
    assert_eq!(stale.status, 404);

    // control-ui-config.json needs the gateway's HTTP auth.
    let anon = req(port, "GET", "/control-ui-config.json", &[]).await;
    assert_eq!(anon.status, 401);
    assert_eq!(anon.json()["error"]["type"], "unauthorized");
    let wrong = req(
        port,
        "GET",
        "/control-ui-config.json",
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {}", gw.token());
    let cfg = req(
        port,
        "GET",
        "/control-ui-config.json",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(cfg.status, 200);
    let cfg = cfg.json();
    assert_eq!(cfg["basePath"], "");
    assert_eq!(cfg["serverBuildId"], html_build_id(&html));
    // Non-GET methods on UI paths are not the UI.
    let post = req(port, "POST", "/", &[]).await;
    assert_eq!(post.status, 404);
}

fn html_build_id(html: &str) -> String {
    html.split("data-build-id=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_base_path_moves_the_ui_and_enabled_false_removes_it() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join("pincer.json"),
        r#"{ gateway: { controlUi: { basePath: "/console/" } } }"#,
    )
    .unwrap();
    let gw = GatewayProcess::spawn_in(bin(), state, SpawnOptions::default());
    let port = gw.port;
    let root = req(port, "GET", "/", &[]).await;
    assert_eq!(root.status, 404);
    let ui = req(port, "GET", "/console/chat", &[]).await;
    assert_eq!(ui.status, 200);
    let html = ui.body_text();
    assert!(html.contains("data-base-path=\"/console\""), "{html}");
    let js = html
        .split('"')
        .find(|s| s.ends_with("/js/main.js"))
        .unwrap()
        .to_string();
    assert!(js.starts_with("/console/assets/"), "{js}");
    assert_eq!(req(port, "GET", &js, &[]).await.status, 200);
    let bearer = format!("Bearer {}", gw.token());
    let cfg = req(
        port,
        "GET",
        "/console/control-ui-config.json",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(cfg.json()["basePath"], "/console");
    drop(gw);

    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join("pincer.json"),
        r#"{ gateway: { controlUi: { enabled: false } } }"#,
    )
    .unwrap();
    let gw = GatewayProcess::spawn_in(bin(), state, SpawnOptions::default());
    let port = gw.port;
    assert_eq!(req(port, "GET", "/", &[]).await.status, 404);
}

/// A Control UI connect with a device, over a socket that sends `origin`.
async fn ui_connect(url: &str, origin: &str, token: &str, build_id: Option<&str>) -> Value {
    let kp = pincer_protocol::device_auth::DeviceKeypair::from_seed(&[42u8; 32]);
    let mut params = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "openclaw-control-ui", "version": "0.1.0", "platform": "web", "mode": "ui"},
        "role": "operator", "scopes": ["operator.admin"], "auth": {"token": token},
    });
    if let Some(b) = build_id {
        params["client"]["buildId"] = json!(b);
    }
    crate::proxy::connect_with_headers(url, &[("origin", origin)], Some(&kp), params).await
}

#[tokio::test]
async fn the_browser_handshake_checks_origin_and_build_id() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join("pincer.json"),
        r#"{ gateway: { controlUi: { allowedOrigins: ["https://console.example"] } } }"#,
    )
    .unwrap();
    let gw = GatewayProcess::spawn_in(bin(), state, SpawnOptions::default());
    let token = gw.token();
    let same = format!("http://127.0.0.1:{}", gw.port);
    let index = req(gw.port, "GET", "/", &[]).await.body_text();
    let build = html_build_id(&index);
    let build = build.as_str();

    let ok = ui_connect(&gw.url, &same, &token, Some(build)).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["payload"]["server"]["buildId"], build);

    let foreign = ui_connect(&gw.url, "http://evil.example", &token, Some(build)).await;
    assert_eq!(foreign["ok"], false, "{foreign}");
    assert_eq!(
        foreign["error"]["details"]["code"],
        "CONTROL_UI_ORIGIN_NOT_ALLOWED"
    );
    let other_port = ui_connect(&gw.url, "http://127.0.0.1:1", &token, Some(build)).await;
    assert_eq!(
        other_port["error"]["details"]["code"],
        "CONTROL_UI_ORIGIN_NOT_ALLOWED"
    );
    let allowed = ui_connect(&gw.url, "https://console.example", &token, Some(build)).await;
    assert_eq!(allowed["ok"], true, "{allowed}");

    let stale = ui_connect(&gw.url, &same, &token, Some("pincer-0.0.1-old")).await;
    assert_eq!(stale["ok"], false, "{stale}");
    assert_eq!(stale["error"]["code"], "UNAVAILABLE");
    assert_eq!(stale["error"]["details"]["reloadRequired"], true);
    let dev = ui_connect(&gw.url, &same, &token, Some("dev")).await;
    assert_eq!(dev["ok"], true, "{dev}");
}

// ---- browser scenarios ----

#[test]
fn browser_smoke_pairs_silently_and_every_view_renders() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    let r = ui.scenario("smoke");
    let fcp = r["firstPaintMs"].as_f64().unwrap();
    eprintln!(
        "first contentful paint {fcp:.0} ms (cold profile), {:.0} ms (reload), {} bytes transferred",
        r["firstPaintWarmMs"].as_f64().unwrap_or(-1.0),
        r["transferBytes"]
    );
    assert!(r["transferBytes"].as_u64().unwrap() <= 300 * 1024, "{r}");
    // The browser's device is paired (silently, on loopback) with an operator token.
    let list = Command::new(bin())
        .args(["devices", "list", "--json"])
        .env("PINCER_STATE_DIR", ui.gw().state_path())
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    let device = r["deviceId"].as_str().unwrap();
    let paired = list["paired"].as_array().unwrap();
    let me = paired.iter().find(|d| d["deviceId"] == device).unwrap();
    assert_eq!(me["clientId"], "openclaw-control-ui");
    assert_eq!(me["approvedVia"], "silent", "{me}");
}

#[test]
fn browser_chat_streams_markdown_and_tool_cards() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    fake.push(
        Reply::new()
            .text("Let me look at your notes.")
            .tool_call("call_1", "read", r#"{"path":"USER.md"}"#)
            .delay(Duration::from_millis(40)),
    );
    fake.push(
        Reply::new()
            .text_in_chunks(
                "Here is the summary: this is **important**.\n\n- first point\n- second point\n\n```bash\ncargo build\n```\n",
                24,
            )
            .usage(120, 40)
            .delay(Duration::from_millis(60)),
    );
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    ui.scenario("chat");
    // The gateway really ran the tool between the two model turns.
    let requests = fake.model_requests();
    let tool_turn = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .cloned()
        .unwrap_or_default();
    assert!(
        tool_turn["content"].to_string().contains("USER.md"),
        "the read tool's result went back to the model: {tool_turn}"
    );
}

#[test]
fn browser_abort_stops_a_streaming_reply() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let story = "Once upon a time ".repeat(60) + "THE END";
    fake.push(
        Reply::new()
            .text_in_chunks(&story, 120)
            .delay(Duration::from_millis(150)),
    );
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    ui.scenario("abort");
    // The transcript never got the end of the story.
    let out = Command::new(bin())
        .args(["gateway", "call", "chat.history", "--json", "--params"])
        .arg(r#"{"sessionKey":"main"}"#)
        .env("PINCER_STATE_DIR", ui.gw().state_path())
        .output()
        .unwrap();
    let history = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(history.contains("Tell me a long story"), "{history}");
    assert!(!history.contains("THE END"), "{history}");
}

#[test]
fn browser_session_list_follows_the_first_run() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let story = "and then ".repeat(60) + "the end.";
    fake.push(
        Reply::new()
            .text_in_chunks(&story, 60)
            .delay(Duration::from_millis(300)),
    );
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    ui.scenario("sessions-live");
}

#[test]
fn browser_renders_html_in_messages_as_text() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    ui.scenario("xss");
}

#[test]
fn browser_pairing_waits_for_approval_and_approves_another_device() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(
        state_with_provider(&fake, json!({})),
        &["--no-auto-approve-local"],
    );
    ui.scenario("pairing");
}

#[test]
fn browser_remote_device_over_tls_waits_for_approval() {
    if skip_browser() {
        return;
    }
    let ns = match crate::remote::NetNs::create("ui") {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIP: remote browser test needs a network namespace: {e}");
            return;
        }
    };
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(
        state_with_provider(&fake, json!({})),
        &["--bind", "lan", "--tls"],
    );
    ui.url = Some(format!("https://{}:{}", ns.host_ip, ui.port));
    ui.scenario("remote");
    // The browser's device was approved from a non-loopback address, not silently.
    let out = Command::new(bin())
        .args(["devices", "list", "--json"])
        .env("PINCER_STATE_DIR", ui.gw().state_path())
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ui_device = list["paired"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["clientId"] == "openclaw-control-ui")
        .cloned()
        .unwrap_or_default();
    assert_ne!(ui_device["approvedVia"], "silent", "{list}");
}

#[test]
fn browser_exec_approval_prompt() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    fake.push(Reply::new().tool_call("call_x", "exec", r#"{"command":"echo approved-$((40+2))"}"#));
    fake.push(Reply::new().text("Done."));
    fake.push(Reply::new().tool_call("call_y", "exec", r#"{"command":"echo denied-$((40+2))"}"#));
    fake.push(Reply::new().text("Understood."));
    let mut ui = Ui::start(
        state_with_provider(
            &fake,
            json!({"tools": {"exec": {"security": "full", "ask": "always"}}}),
        ),
        &[],
    );
    let r = ui.scenario("approvals");
    if let Some(why) = r["skip"].as_str() {
        eprintln!("SKIP: exec approval scenario: {why}");
        return;
    }
    // "Allow once" ran the command; "Deny" did not.
    let tool_result = |i: usize| {
        fake.model_requests()[i].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["role"] == "tool")
            .map(|m| m["content"].to_string())
            .unwrap_or_default()
    };
    assert!(tool_result(1).contains("approved-42"), "{}", tool_result(1));
    assert!(!tool_result(3).contains("denied-42"), "{}", tool_result(3));
    assert!(
        tool_result(3).contains("denied by the operator"),
        "{}",
        tool_result(3)
    );
}

#[test]
fn browser_reconnects_after_a_gateway_restart() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    let r = ui.scenario("reconnect");
    assert!(r["banner"].as_str().unwrap().contains("Reconnected"), "{r}");
    let mut ui2 = Ui::start(state_with_provider(&fake, json!({})), &[]);
    ui2.scenario("outage");
}

#[test]
fn browser_nodes_pending_node_is_approved_from_the_nodes_view() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    let r = ui.scenario("nodes");
    if let Some(why) = r["skip"].as_str() {
        eprintln!("SKIP: nodes scenario: {why}");
        return;
    }
    let out = Command::new(bin())
        .args(["gateway", "call", "node.list", "--json"])
        .env("PINCER_STATE_DIR", ui.gw().state_path())
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let node = &list["nodes"][0];
    assert_eq!(node["approvalState"], "approved", "{list}");
    assert!(
        node["commands"].to_string().contains("system.which"),
        "{list}"
    );
}

#[test]
fn browser_channels_show_status_errors_and_stop_start() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    // A Telegram account whose Bot API is a closed loopback port: it keeps failing to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api_root = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut ui = Ui::start(
        state_with_provider(
            &fake,
            json!({"channels": {"telegram": {"botToken": "123456:ABCdef", "apiRoot": api_root}}}),
        ),
        &[],
    );
    let r = ui.scenario("channels");
    if let Some(why) = r["skip"].as_str() {
        eprintln!("SKIP: channels scenario: {why}");
    }
}

#[test]
fn browser_sign_in_form_refuses_a_wrong_token_and_remembers_a_right_one() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    ui.scenario("login");
}

#[test]
fn browser_sessions_search_preview_reset_delete() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    ui.scenario("sessions");
    let out = Command::new(bin())
        .args(["gateway", "call", "sessions.list", "--json"])
        .env("PINCER_STATE_DIR", ui.gw().state_path())
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(keys.contains(&"agent:main:alpha"), "{keys:?}");
    assert!(!keys.contains(&"agent:main:beta"), "{keys:?}");
}

#[test]
fn browser_config_errors_are_shown_at_the_key() {
    if skip_browser() {
        return;
    }
    let rt = runtime();
    let fake = fake_llm(&rt);
    let mut ui = Ui::start(state_with_provider(&fake, json!({})), &[]);
    ui.scenario("config");
    let text = std::fs::read_to_string(ui.gw().state_path().join("pincer.json")).unwrap();
    assert!(text.contains("per-peer"), "{text}");
    assert!(!text.contains("bogus"), "{text}");
}
