//! HTTP on the control-plane port (spec §8): the probes and upgrade handling, over raw TCP.

use std::net::SocketAddr;
use std::time::Duration;

use pincer_testkit::http::{http_request, HttpResponse};
use pincer_testkit::*;
use serde_json::json;

use crate::bin;

const T: Duration = Duration::from_secs(5);

fn addr(gw: &GatewayProcess) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], gw.port))
}

async fn get(gw: &GatewayProcess, method: &str, path: &str) -> HttpResponse {
    http_request(addr(gw), method, path, &[], T)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[tokio::test]
async fn liveness_probes_answer_get_and_head_and_refuse_other_methods() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    for path in ["/health", "/healthz"] {
        let r = get(&gw, "GET", path).await;
        assert_eq!(r.status, 200, "{path}");
        // The reference's exact body.
        assert_eq!(r.json(), json!({"ok": true, "status": "live"}), "{path}");
        assert!(r
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")));
        let r = get(&gw, "HEAD", path).await;
        assert_eq!(r.status, 200, "HEAD {path}");
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = get(&gw, method, path).await;
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn readiness_and_startup_probes() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    for path in ["/ready", "/readyz"] {
        let r = get(&gw, "GET", path).await;
        assert_eq!(r.status, 200, "{path}");
        let body = r.json();
        assert_eq!(body["ready"], true, "{body}");
        assert_eq!(body["failing"], json!([]), "{body}");
        // Local callers get the details.
        assert!(body["uptimeMs"].is_u64(), "{body}");
        assert!(body["eventLoop"].is_object(), "{body}");
        assert_eq!(get(&gw, "HEAD", path).await.status, 200);
        let r = get(&gw, "POST", path).await;
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    }
    for path in ["/startup", "/startupz"] {
        let r = get(&gw, "GET", path).await;
        assert_eq!(r.status, 200, "{path}");
        let body = r.json();
        assert_eq!(body["ok"], true, "{body}");
        assert_eq!(body["status"], "started", "{body}");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
        assert!(body["uptimeMs"].is_u64(), "{body}");
        let head = get(&gw, "HEAD", path).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        let r = get(&gw, "DELETE", path).await;
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    }
}

#[tokio::test]
async fn non_websocket_upgrades_are_refused() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    for upgrade in ["h2c", "TLS/1.2", "foo"] {
        let r = http_request(
            addr(&gw),
            "GET",
            "/",
            &[("Connection", "Upgrade, close"), ("Upgrade", upgrade)],
            T,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 400, "Upgrade: {upgrade}");
    }
    // A WebSocket upgrade with an unsupported protocol version: refused, naming the one we speak.
    let r = http_request(
        addr(&gw),
        "GET",
        "/",
        &[
            ("Connection", "Upgrade, close"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "99"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    // The gateway is unaffected: any other path still upgrades to the control plane.
    let (_, challenge, res) = handshake(
        &format!("{}/any/path", gw.url),
        golden_connect_params(Some(&gw.token())),
    )
    .await;
    assert!(challenge["nonce"].is_string());
    assert_eq!(res["ok"], true, "{res}");
}
