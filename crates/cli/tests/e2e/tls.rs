//! TLS on the gateway port: self-signed certificate, fingerprint in the banner, gateway.json
//! and `status`; the CLI pins it; plaintext and TLS mix-ups fail with clear messages.

use std::process::Command;
use std::time::Duration;

use pincer_testkit::*;

use crate::bin;

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

#[test]
fn tls_port_with_pinning_and_clear_mixup_errors() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default().arg("--tls"));
    let url = gw.info["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("wss://"), "{url}");
    let fp = gw.info["tlsFingerprint"].as_str().unwrap().to_string();
    assert_eq!(fp.len(), 64);
    // The banner prints the fingerprint.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !gw.stdout().contains(&fp) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gw.stdout().contains(&fp), "banner: {}", gw.stdout());
    // Certificate and key were generated privately under <state>/tls/.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["tls/gateway-cert.pem", "tls/gateway-key.pem"] {
            let mode = std::fs::metadata(gw.state_path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    let token = gw.token();
    // Pinned: works, and `status` reports the fingerprint.
    let (ok, out, err) = cli(
        &gw,
        &[
            "status",
            "--url",
            &url,
            &format!("--token={token}"),
            &format!("--tls-fingerprint={fp}"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&fp), "{out}");
    let colon: String = fp
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let (ok, _, err) = cli(
        &gw,
        &[
            "health",
            "--url",
            &url,
            &format!("--token={token}"),
            &format!("--tls-fingerprint={colon}"),
        ],
    );
    assert!(ok, "colon form: {err}");
    // The local gateway.json carries the fingerprint: no flags needed on the gateway host.
    let (ok, _, err) = cli(&gw, &["status"]);
    assert!(ok, "{err}");
    // A wrong pin is refused.
    let wrong = "0".repeat(64);
    let (ok, _, err) = cli(
        &gw,
        &[
            "status",
            "--url",
            &url,
            &format!("--token={token}"),
            &format!("--tls-fingerprint={wrong}"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("fingerprint mismatch"), "{err}");
    // Unpinned self-signed: the platform verifier refuses it.
    let (ok, _, err) = cli(&gw, &["status", "--url", &url, &format!("--token={token}")]);
    assert!(!ok, "{err}");
    // ws:// to the TLS port: a clear message.
    let plain_url = url.replacen("wss://", "ws://", 1);
    let (ok, _, err) = cli(
        &gw,
        &["status", "--url", &plain_url, &format!("--token={token}")],
    );
    assert!(!ok);
    assert!(
        err.contains("speaks TLS") && err.contains("wss://"),
        "{err}"
    );
    // Plain HTTP to the TLS port gets an explanation too.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    assert!(body.starts_with("HTTP/1.1 400"), "{body}");
    assert!(body.contains("speaks TLS only"), "{body}");
    // The gateway still serves.
    let (ok, _, err) = cli(
        &gw,
        &[
            "health",
            "--url",
            &url,
            &format!("--token={token}"),
            &format!("--tls-fingerprint={fp}"),
        ],
    );
    assert!(ok, "{err}");
}

#[test]
fn wss_to_a_plaintext_port_is_a_clear_error() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let url = format!("wss://127.0.0.1:{}", gw.port);
    let (ok, _, err) = cli(
        &gw,
        &[
            "status",
            "--url",
            &url,
            &format!("--token={}", gw.token()),
            &format!("--tls-fingerprint={}", "a".repeat(64)),
        ],
    );
    assert!(!ok);
    assert!(err.contains("does not speak TLS"), "{err}");
}

#[test]
fn dashboard_prints_the_control_ui_url_with_the_token() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let (ok, out, err) = cli(&gw, &["dashboard"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("http://127.0.0.1:{}/#token={}", gw.port, gw.token())
    );
}
