//! The transcript shapes of the messages the runtime writes (runtime.md §2.5).

use pincer_providers::{AssistantMessage, ContentBlock, Usage};
use serde_json::{json, Map, Value};

use crate::context::{INJECTED_MODEL, INJECTED_PROVIDER};

/// A user message: `{role:"user", content, timestamp, idempotencyKey:"<runId>:user",
/// __openclaw:{senderIsOwner, …metadata}}`. Commands are marked so the model never sees them.
pub fn user_message(
    text: &str,
    run_id: &str,
    now_ms: u64,
    sender_is_owner: bool,
    metadata: Option<&Value>,
    command: bool,
) -> Value {
    let mut private = Map::new();
    private.insert("senderIsOwner".into(), json!(sender_is_owner));
    if let Some(Value::Object(extra)) = metadata {
        for (k, v) in extra {
            private.insert(k.clone(), v.clone());
        }
    }
    if command {
        private.insert("command".into(), json!(true));
    }
    json!({
        "role": "user",
        "content": text,
        "timestamp": now_ms,
        "idempotencyKey": format!("{run_id}:user"),
        "__openclaw": private,
    })
}

/// A gateway-injected assistant note (command replies, `chat.inject`): shown to people,
/// never replayed to the model.
pub fn injected_assistant(text: &str, now_ms: u64, label: Option<&str>) -> AssistantMessage {
    let mut extra = Map::new();
    if let Some(label) = label {
        extra.insert("label".into(), json!(label));
    }
    AssistantMessage {
        content: vec![ContentBlock::text(text)],
        api: Some("openai-responses".into()),
        provider: Some(INJECTED_PROVIDER.into()),
        model: Some(INJECTED_MODEL.into()),
        usage: Some(Usage::default()),
        stop_reason: Some(pincer_providers::StopReason::Stop),
        error_message: None,
        timestamp: Some(now_ms),
        response_id: None,
        extra,
    }
}

/// Tags an assistant/tool message with the run that produced it (`__openclaw.runId`).
pub fn tag_run(extra: &mut Map<String, Value>, run_id: &str) {
    extra.insert("__openclaw".into(), json!({ "runId": run_id }));
}

/// An assistant message as the transcript stores it (with its `role`).
pub fn assistant_value(message: &AssistantMessage) -> Value {
    serde_json::to_value(pincer_providers::Message::Assistant(message.clone()))
        .unwrap_or(Value::Null)
}
