//! Trusted-proxy auth: identity from a configured header, accepted only from configured proxy
//! addresses.

use std::time::Duration;

use pincer_protocol::device_auth::{build_payload_v3, DeviceKeypair};
use pincer_testkit::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::bin;

const T: Duration = Duration::from_secs(5);

/// Connect with extra upgrade headers (what a reverse proxy adds); sign with `kp` if given.
/// Returns the connect `res`.
pub async fn connect_with_headers(
    url: &str,
    headers: &[(&str, &str)],
    kp: Option<&DeviceKeypair>,
    params: Value,
) -> Value {
    connect_from(url, None, headers, kp, params).await.1
}

/// [`connect_with_headers`] from a given local address (`None`: the OS's choice), keeping the
/// socket. A non-loopback address of this host (e.g. a veth end) makes the gateway see a
/// non-loopback peer without leaving the host.
pub async fn connect_from(
    url: &str,
    source: Option<std::net::IpAddr>,
    headers: &[(&str, &str)],
    kp: Option<&DeviceKeypair>,
    mut params: Value,
) -> (RawWs, Value) {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name =
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut()
            .insert(name, HeaderValue::from_str(v).unwrap());
    }
    let authority = url
        .strip_prefix("ws://")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let tcp = match source {
        None => tokio::net::TcpStream::connect(&authority).await.unwrap(),
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(std::net::SocketAddr::new(ip, 0)).unwrap();
            socket.connect(authority.parse().unwrap()).await.unwrap()
        }
    };
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    let challenge = recv(&mut ws, T).await.json();
    if let Some(kp) = kp {
        let nonce = challenge["payload"]["nonce"].as_str().unwrap();
        let ts = challenge["payload"]["ts"].as_u64().unwrap();
        let scopes = crate::devices::scopes_of(&params["scopes"]);
        let token = params["auth"]["token"].as_str().unwrap_or("").to_string();
        let payload = build_payload_v3(
            &kp.device_id(),
            params["client"]["id"].as_str().unwrap(),
            params["client"]["mode"].as_str().unwrap(),
            params["role"].as_str().unwrap_or("operator"),
            &scopes,
            ts,
            &token,
            nonce,
            params["client"]["platform"].as_str(),
            None,
        );
        params["device"] = json!({"id": kp.device_id(), "publicKey": kp.public_key(), "signature": kp.sign(&payload), "signedAt": ts, "nonce": nonce});
    }
    send_json(
        &mut ws,
        &json!({"type":"req","id":"c1","method":"connect","params":params}),
    )
    .await;
    let res = recv_res(&mut ws, "c1", T).await.0;
    (ws, res)
}

#[tokio::test]
async fn identity_comes_from_the_header_of_a_trusted_proxy_only() {
    let gw = GatewayProcess::spawn(
        bin(),
        SpawnOptions::default()
            .arg("--trusted-proxy")
            .arg("127.0.0.1")
            .arg("--trusted-proxy-allow-loopback")
            .arg("--trusted-proxy-user-header")
            .arg("x-forwarded-user")
            .arg("--trusted-proxy-allow-user")
            .arg("alice"),
    );
    assert_eq!(gw.info["authMode"], "trusted-proxy");
    let mut ui = golden_connect_params(None);
    ui["client"] = json!({"id":"test","version":"1","platform":"linux","mode":"test"});
    // The proxy vouches for alice: accepted without any secret.
    let res =
        connect_with_headers(&gw.url, &[("x-forwarded-user", "alice")], None, ui.clone()).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["method"], "trusted-proxy");
    // No user header, or a user not allowed: refused.
    let res = connect_with_headers(&gw.url, &[], None, ui.clone()).await;
    assert_eq!(
        res["error"]["details"]["authReason"], "trusted_proxy_user_missing",
        "{res}"
    );
    let res = connect_with_headers(
        &gw.url,
        &[("x-forwarded-user", "mallory")],
        None,
        ui.clone(),
    )
    .await;
    assert_eq!(
        res["error"]["details"]["authReason"],
        "trusted_proxy_user_not_allowed"
    );
    assert_eq!(res["error"]["details"]["code"], "AUTH_UNAUTHORIZED");

    // A proxy list that does not include the peer: the header is ignored.
    let gw2 = GatewayProcess::spawn(
        bin(),
        SpawnOptions::default()
            .arg("--trusted-proxy")
            .arg("10.0.0.1")
            .arg("--trusted-proxy-user-header")
            .arg("x-forwarded-user"),
    );
    let res = connect_with_headers(&gw2.url, &[("x-forwarded-user", "alice")], None, ui).await;
    assert_eq!(
        res["error"]["details"]["authReason"], "trusted_proxy_untrusted_source",
        "{res}"
    );
}
