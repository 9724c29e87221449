//! Issue 3's settings from the config file (`pincer.json`), through the real binary:
//! `gateway.tls` (the configured certificate is served), `gateway.auth.rateLimit`
//! (lockout, hot reload), `gateway.auth.mode: "trusted-proxy"` + `gateway.auth.trustedProxy` +
//! `gateway.trustedProxies` (the header is believed only from the proxy; a policy edit closes
//! the sessions it admitted), `gateway.allowRealIpFallback` (a trusted proxy's `X-Real-IP`
//! names the client only when it is on), `gateway.nodes.pairing.autoApproveLocal|autoApproveCidrs`, bad
//! values refused with file, line, key and reason, and `hello-ok.auth.recoveryScope`.
//!
//! Non-loopback peers: a veth end created by `remote::NetNs` gives this host a 10.x address;
//! connecting *from* it makes the gateway see a non-loopback peer.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pincer_gateway::auth::RecoveryMaterial;
use pincer_protocol::device_auth::DeviceKeypair;
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::bin;
use crate::proxy::connect_from;
use crate::remote::NetNs;

const T: Duration = Duration::from_secs(10);

fn write_config(dir: &Path, text: &str) {
    // Write then rename, so the watcher never reads half a file.
    let tmp = dir.join("pincer.json.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("pincer.json")).unwrap();
}

fn spawn_with_config(text: &str) -> GatewayProcess {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), text);
    GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default())
}

fn cli(gw: &GatewayProcess, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("PINCER_STATE_DIR", gw.state_path())
        .env_remove("PINCER_GATEWAY_URL")
        .env_remove("PINCER_GATEWAY_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn skip(why: &str) {
    eprintln!("SKIP: needs a network namespace: {why}");
}

/// Polls `f` until it returns `Some` (a hot reload is asynchronous).
async fn eventually<F, Fut, R>(what: &str, mut f: F) -> R
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<R>>,
{
    let deadline = Instant::now() + T;
    loop {
        if let Some(r) = f().await {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn tls_from_the_config_file_serves_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        other => return eprintln!("SKIP: openssl cannot make a certificate: {other:?}"),
    }
    let fp_out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&fp_out.stdout)
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(fingerprint.len(), 64);
    // certPath relative to the config file's directory, keyPath absolute.
    let config = format!(
        "{{ gateway: {{ tls: {{ enabled: true, autoGenerate: false, certPath: 'certs/cert.pem', keyPath: '{}' }} }} }}",
        key.display()
    );
    write_config(dir.path(), &config);
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let url = gw.info["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("wss://"), "{url}");
    assert_eq!(gw.info["tlsFingerprint"], fingerprint.as_str());
    assert!(
        !gw.state_path().join("tls/gateway-cert.pem").exists(),
        "nothing generated when files are configured"
    );
    let token = gw.token();
    // The CLI pinned to openssl's fingerprint completes a TLS handshake with the gateway.
    let (ok, out, err) = cli(
        &gw,
        &[
            "status",
            "--url",
            &url,
            &format!("--token={token}"),
            &format!("--tls-fingerprint={fingerprint}"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&fingerprint), "{out}");
    // Another pin is refused; plaintext on the port is told the port speaks TLS.
    let (ok, _, err) = cli(
        &gw,
        &[
            "health",
            "--url",
            &url,
            &format!("--token={token}"),
            &format!("--tls-fingerprint={}", "ab".repeat(32)),
        ],
    );
    assert!(!ok && err.to_lowercase().contains("fingerprint"), "{err}");
    let plain = format!("ws://127.0.0.1:{}", gw.port);
    let (ok, _, err) = cli(
        &gw,
        &["health", "--url", &plain, &format!("--token={token}")],
    );
    assert!(!ok && err.contains("TLS"), "{err}");

    // gateway.tls needs a restart: an edit is reported, TLS keeps being served.
    write_config(gw.state_path(), "{ gateway: { tls: { enabled: false } } }");
    let deadline = Instant::now() + T;
    loop {
        let (ok, out, err) = cli(
            &gw,
            &[
                "gateway",
                "call",
                "health",
                "--json",
                "--url",
                &url,
                &format!("--token={token}"),
                &format!("--tls-fingerprint={fingerprint}"),
            ],
        );
        assert!(ok, "TLS still served: {err}");
        let health: Value = serde_json::from_str(&out).unwrap();
        let restart = &health["configReload"]["restartRequired"];
        if restart.as_array().is_some_and(|r| !r.is_empty()) {
            let paths: Vec<&str> = restart
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                paths.iter().all(|p| p.starts_with("gateway.tls")),
                "{paths:?}"
            );
            assert!(paths.contains(&"gateway.tls.certPath"), "{paths:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no restartRequired: {health}\nlogs: {}",
            std::fs::read_to_string(gw.state_path().join("logs/pincer.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = gw.wait_for_log_file(
        &["restart required for: gateway.tls"],
        Duration::from_secs(10),
    );
    assert!(logs.contains("restart required for: gateway.tls"), "{logs}");
}

#[test]
fn bad_security_settings_refuse_the_start_naming_file_key_and_reason() {
    let refuse = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), text);
        let out = gateway_command(bin(), dir.path(), &SpawnOptions::default())
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with {text}");
        (
            String::from_utf8_lossy(&out.stderr).to_string(),
            dir.path().join("pincer.json").display().to_string(),
        )
    };
    let (err, p) = refuse("{ gateway: { trustedProxies: ['10.0.0.0/99'] } }");
    assert!(
        err.contains(&format!(
            "{p}:1:31 — gateway.trustedProxies[0]: \"10.0.0.0/99\": prefix length must be 0..=32"
        )),
        "{err}"
    );
    let (err, p) = refuse(
        "{ gateway: { auth: { mode: 'trusted-proxy', trustedProxy: { userHeader: 'x-user' } } } }",
    );
    assert!(
        err.contains(&format!("{p}:1:28 — gateway.trustedProxies: gateway.auth.mode \"trusted-proxy\" needs at least one proxy address")),
        "{err}"
    );
    let (err, p) = refuse(
        "{ gateway: { tls: { enabled: true, autoGenerate: false, certPath: '/nonexistent/c.pem', keyPath: '/nonexistent/k.pem' } } }",
    );
    assert!(
        err.contains(&format!("{p}: gateway.tls: cannot read /nonexistent/c.pem")),
        "{err}"
    );
}

#[tokio::test]
async fn failed_auth_rate_limit_from_the_config_file_locks_out_and_reloads_hot() {
    let gw = spawn_with_config(
        "{ gateway: { auth: { rateLimit: { maxAttempts: 2, windowMs: 60000, lockoutMs: 45000, exemptLoopback: false } } } }",
    );
    let token = gw.token();
    for i in 0..2 {
        let (_, _, res) = handshake(&gw.url, golden_connect_params(Some("wrong-token"))).await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "attempt {i}: {res}"
        );
    }
    // Loopback is not exempt (exemptLoopback: false): locked out, even with the right token.
    let (_, _, res) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_RATE_LIMITED",
        "{res}"
    );
    let retry = res["error"]["retryAfterMs"].as_u64().unwrap();
    assert!(retry > 30_000 && retry <= 45_000, "{retry}");
    // Hot: exempting loopback again lets the owner in at once (no restart).
    write_config(
        gw.state_path(),
        "{ gateway: { auth: { rateLimit: { maxAttempts: 2, windowMs: 60000, lockoutMs: 45000, exemptLoopback: true } } } }",
    );
    let url = gw.url.clone();
    let hello = eventually("the new rate limit", || {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let (_, _, res) = handshake(&url, golden_connect_params(Some(&token))).await;
            (res["ok"] == true).then_some(res)
        }
    })
    .await;
    // Token auth without a device: the recovery scope is the shared-auth generation.
    let generation = pincer_gateway::auth::GatewayAuth::Token(token.clone())
        .shared_generation()
        .unwrap();
    assert_eq!(
        hello["payload"]["auth"]["recoveryScope"],
        RecoveryMaterial::SharedAuth(&generation, None).scope()
    );
    assert!(hello["payload"]["auth"]
        .get("recoveryMigrationAllowed")
        .is_none());
    let logs = gw.wait_for_log_file(&["failed-auth rate limit updated"], Duration::from_secs(10));
    assert_eq!(
        logs.matches("failed-auth rate limit updated").count(),
        1,
        "{logs}"
    );
}

fn proxy_config(proxy: &str, users: &[&str]) -> String {
    format!(
        "{{ gateway: {{ bind: 'lan', trustedProxies: ['{proxy}'], auth: {{ mode: 'trusted-proxy', trustedProxy: {{ userHeader: 'x-forwarded-user', allowUsers: {} }} }} }} }}",
        json!(users)
    )
}

#[tokio::test]
async fn trusted_proxy_auth_from_the_config_file_believes_only_the_proxy() {
    let ns = match NetNs::create("tc") {
        Ok(ns) => ns,
        Err(e) => return skip(&e),
    };
    let proxy: IpAddr = ns.host_ip.parse().unwrap();
    let gw = spawn_with_config(&proxy_config(&ns.host_ip, &["alice", "bob"]));
    assert_eq!(gw.info["authMode"], "trusted-proxy");
    let via_proxy = format!("ws://{}:{}", ns.host_ip, gw.port);
    let mut params = golden_connect_params(None);
    params["client"] = json!({"id":"test","version":"1","platform":"linux","mode":"test"});
    let user = |name: &'static str| [("x-forwarded-user", name)];

    // From the proxy's address, the header is the identity.
    let (mut alice_ws, res) = connect_from(
        &via_proxy,
        Some(proxy),
        &user("alice"),
        None,
        params.clone(),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    assert_eq!(auth["method"], "trusted-proxy");
    assert_eq!(
        auth["recoveryScope"],
        RecoveryMaterial::Principal("alice", None).scope()
    );
    assert!(auth.get("recoveryMigrationAllowed").is_none());
    // The same header from any other address (here loopback) is not believed.
    let direct = format!("ws://127.0.0.1:{}", gw.port);
    let (_, res) = connect_from(&direct, None, &user("alice"), None, params.clone()).await;
    assert_eq!(
        res["error"]["details"]["authReason"], "trusted_proxy_untrusted_source",
        "{res}"
    );
    // From the proxy without the header: refused.
    let (_, res) = connect_from(&via_proxy, Some(proxy), &[], None, params.clone()).await;
    assert_eq!(
        res["error"]["details"]["authReason"], "trusted_proxy_user_missing",
        "{res}"
    );

    // Hot: alice is dropped from allowUsers. Her session closes (4001) and she is refused.
    write_config(gw.state_path(), &proxy_config(&ns.host_ip, &["bob"]));
    let closed = recv_close(&mut alice_ws, T).await.0;
    assert_eq!(closed, Received::Close(4001, "gateway auth changed".into()));
    let (_, res) = connect_from(
        &via_proxy,
        Some(proxy),
        &user("alice"),
        None,
        params.clone(),
    )
    .await;
    assert_eq!(
        res["error"]["details"]["authReason"], "trusted_proxy_user_not_allowed",
        "{res}"
    );
    let (_, res) = connect_from(&via_proxy, Some(proxy), &user("bob"), None, params.clone()).await;
    assert_eq!(res["ok"], true, "{res}");
    // Hot: the proxy list no longer holds this address: its header is not believed any more.
    write_config(gw.state_path(), &proxy_config("10.255.255.254", &["bob"]));
    let (url, p) = (via_proxy.clone(), params.clone());
    eventually("the new proxy list", || {
        let (url, p) = (url.clone(), p.clone());
        async move {
            let (_, res) = connect_from(&url, Some(proxy), &user("bob"), None, p).await;
            (res["error"]["details"]["authReason"] == "trusted_proxy_untrusted_source")
                .then_some(())
        }
    })
    .await;
}

fn node_params(token: &str) -> Value {
    json!({"minProtocol":4,"maxProtocol":4,
        "client":{"id":"node-host","version":"t","platform":"linux","mode":"node"},
        "role":"node","scopes":[],"caps":["system"],"commands":["system.which"],"permissions":{},
        "auth":{"token": token}})
}

#[tokio::test]
async fn device_auto_approval_follows_the_config_file() {
    let ns = match NetNs::create("pa") {
        Ok(ns) => ns,
        Err(e) => return skip(&e),
    };
    let lan: IpAddr = ns.host_ip.parse().unwrap();
    let config = |cidrs: &str, local: bool| {
        format!("{{ gateway: {{ bind: 'lan', nodes: {{ pairing: {{ autoApproveLocal: {local}, autoApproveCidrs: {cidrs} }} }} }} }}")
    };
    let gw = spawn_with_config(&config(&format!("['{}/32']", ns.host_ip), false));
    let token = gw.token();
    let from_lan = format!("ws://{}:{}", ns.host_ip, gw.port);
    let operator = golden_connect_params(Some(&token));

    // autoApproveLocal: false — even a loopback operator device waits for approval.
    let local_kp = DeviceKeypair::from_seed(&[61u8; 32]);
    let (_, res) = connect_from(&gw.url, None, &[], Some(&local_kp), operator.clone()).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    // A first-time node from a listed address pairs silently and gets its device token ...
    let node_kp = DeviceKeypair::from_seed(&[62u8; 32]);
    let (_ws, res) = connect_from(
        &from_lan,
        Some(lan),
        &[],
        Some(&node_kp),
        node_params(&token),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["role"], "node");
    assert!(res["payload"]["auth"]["deviceToken"].is_string(), "{res}");
    // Nodes get no recovery scope (operators only).
    assert!(
        res["payload"]["auth"].get("recoveryScope").is_none(),
        "{res}"
    );
    // ... an operator from the same address does not.
    let op_kp = DeviceKeypair::from_seed(&[63u8; 32]);
    let (_, res) = connect_from(&from_lan, Some(lan), &[], Some(&op_kp), operator.clone()).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    let (ok, out, err) = cli(&gw, &["devices", "list", "--json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let paired = list["paired"].as_array().unwrap();
    let node = paired
        .iter()
        .find(|d| d["deviceId"] == node_kp.device_id().as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(node["roles"], json!(["node"]));

    // Hot: no CIDRs → the next new node waits; autoApproveLocal → loopback pairs silently.
    write_config(gw.state_path(), &config("[]", true));
    let (url, t) = (gw.url.clone(), token.clone());
    let hello = eventually("autoApproveLocal: true", || {
        let (url, p) = (url.clone(), golden_connect_params(Some(&t)));
        let kp = DeviceKeypair::from_seed(&[61u8; 32]);
        async move {
            let (_, res) = connect_from(&url, None, &[], Some(&kp), p).await;
            (res["ok"] == true).then_some(res)
        }
    })
    .await;
    // A device handed its token: the recovery scope is that token's, migration allowed.
    let auth = &hello["payload"]["auth"];
    let device_token = auth["deviceToken"].as_str().unwrap();
    assert_eq!(
        auth["recoveryScope"],
        RecoveryMaterial::DeviceToken(device_token).scope()
    );
    assert_eq!(auth["recoveryMigrationAllowed"], true);
    let late_kp = DeviceKeypair::from_seed(&[64u8; 32]);
    let (_, res) = connect_from(
        &from_lan,
        Some(lan),
        &[],
        Some(&late_kp),
        node_params(&token),
    )
    .await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
}

/// The pending pairing request of `device_id` (a device behind a proxy is never local).
async fn pending_remote_ip(url: &str, token: &str, device_id: &str) -> Value {
    let (mut op, _, res) = handshake(url, golden_connect_params(Some(token))).await;
    assert_eq!(res["ok"], true, "{res}");
    send_json(
        &mut op,
        &json!({"type": "req", "id": "l", "method": "device.pair.list", "params": {}}),
    )
    .await;
    let (list, _) = recv_res(&mut op, "l", T).await;
    let pending = list["payload"]["pending"].as_array().unwrap();
    let request = pending
        .iter()
        .find(|p| p["deviceId"] == device_id)
        .unwrap_or_else(|| panic!("no pending request for {device_id}: {list}"));
    request["remoteIp"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_real_ip_from_a_trusted_proxy_counts_only_with_allow_real_ip_fallback() {
    // This test is the proxy: it connects from loopback, which is listed as trusted, and
    // names the client only in X-Real-IP (no X-Forwarded-For).
    let gw = spawn_with_config("{ gateway: { trustedProxies: ['127.0.0.1'] } }");
    let token = gw.token();
    let through_proxy = |seed: u8| {
        let (url, token) = (gw.url.clone(), token.clone());
        async move {
            let kp = DeviceKeypair::from_seed(&[seed; 32]);
            let res = crate::proxy::connect_with_headers(
                &url,
                &[("x-real-ip", "203.0.113.7")],
                Some(&kp),
                golden_connect_params(Some(&token)),
            )
            .await;
            // A forwarded connection is never local, so it is not paired silently.
            assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
            kp.device_id()
        }
    };

    // Default (false): the header is ignored; the client is the proxy itself.
    let device = through_proxy(51).await;
    assert_eq!(
        pending_remote_ip(&gw.url, &token, &device).await,
        "127.0.0.1"
    );

    // Enabled (hot): the proxy's X-Real-IP names the client.
    write_config(
        gw.state_path(),
        "{ gateway: { trustedProxies: ['127.0.0.1'], allowRealIpFallback: true } }",
    );
    assert!(
        gw.wait_for_log_line("gateway.allowRealIpFallback updated", T)
            .is_some(),
        "{}",
        gw.all_logs()
    );
    let device = through_proxy(52).await;
    assert_eq!(
        pending_remote_ip(&gw.url, &token, &device).await,
        "203.0.113.7"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_names_the_rightmost_untrusted_hop_not_the_forgeable_leftmost() {
    // This test is the outer proxy (loopback, trusted) in front of an inner one in 10/8.
    let gw = spawn_with_config("{ gateway: { trustedProxies: ['127.0.0.1', '10.0.0.0/8'] } }");
    let token = gw.token();
    let through_proxies = |seed: u8, chain: &'static str| {
        let (url, token) = (gw.url.clone(), token.clone());
        async move {
            let kp = DeviceKeypair::from_seed(&[seed; 32]);
            let res = crate::proxy::connect_with_headers(
                &url,
                &[("x-forwarded-for", chain)],
                Some(&kp),
                golden_connect_params(Some(&token)),
            )
            .await;
            assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
            kp.device_id()
        }
    };
    // The client forged the first entry; the proxies appended the real address and their own.
    let device = through_proxies(53, "198.51.100.66, 203.0.113.8, 10.1.1.1").await;
    assert_eq!(
        pending_remote_ip(&gw.url, &token, &device).await,
        "203.0.113.8"
    );
    // Every hop trusted: no client named, so the address is the peer's own.
    let device = through_proxies(54, "10.2.2.2, 127.0.0.1").await;
    assert_eq!(
        pending_remote_ip(&gw.url, &token, &device).await,
        "127.0.0.1"
    );
}
