//! What became of a run's result, recorded with its receipt and shown in run history
//! (`deliveryStatus`, `delivered`, `deliveryError`, `deliverySuppressionReason`,
//! `completionStatus`), with the reference's vocabulary and rules.
//!
//! The runner reports what it tried ([`DeliveryAttempt`]); [`RunDelivery::resolve`] combines
//! that with the job's delivery settings at claim time ([`DeliveryPlan`]) and the run status.
//! The official CLI's `cron run --wait` exits 0 only for `completionStatus: "succeeded"`: an
//! `ok` run whose delivery was delivered, not requested, not required (best effort) or
//! suppressed on purpose (a silent or empty reply).

use serde::Serialize;

use crate::job::{DeliveryMode, JobDefinition, Payload, RunStatus, SessionTarget};

/// Whether the run's result reached its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryStatus {
    Delivered,
    NotDelivered,
    /// The job asks for no delivery (system events, `delivery.mode: "none"`, ...).
    NotRequested,
    /// Delivery was requested but the run ended before anyone could tell.
    Unknown,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::NotDelivered => "not-delivered",
            DeliveryStatus::NotRequested => "not-requested",
            DeliveryStatus::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        Some(match text {
            "delivered" => DeliveryStatus::Delivered,
            "not-delivered" => DeliveryStatus::NotDelivered,
            "not-requested" => DeliveryStatus::NotRequested,
            "unknown" => DeliveryStatus::Unknown,
            _ => return None,
        })
    }
}

/// Why a run delivered nothing on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// The reply was empty.
    Empty,
    /// The reply was the silent token (`NO_REPLY`).
    Silent,
    Heartbeat,
    ChannelTransform,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Empty => "empty",
            SuppressionReason::Silent => "silent",
            SuppressionReason::Heartbeat => "heartbeat",
            SuppressionReason::ChannelTransform => "channel_transform",
        }
    }
}

/// The run's overall verdict (run status and delivery together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompletionStatus {
    Succeeded,
    Failed,
    Unknown,
}

impl CompletionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionStatus::Succeeded => "succeeded",
            CompletionStatus::Failed => "failed",
            CompletionStatus::Unknown => "unknown",
        }
    }
}

/// What the runner did with the run's result (`None` on [`crate::RunOutcome`]: nothing was
/// attempted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryAttempt {
    Delivered,
    /// Delivery was tried and failed with this message.
    Failed(String),
    /// Nothing was delivered on purpose.
    Suppressed(SuppressionReason),
}

/// The job's delivery settings as they were when the run was claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryPlan {
    /// Primary delivery (`announce`, explicit or the default of isolated agent turns).
    pub requested: bool,
    pub webhook: bool,
    /// `delivery.bestEffort`: a failed delivery does not fail the run.
    pub best_effort: bool,
}

impl DeliveryPlan {
    pub fn of(def: &JobDefinition) -> DeliveryPlan {
        match &def.delivery {
            Some(d) => DeliveryPlan {
                requested: d.mode == DeliveryMode::Announce,
                webhook: d.mode == DeliveryMode::Webhook,
                best_effort: d.best_effort.unwrap_or(false),
            },
            // Without a delivery block only agent turns outside the main session announce.
            None => DeliveryPlan {
                requested: matches!(def.payload, Payload::AgentTurn { .. })
                    && !matches!(def.session_target, SessionTarget::Main),
                webhook: false,
                best_effort: false,
            },
        }
    }
}

/// The delivery fields of one finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDelivery {
    pub status: DeliveryStatus,
    pub error: Option<String>,
    pub suppression_reason: Option<SuppressionReason>,
    pub completion: CompletionStatus,
}

impl RunDelivery {
    /// The reference's rules: a reported delivery wins; otherwise an unrequested delivery is
    /// `not-requested` (a failed webhook POST aside); a failed run with no delivery report is
    /// `unknown` (its error explains why).
    pub fn resolve(
        plan: &DeliveryPlan,
        run_status: RunStatus,
        attempt: Option<&DeliveryAttempt>,
        run_error: Option<&str>,
    ) -> RunDelivery {
        let (status, error, suppression_reason) = match attempt {
            Some(DeliveryAttempt::Delivered) => (DeliveryStatus::Delivered, None, None),
            Some(DeliveryAttempt::Failed(e)) if !plan.requested && plan.webhook => {
                (DeliveryStatus::NotDelivered, Some(e.clone()), None)
            }
            _ if !plan.requested => (DeliveryStatus::NotRequested, None, None),
            Some(DeliveryAttempt::Failed(e)) => {
                (DeliveryStatus::NotDelivered, Some(e.clone()), None)
            }
            Some(DeliveryAttempt::Suppressed(r)) => (
                DeliveryStatus::NotDelivered,
                run_error.map(str::to_owned),
                Some(*r),
            ),
            None if run_status == RunStatus::Error => {
                (DeliveryStatus::Unknown, run_error.map(str::to_owned), None)
            }
            None => (DeliveryStatus::Unknown, None, None),
        };
        let required = !plan.best_effort && status != DeliveryStatus::NotRequested;
        let completion = match run_status {
            RunStatus::Error | RunStatus::Skipped => CompletionStatus::Failed,
            RunStatus::Ok
                if !required
                    || status == DeliveryStatus::Delivered
                    || (status == DeliveryStatus::NotDelivered && suppression_reason.is_some()) =>
            {
                CompletionStatus::Succeeded
            }
            RunStatus::Ok if status == DeliveryStatus::NotDelivered => CompletionStatus::Failed,
            RunStatus::Ok => CompletionStatus::Unknown,
        };
        RunDelivery {
            status,
            error,
            suppression_reason,
            completion,
        }
    }

    /// A run the gateway lost by stopping mid-run: nobody knows whether it delivered.
    pub fn interrupted(message: &str) -> RunDelivery {
        RunDelivery {
            status: DeliveryStatus::Unknown,
            error: Some(message.to_string()),
            suppression_reason: None,
            completion: CompletionStatus::Failed,
        }
    }

    /// `delivered: true|false` when the outcome is known either way.
    pub fn delivered(&self) -> Option<bool> {
        match self.status {
            DeliveryStatus::Delivered => Some(true),
            DeliveryStatus::NotDelivered => Some(false),
            DeliveryStatus::NotRequested | DeliveryStatus::Unknown => None,
        }
    }

    pub(crate) fn to_store(&self) -> pincer_store::CronRunDelivery {
        pincer_store::CronRunDelivery {
            status: Some(self.status.as_str().to_string()),
            error: self.error.clone(),
            suppression_reason: self.suppression_reason.map(|r| r.as_str().to_string()),
            completion_status: Some(self.completion.as_str().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn def(v: serde_json::Value) -> JobDefinition {
        let mut base = json!({
            "id": "00000000-0000-4000-8000-000000000001",
            "name": "j",
            "enabled": true,
            "createdAtMs": 1,
            "updatedAtMs": 1,
            "schedule": {"kind": "every", "everyMs": 60000},
            "sessionTarget": "main",
            "wakeMode": "now",
            "payload": {"kind": "systemEvent", "text": "hi"},
        });
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, val) in o {
                b.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn agent_turn(target: &str) -> serde_json::Value {
        json!({"sessionTarget": target, "payload": {"kind": "agentTurn", "message": "m"}})
    }

    #[test]
    fn plans_follow_the_delivery_block_and_the_reference_defaults() {
        assert_eq!(DeliveryPlan::of(&def(json!({}))), DeliveryPlan::default());
        assert!(DeliveryPlan::of(&def(agent_turn("isolated"))).requested);
        assert!(DeliveryPlan::of(&def(agent_turn("session:ops"))).requested);
        assert!(!DeliveryPlan::of(&def(agent_turn("main"))).requested);
        let mut none = agent_turn("isolated");
        none["delivery"] = json!({"mode": "none"});
        assert_eq!(DeliveryPlan::of(&def(none)), DeliveryPlan::default());
        let mut hook = agent_turn("isolated");
        hook["delivery"] = json!({"mode": "webhook", "to": "https://example.test/h"});
        let plan = DeliveryPlan::of(&def(hook));
        assert!(plan.webhook && !plan.requested);
        let mut best = agent_turn("isolated");
        best["delivery"] = json!({"mode": "announce", "channel": "last", "bestEffort": true});
        let plan = DeliveryPlan::of(&def(best));
        assert!(plan.requested && plan.best_effort);
    }

    #[test]
    fn a_system_event_run_is_not_requested_and_succeeds() {
        let d = RunDelivery::resolve(&DeliveryPlan::default(), RunStatus::Ok, None, None);
        assert_eq!(d.status, DeliveryStatus::NotRequested);
        assert_eq!(d.completion, CompletionStatus::Succeeded);
        assert_eq!(d.delivered(), None);
        assert_eq!(d.error, None);
    }

    #[test]
    fn announced_runs_succeed_only_when_delivered_or_silent() {
        let plan = DeliveryPlan {
            requested: true,
            ..DeliveryPlan::default()
        };
        let ok = |a: Option<&DeliveryAttempt>| RunDelivery::resolve(&plan, RunStatus::Ok, a, None);
        let d = ok(Some(&DeliveryAttempt::Delivered));
        assert_eq!(
            (d.status, d.completion, d.delivered()),
            (
                DeliveryStatus::Delivered,
                CompletionStatus::Succeeded,
                Some(true)
            )
        );
        let d = ok(Some(&DeliveryAttempt::Suppressed(
            SuppressionReason::Silent,
        )));
        assert_eq!(d.status, DeliveryStatus::NotDelivered);
        assert_eq!(d.suppression_reason, Some(SuppressionReason::Silent));
        assert_eq!(d.completion, CompletionStatus::Succeeded);
        let d = ok(Some(&DeliveryAttempt::Failed("telegram 502".into())));
        assert_eq!(d.status, DeliveryStatus::NotDelivered);
        assert_eq!(d.error.as_deref(), Some("telegram 502"));
        assert_eq!(d.completion, CompletionStatus::Failed);
        // Nothing reported although delivery was asked for: nobody knows.
        let d = ok(None);
        assert_eq!(
            (d.status, d.completion),
            (DeliveryStatus::Unknown, CompletionStatus::Unknown)
        );
    }

    #[test]
    fn best_effort_failures_do_not_fail_the_run() {
        let plan = DeliveryPlan {
            requested: true,
            best_effort: true,
            ..DeliveryPlan::default()
        };
        let d = RunDelivery::resolve(
            &plan,
            RunStatus::Ok,
            Some(&DeliveryAttempt::Failed("no route".into())),
            None,
        );
        assert_eq!(d.status, DeliveryStatus::NotDelivered);
        assert_eq!(d.delivered(), Some(false));
        assert_eq!(d.completion, CompletionStatus::Succeeded);
    }

    #[test]
    fn failed_runs_are_failed_and_say_why_delivery_is_unknown() {
        let plan = DeliveryPlan {
            requested: true,
            ..DeliveryPlan::default()
        };
        let d = RunDelivery::resolve(&plan, RunStatus::Error, None, Some("timed out after 60 s"));
        assert_eq!(d.status, DeliveryStatus::Unknown);
        assert_eq!(d.error.as_deref(), Some("timed out after 60 s"));
        assert_eq!(d.completion, CompletionStatus::Failed);
        // A failed unannounced run has nothing to deliver.
        let d = RunDelivery::resolve(
            &DeliveryPlan::default(),
            RunStatus::Error,
            None,
            Some("boom"),
        );
        assert_eq!(d.status, DeliveryStatus::NotRequested);
        assert_eq!(d.completion, CompletionStatus::Failed);
        let d = RunDelivery::resolve(&DeliveryPlan::default(), RunStatus::Skipped, None, None);
        assert_eq!(d.completion, CompletionStatus::Failed);
    }

    #[test]
    fn a_failed_webhook_post_is_not_delivered_even_though_announce_is_off() {
        let plan = DeliveryPlan {
            webhook: true,
            ..DeliveryPlan::default()
        };
        let d = RunDelivery::resolve(
            &plan,
            RunStatus::Error,
            Some(&DeliveryAttempt::Failed("HTTP 500".into())),
            Some("delivery failed: HTTP 500"),
        );
        assert_eq!(d.status, DeliveryStatus::NotDelivered);
        assert_eq!(d.error.as_deref(), Some("HTTP 500"));
        let d = RunDelivery::resolve(
            &plan,
            RunStatus::Ok,
            Some(&DeliveryAttempt::Delivered),
            None,
        );
        assert_eq!(d.status, DeliveryStatus::Delivered);
        // A silent reply posts nothing: the webhook was never tried.
        let d = RunDelivery::resolve(
            &plan,
            RunStatus::Ok,
            Some(&DeliveryAttempt::Suppressed(SuppressionReason::Empty)),
            None,
        );
        assert_eq!(d.status, DeliveryStatus::NotRequested);
        assert_eq!(d.completion, CompletionStatus::Succeeded);
    }

    #[test]
    fn interrupted_runs_are_failed_with_unknown_delivery() {
        let d = RunDelivery::interrupted("interrupted: the gateway stopped");
        assert_eq!(d.status, DeliveryStatus::Unknown);
        assert_eq!(d.completion, CompletionStatus::Failed);
        assert_eq!(d.error.as_deref(), Some("interrupted: the gateway stopped"));
    }

    #[test]
    fn stored_text_uses_the_wire_vocabulary() {
        let d = RunDelivery::resolve(
            &DeliveryPlan {
                requested: true,
                ..DeliveryPlan::default()
            },
            RunStatus::Ok,
            Some(&DeliveryAttempt::Suppressed(
                SuppressionReason::ChannelTransform,
            )),
            None,
        );
        let s = d.to_store();
        assert_eq!(s.status.as_deref(), Some("not-delivered"));
        assert_eq!(s.suppression_reason.as_deref(), Some("channel_transform"));
        assert_eq!(s.completion_status.as_deref(), Some("succeeded"));
        for st in [
            DeliveryStatus::Delivered,
            DeliveryStatus::NotDelivered,
            DeliveryStatus::NotRequested,
            DeliveryStatus::Unknown,
        ] {
            assert_eq!(DeliveryStatus::parse(st.as_str()), Some(st));
            assert_eq!(
                serde_json::to_value(st).unwrap(),
                json!(st.as_str()),
                "serde and as_str agree"
            );
        }
        assert_eq!(DeliveryStatus::parse("sent"), None);
    }
}
