//! Volatile fields: what may differ between two runs of the *same* gateway, so it is compared by
//! presence and type only. Two sources, both data:
//!
//! 1. [`TIMING_SENSITIVE`]: every entry a capture's `meta.timing_sensitive` may list, mapped to
//!    rules. A capture listing an entry this table does not know fails loudly, so a new kind of
//!    volatile field is always mapped on purpose.
//! 2. [`ENVIRONMENT`]: fields `reference-measurements.md` §5 names outside the meta (temp paths)
//!    plus facts of the machine and build (host name, addresses, product version, process
//!    measurements). They describe where and when the gateway runs, not the protocol.
//!
//! Intentional differences between Pincer and the reference are *not* here: each test keeps its
//! own documented allowlist (see `crates/cli/tests/e2e/conformance.rs`).

use crate::compare::{Action::Mask, Rule};

/// `meta.timing_sensitive` entry → rules.
pub const TIMING_SENSITIVE: &[(&str, &[Rule])] = &[
    (
        "connect.challenge.payload.nonce / .ts (fresh per connection; ts = server clock ms)",
        &[
            Rule::new("event:connect.challenge", "payload.nonce", Mask, "fresh per connection"),
            Rule::new("event:connect.challenge", "payload.ts", Mask, "server clock"),
        ],
    ),
    (
        "hello-ok.server.connId, server.bootId (per connection / per process)",
        &[
            Rule::new("res:connect", "payload.server.connId", Mask, "per connection"),
            Rule::new("res:connect", "payload.server.bootId", Mask, "per process"),
        ],
    ),
    (
        "hello-ok.snapshot.uptimeMs, snapshot.stateVersion, snapshot.health.ts, snapshot.presence[].ts",
        &[
            Rule::new("res:connect", "payload.snapshot.uptimeMs", Mask, "clock"),
            Rule::new("res:connect", "payload.snapshot.stateVersion.*", Mask, "counters"),
            Rule::new("res:connect", "payload.snapshot.health.ts", Mask, "clock"),
            Rule::new("res:connect", "payload.snapshot.presence[].ts", Mask, "clock"),
        ],
    ),
    (
        "hello-ok.auth.deviceToken, auth.issuedAtMs, auth.recoveryScope (redacted)",
        &[
            Rule::new("res:connect", "payload.auth.deviceToken", Mask, "issued secret"),
            Rule::new("res:connect", "payload.auth.issuedAtMs", Mask, "clock"),
            Rule::new("res:connect", "payload.auth.recoveryScope", Mask, "redacted hash"),
        ],
    ),
    (
        "any ts / *AtMs / timestamp / durationMs / startedAt / endedAt field",
        &[
            Rule::new("*", "**.ts", Mask, "clock"),
            Rule::new("*", "**.*AtMs", Mask, "clock"),
            Rule::new("*", "**.timestamp", Mask, "clock"),
            Rule::new("*", "**.durationMs", Mask, "measured"),
            Rule::new("*", "**.startedAt", Mask, "clock"),
            Rule::new("*", "**.endedAt", Mask, "clock"),
        ],
    ),
    (
        "event seq (per-connection counter) and stateVersion",
        &[
            // The replayer checks separately that each connection's seq runs 1, 2, 3, ….
            Rule::new("event:*", "seq", Mask, "per-connection counter"),
            Rule::new("event:*", "stateVersion.*", Mask, "counters"),
        ],
    ),
    (
        "runId, sessionId, messageId, itemId, idempotencyKey, requestId, invoke id (uuids)",
        &[
            Rule::new("*", "**.runId", Mask, "uuid"),
            Rule::new("*", "**.sessionId", Mask, "uuid"),
            Rule::new("*", "**.messageId", Mask, "uuid"),
            Rule::new("*", "**.itemId", Mask, "uuid"),
            Rule::new("*", "**.idempotencyKey", Mask, "uuid"),
            Rule::new("*", "**.requestId", Mask, "uuid"),
            Rule::new("event:node.invoke.*", "payload.id", Mask, "invoke uuid"),
        ],
    ),
    (
        // The replayer sends the captured request ids unchanged, so response ids are compared
        // exactly (stronger than masking).
        "req ids are chosen by this client (r<N>-<hex>)",
        &[],
    ),
    (
        "deltaCursor (opaque, encodes session ids)",
        &[Rule::new("*", "**.deltaCursor", Mask, "opaque cursor")],
    ),
];

/// Facts of the machine, the build and the run (not in the meta).
pub const ENVIRONMENT: &[Rule] = &[
    // reference-measurements §5: "Temporary paths in configPath, stateDir and config.get".
    Rule::new("*", "**.configPath", Mask, "temp state dir"),
    Rule::new("*", "**.stateDir", Mask, "temp state dir"),
    Rule::new("*", "**.path", Mask, "file under the temp state dir"),
    Rule::new("*", "**.paths[]", Mask, "files under the temp state dir"),
    // The product and its version.
    Rule::new(
        "res:connect",
        "payload.server.version",
        Mask,
        "product version",
    ),
    Rule::new(
        "res:connect",
        "payload.server.buildId",
        Mask,
        "build identity",
    ),
    Rule::new(
        "res:status",
        "payload.runtimeVersion",
        Mask,
        "product version",
    ),
    // The gateway's own presence entry describes the host it runs on.
    Rule::new("*", "**.presence[].host", Mask, "host name"),
    Rule::new("*", "**.presence[].ip", Mask, "host address"),
    Rule::new("*", "**.presence[].version", Mask, "product version"),
    Rule::new("*", "**.presence[].platform", Mask, "host kernel"),
    Rule::new("*", "**.presence[].deviceFamily", Mask, "host OS"),
    Rule::new("*", "**.presence[].instanceId", Mask, "per process"),
    Rule::new(
        "*",
        "**.presence[].text",
        Mask,
        "names host, address and version",
    ),
    Rule::new(
        "res:system-presence",
        "payload[].*",
        Mask,
        "host facts (as above)",
    ),
    // Process and event-loop measurements.
    Rule::new("*", "**.eventLoop.*", Mask, "measured"),
    Rule::new("*", "**.eventLoop.cpuBreakdown.*", Mask, "measured"),
    Rule::new("*", "**.processMemory.*", Mask, "measured"),
    Rule::new("res:status", "payload.pid", Mask, "process id"),
    Rule::new("*", "**.recent[].age", Mask, "clock"),
    Rule::new("*", "**.recent[].updatedAt", Mask, "clock"),
];

/// The rules for a capture's `timing_sensitive` list; `Err` names entries without a mapping.
pub fn for_timing_sensitive(entries: &[&str]) -> Result<Vec<Rule>, Vec<String>> {
    let mut rules = Vec::new();
    let mut unknown = Vec::new();
    for entry in entries {
        match TIMING_SENSITIVE.iter().find(|(k, _)| k == entry) {
            Some((_, r)) => rules.extend_from_slice(r),
            None => unknown.push(entry.to_string()),
        }
    }
    if unknown.is_empty() {
        Ok(rules)
    } else {
        Err(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::{golden_dir, Golden};

    #[test]
    fn every_captured_timing_sensitive_entry_is_mapped() {
        for entry in std::fs::read_dir(golden_dir()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.ends_with(".jsonl") {
                continue;
            }
            let g = Golden::load(&name);
            if let Err(unknown) = for_timing_sensitive(&g.timing_sensitive()) {
                panic!("{name}: unmapped timing_sensitive entries {unknown:?}");
            }
        }
        assert!(for_timing_sensitive(&["something new"]).is_err());
    }
}
