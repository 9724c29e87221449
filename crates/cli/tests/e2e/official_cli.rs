//! The official OpenClaw CLI (`openclaw`, Node) against the real gateway with its own device
//! identity: paired silently on loopback, `gateway call status` answered by Pincer, the issued
//! device token reused after a restart into token auth.
//!
//! How the CLI decides (openclaw 2026.9.6): on a loopback URL with a shared secret (`--token`,
//! `OPENCLAW_GATEWAY_TOKEN` or its config) it sends no device identity at all; without one it
//! signs with its identity, and without any credential it refuses to open a socket unless its
//! config says `gateway.auth.mode: "none"` or it holds a stored device token. `gateway call` only
//! reads the CLI's state: it signs with an identity that already exists and never stores a
//! token; commands that write state (`cron status`, `system heartbeat last`, …) create the
//! identity and store the `hello-ok` device token.
//!
//! The CLI comes from `PINCER_OPENCLAW_NODE` + `PINCER_OPENCLAW_CLI` (`scripts/test.sh` installs
//! it under `target/openclaw-cli`); without them the test prints `SKIP:` and passes, unless
//! `PINCER_OPENCLAW_CLI_REQUIRED=1`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pincer_testkit::*;
use serde_json::{json, Value};

use crate::agent::rpc;
use crate::bin;

/// Generous: one CLI run is ~2 s of Node start-up on an idle machine.
const CLI_DEADLINE: Duration = Duration::from_secs(120);

struct OfficialCli {
    node: PathBuf,
    cli: PathBuf,
    /// HOME, OPENCLAW_STATE_DIR and the CLI's config file live here.
    dir: tempfile::TempDir,
}

impl OfficialCli {
    fn find() -> Option<OfficialCli> {
        let var = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|p| p.is_file())
        };
        let (node, cli) = match (var("PINCER_OPENCLAW_NODE"), var("PINCER_OPENCLAW_CLI")) {
            (Some(node), Some(cli)) => (node, cli),
            _ => {
                assert!(
                    std::env::var("PINCER_OPENCLAW_CLI_REQUIRED").as_deref() != Ok("1"),
                    "the official OpenClaw CLI is required: set PINCER_OPENCLAW_NODE and \
                     PINCER_OPENCLAW_CLI to existing files (scripts/test.sh installs them)"
                );
                eprintln!(
                    "SKIP: the official OpenClaw CLI is not installed (set PINCER_OPENCLAW_NODE \
                     and PINCER_OPENCLAW_CLI, or run scripts/test.sh)"
                );
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        Some(OfficialCli { node, cli, dir })
    }

    /// The CLI's own config file (`gateway.auth.mode` decides whether it may connect without a
    /// shared secret).
    fn set_auth_mode(&self, mode: &str) {
        let config = json!({"gateway": {"auth": {"mode": mode}}});
        std::fs::write(self.config_path(), config.to_string()).unwrap();
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("openclaw.json")
    }

    /// Run `openclaw <args>` against `127.0.0.1:<port>` with a clean environment (no gateway
    /// credentials inherited from the test's environment).
    async fn run(&self, port: u16, args: &[&str]) -> CliRun {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.cli)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("OPENCLAW_STATE_DIR", self.dir.path().join("state"))
            .env("OPENCLAW_CONFIG_PATH", self.config_path())
            .env("OPENCLAW_GATEWAY_PORT", port.to_string())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = format!("openclaw {}", args.join(" "));
        let output = tokio::task::spawn_blocking(move || run_with_deadline(cmd))
            .await
            .unwrap();
        CliRun { shown, output }
    }

    /// The CLI's device id (`openclaw node identity`: the one identity its commands sign with).
    async fn device_id(&self) -> String {
        let run = self.run(0, &["node", "identity", "--json"]).await;
        run.json()["deviceId"].as_str().unwrap().to_string()
    }
}

fn run_with_deadline(mut cmd: Command) -> Output {
    let mut child = cmd.spawn().expect("spawn node");
    let deadline = Instant::now() + CLI_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

struct CliRun {
    shown: String,
    output: Output,
}

impl CliRun {
    fn describe(&self) -> String {
        format!(
            "{}: {}\nstdout:\n{}\nstderr:\n{}",
            self.shown,
            self.output.status,
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    /// The JSON the command printed; panics unless it exited 0.
    fn json(&self) -> Value {
        assert!(self.output.status.success(), "{}", self.describe());
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", self.describe()))
    }

    /// What the command printed; panics unless it exited 0.
    fn stdout(&self) -> String {
        assert!(self.output.status.success(), "{}", self.describe());
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `status` fields that do not change between two calls a moment apart.
const STABLE_STATUS_KEYS: &[&str] = &[
    "runtimeVersion",
    "heartbeat",
    "sessions",
    "channelSummary",
    "tasks",
    "queuedSystemEvents",
];

/// `status` as a device-less `operator.read` client sees it (the scope the CLI asks for:
/// admin-only fields such as `stateDir` are left out for both).
async fn status_as_reader(url: &str, token: Option<&str>) -> Value {
    let mut params = golden_connect_params(token);
    params["scopes"] = json!(["operator.read"]);
    let (mut ws, _, res) = handshake(url, params).await;
    assert_eq!(res["ok"], true, "{res}");
    let (res, _) = rpc(&mut ws, "status", "status", json!({})).await;
    assert_eq!(res["ok"], true, "{res}");
    res["payload"].clone()
}

fn assert_status_from_pincer(cli: &Value, direct: &Value) {
    assert_eq!(
        key_set(cli),
        key_set(direct),
        "cli: {cli}\ndirect: {direct}"
    );
    for key in STABLE_STATUS_KEYS {
        assert_eq!(cli[key], direct[key], "status.{key}");
    }
}

fn paired_entry<'a>(list: &'a Value, device_id: &str) -> &'a Value {
    list["paired"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == device_id)
        .unwrap_or_else(|| panic!("{device_id} is not paired: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_cli_pairs_silently_on_loopback_and_reuses_its_device_token() {
    let Some(cli) = OfficialCli::find() else {
        return;
    };
    // A loopback gateway without a shared secret; the CLI's config says the same, so it
    // connects with nothing but its device identity.
    let mut gw = GatewayProcess::spawn(bin(), SpawnOptions::default().arg("--auth").arg("none"));
    cli.set_auth_mode("none");
    let (mut watcher, _, res) = handshake(&gw.url, golden_connect_params(None)).await;
    assert_eq!(res["ok"], true, "{res}");

    // The CLI creates its identity the first time a state-writing command runs; pointed at a
    // closed port, this one reaches no gateway.
    let offline = cli.run(closed_port(), &["cron", "status", "--json"]).await;
    assert!(!offline.output.status.success(), "{}", offline.describe());
    let device_id = cli.device_id().await;
    assert_eq!(device_id.len(), 64, "{device_id}");
    let (list, _) = rpc(&mut watcher, "l0", "device.pair.list", json!({})).await;
    assert_eq!(list["payload"]["paired"], json!([]), "{list}");

    // 1. `gateway call status`: the device's first contact. Paired silently, answered by Pincer.
    let status = cli
        .run(gw.port, &["gateway", "call", "status", "--json"])
        .await
        .json();
    assert_status_from_pincer(&status, &status_as_reader(&gw.url, None).await);
    let expected_path = gw.state_path().join("state").join("pincer.sqlite");
    assert_eq!(
        status["sessions"]["byAgent"][0]["path"],
        json!(expected_path.to_str().unwrap()),
        "{status}"
    );
    // The watcher's events up to this answer: announced as approved, never requested.
    let (list, events) = rpc(&mut watcher, "l1", "device.pair.list", json!({})).await;
    assert!(
        events.iter().any(|e| e["event"] == "device.pair.resolved"
            && e["payload"]["deviceId"] == device_id.as_str()
            && e["payload"]["decision"] == "approved"),
        "no device.pair.resolved approved for {device_id}: {events:?}"
    );
    assert!(
        !events.iter().any(|e| e["event"] == "device.pair.requested"),
        "silent pairing must not ask anyone: {events:?}"
    );
    let list = &list["payload"];
    assert_eq!(list["pending"], json!([]), "{list}");
    let device = paired_entry(list, &device_id);
    assert_eq!(device["approvedVia"], "silent", "{device}");
    assert_eq!(device["clientId"], "cli", "{device}");
    assert_eq!(device["remoteIp"], "127.0.0.1", "{device}");
    assert_eq!(device["roles"], json!(["operator"]), "{device}");
    assert!(
        device["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["role"] == "operator"),
        "an operator token was issued: {device}"
    );

    // 2. A state-writing command signs again without a credential: it gets (and stores) the
    //    device token that `gateway call` could not keep.
    let heartbeat = cli
        .run(gw.port, &["system", "heartbeat", "last", "--json"])
        .await;
    let (direct, _) = rpc(&mut watcher, "h2", "last-heartbeat", json!({})).await;
    assert_eq!(
        heartbeat.json(),
        direct["payload"],
        "{}",
        heartbeat.describe()
    );
    drop(watcher);

    // 3. The gateway restarts with a shared token the CLI does not know; its config now asks
    //    for token auth, so the stored device token is its only credential.
    gw.sigterm();
    assert!(gw.wait_exit(Duration::from_secs(10)).is_some());
    let state = std::mem::replace(&mut gw.state_dir, tempfile::tempdir().unwrap());
    drop(gw);
    let secret = "a-secret-the-official-cli-never-sees";
    let gw = GatewayProcess::spawn_in(
        bin(),
        state,
        SpawnOptions::default().arg("--token").arg(secret),
    );
    cli.set_auth_mode("token");
    let status = cli
        .run(gw.port, &["gateway", "call", "status", "--json"])
        .await
        .json();
    assert_status_from_pincer(&status, &status_as_reader(&gw.url, Some(secret)).await);
    let (mut op, _, res) = handshake(&gw.url, golden_connect_params(Some(secret))).await;
    assert_eq!(res["ok"], true, "{res}");
    let (list, _) = rpc(&mut op, "l3", "device.pair.list", json!({})).await;
    let list = &list["payload"];
    assert_eq!(list["pending"], json!([]), "{list}");
    let token = paired_entry(list, &device_id)["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "operator")
        .cloned()
        .unwrap();
    assert!(
        token["lastUsedAtMs"].is_u64(),
        "the CLI authenticated with its device token: {token}"
    );
}

/// `cron list --json` as the CLI prints it, without the `status` it adds to every job (its
/// own summary of `enabled` + `state`).
fn without_cli_status(mut listed: Value) -> Value {
    for job in listed["jobs"].as_array_mut().unwrap() {
        job.as_object_mut().unwrap().remove("status");
    }
    listed
}

/// The payload of Pincer's own `cron.list` (asserting it answered).
async fn cron_list(op: &mut RawWs, id: &str, params: Value) -> Value {
    let (res, _) = rpc(op, id, "cron.list", params).await;
    assert_eq!(res["ok"], true, "{res}");
    res["payload"].clone()
}

fn job_ids(page: &Value) -> Vec<&str> {
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_cli_adds_lists_and_removes_automations() {
    let Some(cli) = OfficialCli::find() else {
        return;
    };
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default().arg("--auth").arg("none"));
    cli.set_auth_mode("none");
    let (mut op, _, res) = handshake(&gw.url, golden_connect_params(None)).await;
    assert_eq!(res["ok"], true, "{res}");

    // `cron add` (one enabled agent turn, one disabled system event) answers with the job.
    let every = cli
        .run(
            gw.port,
            &[
                "cron",
                "add",
                "--name",
                "build check",
                "--every",
                "1h",
                "--message",
                "Check the build.",
                "--json",
            ],
        )
        .await
        .json();
    assert_eq!(every["name"], "build check", "{every}");
    assert_eq!(every["schedule"]["everyMs"], 3_600_000, "{every}");
    let every_id = every["id"].as_str().unwrap().to_string();
    let daily = cli
        .run(
            gw.port,
            &[
                "cron",
                "add",
                "--name",
                "morning ping",
                "--cron",
                "0 8 * * *",
                "--system-event",
                "ping",
                "--session",
                "main",
                "--disabled",
                "--json",
            ],
        )
        .await
        .json();
    assert_eq!(daily["enabled"], false, "{daily}");
    let daily_id = daily["id"].as_str().unwrap().to_string();
    let (got, _) = rpc(&mut op, "g", "cron.get", json!({"id": every_id})).await;
    assert_eq!(got["payload"], every, "cron add printed the stored job");

    // `cron list --json`: every page of one revision, exactly what Pincer's cron.list says
    // (the CLI asks for pages of 200; all fit in the first).
    let listed = cli.run(gw.port, &["cron", "list", "--json"]).await.json();
    assert!(listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == "idle"));
    let page_of_200 = json!({"includeDisabled": false, "limit": 200, "offset": 0});
    let direct = cron_list(&mut op, "l1", page_of_200).await;
    assert_eq!(without_cli_status(listed), direct);
    assert!(job_ids(&direct).contains(&every_id.as_str()), "{direct}");
    assert!(!job_ids(&direct).contains(&daily_id.as_str()), "{direct}");
    let all = cli
        .run(gw.port, &["cron", "list", "--all", "--json"])
        .await
        .json();
    let all_of_200 = json!({"includeDisabled": true, "limit": 200, "offset": 0});
    let direct_all = cron_list(&mut op, "l2", all_of_200).await;
    assert_eq!(without_cli_status(all), direct_all);
    assert!(job_ids(&direct_all).contains(&daily_id.as_str()));
    // Pages of one revision share its snapshotRevision and chain by nextOffset.
    let total = direct_all["total"].as_u64().unwrap();
    assert!(total >= 2, "{direct_all}");
    let first = cron_list(&mut op, "p1", json!({"includeDisabled": true, "limit": 1})).await;
    let second_page = json!({"includeDisabled": true, "limit": 1, "offset": 1});
    let second = cron_list(&mut op, "p2", second_page).await;
    let (first, second) = (&first, &second);
    assert_eq!(first["snapshotRevision"], direct_all["snapshotRevision"]);
    assert_eq!(second["snapshotRevision"], first["snapshotRevision"]);
    assert_eq!(
        (first["hasMore"].clone(), first["nextOffset"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(
        [job_ids(first), job_ids(second)].concat(),
        job_ids(&direct_all)[..2].to_vec()
    );

    // The table names both jobs of the default view, not the disabled one.
    let table = cli.run(gw.port, &["cron", "list"]).await.stdout();
    assert!(
        table.contains(&every_id) && table.contains("build check"),
        "{table}"
    );
    assert!(!table.contains(&daily_id), "{table}");

    // `cron status` and `cron runs` print Pincer's answers.
    let status = cli.run(gw.port, &["cron", "status", "--json"]).await.json();
    let (direct_status, _) = rpc(&mut op, "s", "cron.status", json!({})).await;
    assert_eq!(key_set(&status), key_set(&direct_status["payload"]));
    for key in ["enabled", "jobs", "enabledJobs", "storePath", "sqlitePath"] {
        assert_eq!(
            status[key], direct_status["payload"][key],
            "cron.status {key}"
        );
    }
    assert_eq!(status["jobs"], total);
    let runs = cli
        .run(gw.port, &["cron", "runs", &every_id, "--limit", "5"])
        .await
        .json();
    let (direct_runs, _) = rpc(
        &mut op,
        "r",
        "cron.runs",
        json!({"id": every_id, "limit": 5}),
    )
    .await;
    assert_eq!(runs, direct_runs["payload"]);

    // `cron rm`: gone from cron.list; a second rm names the miss.
    let removed = cli
        .run(gw.port, &["cron", "rm", &every_id, "--json"])
        .await
        .json();
    assert_eq!(removed["removed"], true, "{removed}");
    let after = cron_list(&mut op, "l3", json!({"includeDisabled": true})).await;
    assert!(!job_ids(&after).contains(&every_id.as_str()), "{after}");
    assert_eq!(after["total"], total - 1);
    let again = cli.run(gw.port, &["cron", "rm", &every_id]).await;
    assert!(!again.output.status.success(), "{}", again.describe());
    let stderr = String::from_utf8_lossy(&again.output.stderr);
    assert!(
        stderr.contains("not found") && stderr.contains(&every_id),
        "{}",
        again.describe()
    );

    // `cron run <id> --wait` polls cron.runs until the run finished and exits 0 only when
    // its completionStatus is "succeeded": a system event asks for no delivery.
    let note = cli
        .run(
            gw.port,
            &[
                "cron",
                "add",
                "--name",
                "wake note",
                "--every",
                "1h",
                "--system-event",
                "note this",
                "--session",
                "main",
                "--json",
            ],
        )
        .await
        .json();
    let note_id = note["id"].as_str().unwrap().to_string();
    let waited = cli
        .run(gw.port, &["cron", "run", &note_id, "--wait", "--json"])
        .await;
    let done = waited.json();
    assert_eq!(done["completed"], true, "{}", waited.describe());
    assert_eq!(done["status"], "ok", "{}", waited.describe());
    assert_eq!(
        done["completionStatus"],
        "succeeded",
        "{}",
        waited.describe()
    );
    assert_eq!(done["run"]["deliveryStatus"], "not-requested", "{done}");
    assert_eq!(done["run"]["jobId"], note_id.as_str(), "{done}");
    let run_id = done["runId"].as_str().unwrap();
    assert_eq!(done["run"]["runId"], run_id, "{done}");
    // The entry the CLI waited for is the one cron.runs serves.
    let (entry, _) = rpc(
        &mut op,
        "w",
        "cron.runs",
        json!({"id": note_id, "runId": run_id, "limit": 1}),
    )
    .await;
    let entry = &entry["payload"]["entries"][0];
    assert_eq!(entry["completionStatus"], "succeeded", "{entry}");
    assert_eq!(entry["deliveryStatus"], "not-requested", "{entry}");
    // The history filters by delivery status, as the CLI's `--delivery-status` asks.
    let delivered_only = cli
        .run(
            gw.port,
            &["cron", "runs", &note_id, "--delivery-status", "delivered"],
        )
        .await
        .json();
    assert_eq!(delivered_only["total"], 0, "{delivered_only}");
    let not_requested = cli
        .run(
            gw.port,
            &[
                "cron",
                "runs",
                &note_id,
                "--delivery-status",
                "not-requested",
            ],
        )
        .await
        .json();
    assert_eq!(
        not_requested["entries"][0]["runId"], run_id,
        "{not_requested}"
    );
}
