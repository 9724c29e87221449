//! Connections from a non-loopback address: a veth pair into a network namespace created by
//! the test (`ip netns`, iproute2, root). The client side is the real `pincer` CLI run with
//! `ip netns exec`. Without namespace support the tests print why and skip.

use std::path::Path;
use std::process::{Command, Output};

use pincer_testkit::*;
use serde_json::Value;

use crate::bin;

/// A network namespace with a veth pair: the host end has `host_ip`, the namespace `ns_ip`.
/// Deleted on drop. Creating one changes the host's interfaces, which makes Chromium abort its
/// loads: a test that uses it must be in nextest's `host-network` group (.config/nextest.toml).
pub(crate) struct NetNs {
    name: String,
    veth: String,
    pub(crate) host_ip: String,
    ns_ip: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl NetNs {
    pub(crate) fn create(tag: &str) -> Result<NetNs, String> {
        let pid = std::process::id();
        let name = format!("pincer-{tag}-{pid}");
        let veth = format!("pv{tag}{}", pid % 100_000);
        let peer = format!("pn{tag}{}", pid % 100_000);
        let (a, b, c) = (
            200 + ((pid >> 14) & 0x1f),
            (pid >> 6) & 0xff,
            (pid & 0x3f) * 4,
        );
        let host_ip = format!("10.{a}.{b}.{}", c + 1);
        let ns_ip = format!("10.{a}.{b}.{}", c + 2);
        if !ip(&["netns", "add", &name]) {
            return Err(
                "cannot create a network namespace (needs root and iproute2's `ip`)".into(),
            );
        }
        let ns = NetNs {
            name: name.clone(),
            veth: veth.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
        };
        let steps: Vec<Vec<String>> = vec![
            vec![
                "link".into(),
                "add".into(),
                veth.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                peer.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                peer.clone(),
                "netns".into(),
                name.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{host_ip}/30"),
                "dev".into(),
                veth.clone(),
            ],
            vec!["link".into(), "set".into(), veth.clone(), "up".into()],
            vec![
                "-n".into(),
                name.clone(),
                "addr".into(),
                "add".into(),
                format!("{ns_ip}/30"),
                "dev".into(),
                peer.clone(),
            ],
            vec![
                "-n".into(),
                name.clone(),
                "link".into(),
                "set".into(),
                peer.clone(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                name.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for s in steps {
            let args: Vec<&str> = s.iter().map(String::as_str).collect();
            if !ip(&args) {
                return Err(format!("`ip {}` failed", args.join(" ")));
            }
        }
        Ok(ns)
    }

    /// Run the `pincer` CLI inside the namespace with its own state dir.
    fn pincer(&self, state: &Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(bin())
            .args(args)
            .env("PINCER_STATE_DIR", state)
            .env_remove("PINCER_GATEWAY_TOKEN")
            .env_remove("PINCER_GATEWAY_URL")
            .output()
            .unwrap()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn skip(why: &str) {
    eprintln!("SKIP: non-loopback test needs a network namespace: {why}");
}

fn host_cli(gw: &GatewayProcess, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PINCER_STATE_DIR", gw.state_path())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "rc={:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn remote_device_needs_approval_then_reconnects_with_its_device_token() {
    let ns = match NetNs::create("pr") {
        Ok(ns) => ns,
        Err(e) => return skip(&e),
    };
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default().arg("--bind").arg("lan"));
    let token = gw.token();
    let url = format!("ws://{}:{}", ns.host_ip, gw.port);
    let client_state = tempfile::tempdir().unwrap();
    // 1. Not local: pairing required, with the request id in the error.
    let out = ns.pincer(
        client_state.path(),
        &["status", "--url", &url, &format!("--token={token}")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("NOT_PAIRED pairing required: device is not approved yet"),
        "{err}"
    );
    let details: Value = serde_json::from_str(
        err.lines()
            .find_map(|l| l.strip_prefix("details: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(details["code"], "PAIRING_REQUIRED");
    assert_eq!(details["reason"], "not-paired");
    let request_id = details["requestId"].as_str().unwrap().to_string();
    // 2. The owner sees it (from the gateway host) and approves it by request id.
    let list = host_cli(&gw, &["devices", "list", "--json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    let pending = list["pending"].as_array().unwrap();
    let req = pending
        .iter()
        .find(|p| p["requestId"] == request_id.as_str())
        .unwrap();
    assert_eq!(req["remoteIp"], serde_json::json!(ns.ns_ip));
    let out = host_cli(&gw, &["devices", "approve", &request_id]);
    assert!(out.status.success(), "{}", text(&out));
    // 3. The device connects, receives and stores a device token ...
    let out = ns.pincer(
        client_state.path(),
        &["status", "--url", &url, &format!("--token={token}")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stored =
        std::fs::read_to_string(client_state.path().join("identity/client-tokens.json")).unwrap();
    assert!(stored.contains("\"token\""), "{stored}");
    // ... and from then on needs no shared secret at all.
    let out = ns.pincer(client_state.path(), &["status", "--url", &url]);
    assert!(out.status.success(), "device token alone: {}", text(&out));
}

#[test]
fn failed_logins_from_a_remote_address_are_locked_out() {
    let ns = match NetNs::create("rl") {
        Ok(ns) => ns,
        Err(e) => return skip(&e),
    };
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default().arg("--bind").arg("lan"));
    let token = gw.token();
    let url = format!("ws://{}:{}", ns.host_ip, gw.port);
    let client_state = tempfile::tempdir().unwrap();
    let attempt = |t: &str| {
        ns.pincer(
            client_state.path(),
            &[
                "health",
                "--url",
                &url,
                &format!("--token={t}"),
                "--no-device",
            ],
        )
    };
    for i in 0..10 {
        let out = attempt("definitely-wrong");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            err.contains("AUTH_TOKEN_MISMATCH"),
            "attempt {i}: {}",
            text(&out)
        );
    }
    // Locked out now, even with the right token; the error says when to retry.
    let out = attempt(&token);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("unauthorized: too many failed authentication attempts (retry later)"),
        "{err}"
    );
    assert!(
        err.contains("\"AUTH_RATE_LIMITED\"") && err.contains("wait_then_retry"),
        "{err}"
    );
    let retry: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("retry after "))
        .and_then(|l| l.trim_end_matches(" ms").parse().ok())
        .unwrap();
    assert!(retry > 250_000 && retry <= 300_000, "{retry}");
    // Loopback is a different address (and exempt): unaffected.
    let out = host_cli(&gw, &["health", &format!("--token={token}")]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn forwarding_headers_from_untrusted_peers_never_make_a_connection_local() {
    // Runs on loopback only (no namespace needed): X-Forwarded-For from 127.0.0.1, which is
    // not a trusted proxy, must disqualify silent local pairing.
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kp = pincer_protocol::device_auth::DeviceKeypair::from_seed(&[91u8; 32]);
        let res = crate::proxy::connect_with_headers(
            &gw.url,
            &[("x-forwarded-for", "203.0.113.9")],
            Some(&kp),
            golden_connect_params(Some(&gw.token())),
        )
        .await;
        assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
        assert_eq!(res["error"]["details"]["reason"], "not-paired");
    });
}
