//! Golden replays of the issue-4 captures `sessions_list.jsonl` and `chat_history_main.jsonl`
//! against the real binary (the shared conformance allowances plus the differences documented
//! below). `config.get` is compared by shape in `config.rs`: its content depends on the file
//! the reference ran with, and Pincer does not fill the reference's runtime defaults into
//! `runtimeConfig`.

use pincer_testkit::compare::{Action::Mask, Rule};
use pincer_testkit::replay::{Replay, ReplayReport};

use crate::bin;
use crate::conformance::common;

async fn conforms(replay: Replay) -> ReplayReport {
    let mut report = replay.run(bin()).await;
    report.assert_conforms();
    report.gateway.assert_alive_without_panic();
    report
}

#[tokio::test]
async fn sessions_list_empty() {
    let report = conforms(common(Replay::new("sessions_list.jsonl"))).await;
    let res = report.response("op", "r2-34cb001a").expect("sessions.list");
    assert_eq!(res["payload"]["limitApplied"], 100);
}

#[tokio::test]
async fn chat_history_main_empty() {
    conforms(
        common(Replay::new("chat_history_main.jsonl")).allow(&[Rule::new(
            "res:chat.history",
            "payload.sessionInfo.snapshotAt",
            Mask,
            "clock: when the row was built",
        )]),
    )
    .await;
}
