use std::time::Duration;

use pincer_testkit::*;
use serde_json::json;

use crate::bin;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn tick_presence_and_per_connection_seq() {
    let gw = GatewayProcess::spawn(
        bin(),
        SpawnOptions::default().env("PINCER_TICK_INTERVAL_MS", "300"),
    );
    let token = gw.token();
    let (mut listener, _, hello) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    assert_eq!(hello["payload"]["policy"]["tickIntervalMs"], 300);
    let presence_v0 = hello["payload"]["snapshot"]["stateVersion"]["presence"]
        .as_u64()
        .unwrap();

    // A tracked (non-cli) client joins: the listener sees presence with a newer stateVersion.
    let mut params = golden_connect_params(Some(&token));
    params["client"] =
        json!({"id":"test","version":"1","platform":"linux","mode":"test","instanceId":"inst-1"});
    let (joiner, _, res) = handshake(&gw.url, params).await;
    assert_eq!(res["ok"], true);

    let mut seqs = Vec::new();
    let mut presence_seen = None;
    let mut ticks = 0;
    while ticks < 2 || presence_seen.is_none() {
        let f = recv(&mut listener, T).await.json();
        assert_eq!(f["type"], "event", "{f}");
        seqs.push(f["seq"].as_u64().unwrap());
        match f["event"].as_str().unwrap() {
            "tick" => {
                ticks += 1;
                assert!(f["payload"]["ts"].as_u64().is_some());
            }
            "presence" => presence_seen = Some(f),
            // Unsolicited, on the gateway's own timers: health refreshes, and the system
            // heartbeat job converged in the background after the start (as the replay
            // engine's default unsolicited set).
            "health" | "cron" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    let presence = presence_seen.unwrap();
    assert!(presence["stateVersion"]["presence"].as_u64().unwrap() > presence_v0);
    let list = presence["payload"]["presence"].as_array().unwrap();
    assert!(list
        .iter()
        .any(|e| e["instanceId"] == "inst-1" && e["mode"] == "test"));
    // seq counts every event delivered to this connection: 1, 2, 3, …
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // The joiner leaves: presence again, without it.
    drop(joiner);
    loop {
        let f = recv(&mut listener, T).await.json();
        if f["event"] == "presence" {
            let list = f["payload"]["presence"].as_array().unwrap();
            assert!(!list.iter().any(|e| e["instanceId"] == "inst-1"));
            break;
        }
    }
}
