//! Nodes (issue 7) through real processes: the golden replay of `node_invoke.jsonl`, and the
//! gateway with a real `pincer node run` host — pairing (silent device pairing + command
//! approval via `pincer nodes approve`), invoke round trips, disconnect mid-invoke, timeouts,
//! gateway restart with reconnect, idempotency and the platform allowlist.

use std::time::Duration;

use pincer_testkit::compare::Action::{Absent, Mask, Subset};
use pincer_testkit::compare::Rule;
use pincer_testkit::replay::Replay;

use crate::bin;

/// Documented differences in the node scenario.
const NODE_INVOKE_RULES: &[Rule] = &[
    Rule::new(
        "event:connect.challenge",
        "payload.capabilities",
        Subset,
        "Pincer announces only what it implements (see conformance.rs)",
    ),
    Rule::new(
        "res:connect|event:presence",
        "**.presence[].ip",
        Absent,
        "the reference reports the host's LAN address for itself; Pincer does not enumerate interfaces",
    ),
    Rule::new(
        "event:node.invoke.request",
        "payload.timeoutMs",
        Mask,
        "the remaining budget (reference-measurements.md §5): 4996 of 5000 on the reference, 5000 on Pincer, which dispatches within the same millisecond",
    ),
    Rule::new(
        "res:connect",
        "payload.features.methods",
        Subset,
        "exactly the methods Pincer implements (the reference advertises 466)",
    ),
    Rule::new(
        "res:connect",
        "payload.features.events",
        Subset,
        "only the events Pincer emits",
    ),
    Rule::new(
        "res:connect",
        "payload.features.capabilities",
        Absent,
        "wire-contract flags of reference subsystems Pincer lacks",
    ),
    Rule::new(
        "res:connect",
        "payload.server.controlUiBuildSource",
        Absent,
        "see conformance.rs",
    ),
    Rule::new(
        "res:connect",
        "payload.controlUiWidgetKinds",
        Absent,
        "reference-only Control UI plugins",
    ),
    Rule::new(
        "res:connect",
        "payload.controlUiLinkReaders",
        Absent,
        "reference-only plugins",
    ),
    Rule::new(
        "res:connect",
        "payload.pluginSurfaceUrls",
        Absent,
        "the reference's canvas plugin surface; Pincer hosts no canvas",
    ),
    Rule::new(
        "res:connect",
        "payload.auth.recoveryScope",
        Absent,
        "credential-recovery scope: see conformance.rs",
    ),
    Rule::new(
        "res:connect",
        "payload.auth.recoveryMigrationAllowed",
        Absent,
        "credential-recovery hint: see conformance.rs",
    ),
    Rule::new(
        "res:connect",
        "payload.policy.allowedSessionVisibilities",
        Absent,
        "Pincer has no session sharing",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.updateSchedule",
        Absent,
        "the reference's self-updater",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.appliedConfigHash",
        Absent,
        "see conformance.rs",
    ),
    Rule::new(
        "res:connect|event:health",
        "payload.**.plugins.loaded",
        Subset,
        "the reference loads 14 bundled plugins; Pincer has no plugin host",
    ),
    Rule::new(
        "res:connect|event:health",
        "payload.**.agents[].heartbeat.prompt",
        Mask,
        "Pincer's own wording of the default heartbeat prompt",
    ),
    Rule::new(
        "res:connect|event:health",
        "payload.**.eventLoop.cpuBreakdown",
        Absent,
        "Node's thread split has no tokio equivalent",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.sessionDefaults.*",
        Mask,
        "the capture's gateway had a mock model configured",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.health.**",
        Mask,
        "health of the capture's gateway (sessions, agents, model) is compared by conformance.rs",
    ),
];

#[tokio::test]
async fn golden_node_invoke_replay() {
    let mut report = Replay::new("node_invoke.jsonl")
        .map_generated_ids()
        .allow(NODE_INVOKE_RULES)
        .missing_event(
            "voicewake.changed",
            "Pincer has no voice wake (talk/voice plugins are not part of it)",
        )
        .missing_event(
            "voicewake.routing.changed",
            "Pincer has no voice wake routing",
        )
        .frame_timeout(Duration::from_secs(10))
        .run(bin())
        .await;
    report.assert_conforms();
    report.gateway.assert_alive_without_panic();
}
