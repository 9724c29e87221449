//! `logs.tail`: recent JSON log lines from the in-memory ring, or from the log file.

use pincer_protocol::params::LOGS_TAIL_PARAMS;
use serde::Deserialize;
use serde_json::json;

use crate::dispatch::{MethodRegistry, OwnedCall, Reply};
use crate::logging::TailRequest;

const DEFAULT_LIMIT: usize = 200;
const DEFAULT_MAX_BYTES: usize = 250_000;

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("logs.tail", &LOGS_TAIL_PARAMS, |call| {
        Box::pin(logs_tail(call))
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TailParams {
    cursor: Option<u64>,
    limit: Option<u64>,
    max_bytes: Option<u64>,
}

async fn logs_tail(call: OwnedCall) -> Reply {
    let p: TailParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let req = TailRequest {
        cursor: p.cursor,
        limit: p.limit.map(|l| l as usize).unwrap_or(DEFAULT_LIMIT),
        max_bytes: p.max_bytes.map(|b| b as usize).unwrap_or(DEFAULT_MAX_BYTES),
    };
    let store = call.state.logs.clone();
    // The ring answers most requests; the file read (if needed) stays off the async workers.
    let result = match store.tail_from_ring(&req) {
        Some(r) => r,
        None => match tokio::task::spawn_blocking(move || store.tail(&req)).await {
            Ok(r) => r,
            Err(e) => {
                return Reply::Error(pincer_protocol::errors::ErrorShape::unavailable(format!(
                    "logs.tail failed: {e}"
                )))
            }
        },
    };
    let file = call
        .state
        .logs
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut payload = json!({
        "file": file,
        "cursor": result.cursor,
        "size": result.size,
        "lines": result.lines,
    });
    if let Some(obj) = payload.as_object_mut() {
        if result.truncated {
            obj.insert("truncated".into(), json!(true));
        }
        if result.reset {
            obj.insert("reset".into(), json!(true));
        }
        if result.skipped_bytes > 0 {
            obj.insert("skippedBytes".into(), json!(result.skipped_bytes));
        }
    }
    Reply::json(&payload)
}
