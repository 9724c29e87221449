//! Static schemas of frames, `connect` params and the params of implemented methods.
//!
//! Field order follows the reference's TypeBox schemas, which decides the order of errors.

use crate::connect::{CLIENT_IDS, CLIENT_MODES};
use crate::schema::{Prop, Schema, EMPTY_OBJECT, NON_EMPTY, NON_EMPTY_LIST, STRING};

/// `RequestFrame` (closed).
pub static REQUEST_FRAME: Schema = Schema::Object {
    props: &[
        Prop::req("type", Schema::Const("req")),
        Prop::req("id", NON_EMPTY),
        Prop::req("method", NON_EMPTY),
        Prop::opt("params", Schema::Any),
        Prop::opt(
            "traceparent",
            Schema::Str {
                min_len: None,
                max_len: Some(128),
            },
        ),
        Prop::opt(
            "expectedProfileId",
            Schema::Str {
                min_len: Some(1),
                max_len: Some(128),
            },
        ),
    ],
    closed: true,
};

static CLIENT_INFO: Schema = Schema::Object {
    props: &[
        Prop::req("id", Schema::Enum(CLIENT_IDS)),
        Prop::opt("displayName", NON_EMPTY),
        Prop::req("version", NON_EMPTY),
        Prop::opt(
            "buildId",
            Schema::Str {
                min_len: Some(1),
                max_len: Some(96),
            },
        ),
        Prop::req("platform", NON_EMPTY),
        Prop::opt("deviceFamily", NON_EMPTY),
        Prop::opt("modelIdentifier", NON_EMPTY),
        Prop::opt(
            "timeZone",
            Schema::Str {
                min_len: Some(1),
                max_len: Some(64),
            },
        ),
        Prop::req("mode", Schema::Enum(CLIENT_MODES)),
        Prop::opt("instanceId", NON_EMPTY),
    ],
    closed: true,
};

static DEVICE_PROOF: Schema = Schema::Object {
    props: &[
        Prop::req("id", NON_EMPTY),
        Prop::req("publicKey", NON_EMPTY),
        Prop::req("signature", NON_EMPTY),
        Prop::req(
            "signedAt",
            Schema::Int {
                min: Some(0),
                max: None,
            },
        ),
        Prop::req("nonce", STRING),
    ],
    closed: true,
};

static CONNECT_AUTH: Schema = Schema::Object {
    props: &[
        Prop::opt("token", STRING),
        Prop::opt("bootstrapToken", STRING),
        Prop::opt("deviceToken", STRING),
        Prop::opt("password", STRING),
        Prop::opt("approvalRuntimeToken", STRING),
        Prop::opt("agentRuntimeIdentityToken", STRING),
    ],
    closed: true,
};

static MODEL_CATALOG: Schema = Schema::AnyOf(&[
    Schema::Object {
        props: &[
            Prop::opt("agentId", NON_EMPTY),
            Prop::opt("sessionKey", NON_EMPTY),
        ],
        closed: true,
    },
    Schema::Object {
        props: &[
            Prop::opt("agentId", NON_EMPTY),
            Prop::req("shortId", NON_EMPTY),
            Prop::opt("slugHint", NON_EMPTY),
        ],
        closed: true,
    },
]);

/// `ConnectParams` (closed, spec §2.2).
pub static CONNECT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req(
            "minProtocol",
            Schema::Int {
                min: Some(1),
                max: None,
            },
        ),
        Prop::req(
            "maxProtocol",
            Schema::Int {
                min: Some(1),
                max: None,
            },
        ),
        Prop::req("client", Schema::Ref(&CLIENT_INFO)),
        Prop::opt("caps", NON_EMPTY_LIST),
        Prop::opt("commands", NON_EMPTY_LIST),
        Prop::opt("computerUse", Schema::Any),
        Prop::opt(
            "workerRuns",
            Schema::Object {
                props: &[],
                closed: false,
            },
        ),
        Prop::opt(
            "permissions",
            Schema::Record {
                value: &Schema::Bool,
            },
        ),
        Prop::opt("pathEnv", STRING),
        Prop::opt("role", NON_EMPTY),
        Prop::opt("scopes", NON_EMPTY_LIST),
        Prop::opt("modelCatalog", Schema::Ref(&MODEL_CATALOG)),
        Prop::opt("device", Schema::Ref(&DEVICE_PROOF)),
        Prop::opt("auth", Schema::Ref(&CONNECT_AUTH)),
        Prop::opt("locale", STRING),
        Prop::opt("userAgent", STRING),
    ],
    closed: true,
};

/// `health` params: `{probe?: boolean}`.
pub static HEALTH_PARAMS: Schema = Schema::Object {
    props: &[Prop::opt("probe", Schema::Bool)],
    closed: true,
};

/// Methods whose params are the closed empty object.
pub static EMPTY_PARAMS: Schema = EMPTY_OBJECT;

/// `logs.tail` params.
pub static LOGS_TAIL_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt(
            "cursor",
            Schema::Int {
                min: Some(0),
                max: None,
            },
        ),
        Prop::opt(
            "limit",
            Schema::Int {
                min: Some(1),
                max: Some(5000),
            },
        ),
        Prop::opt(
            "maxBytes",
            Schema::Int {
                min: Some(1),
                max: Some(1_000_000),
            },
        ),
    ],
    closed: true,
};

/// `system-event` params (presence-ish metadata plus the event text).
pub static SYSTEM_EVENT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("text", NON_EMPTY),
        Prop::opt("idempotencyKey", NON_EMPTY),
        Prop::opt("sessionKey", NON_EMPTY),
        Prop::opt(
            "wake",
            Schema::AnyOf(&[Schema::Bool, Schema::Enum(&["now", "next-heartbeat"])]),
        ),
        Prop::opt("deviceId", NON_EMPTY),
        Prop::opt("instanceId", NON_EMPTY),
        Prop::opt("host", NON_EMPTY),
        Prop::opt("ip", NON_EMPTY),
        Prop::opt("mode", NON_EMPTY),
        Prop::opt("version", NON_EMPTY),
        Prop::opt("platform", NON_EMPTY),
        Prop::opt("deviceFamily", NON_EMPTY),
        Prop::opt("modelIdentifier", NON_EMPTY),
        Prop::opt(
            "lastInputSeconds",
            Schema::Int {
                min: Some(0),
                max: None,
            },
        ),
        Prop::opt("reason", NON_EMPTY),
        Prop::opt("roles", NON_EMPTY_LIST),
        Prop::opt("scopes", NON_EMPTY_LIST),
        Prop::opt("tags", NON_EMPTY_LIST),
    ],
    closed: true,
};

/// `chat.history` params (used by a later issue; kept here so every schema lives in one place).
pub static CHAT_HISTORY_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("sessionKey", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("cursor", STRING),
        Prop::opt(
            "limit",
            Schema::Int {
                min: Some(1),
                max: None,
            },
        ),
        Prop::opt(
            "maxBytes",
            Schema::Int {
                min: Some(1024),
                max: None,
            },
        ),
        Prop::opt(
            "offset",
            Schema::Int {
                min: Some(0),
                max: None,
            },
        ),
        Prop::opt("pendingBefore", STRING),
        Prop::opt(
            "inputRunIds",
            Schema::Array {
                items: &NON_EMPTY,
                min_items: Some(1),
                max_items: Some(50),
            },
        ),
        Prop::opt("messageId", NON_EMPTY),
        Prop::opt("sessionId", NON_EMPTY),
        Prop::opt(
            "maxChars",
            Schema::Int {
                min: Some(1),
                max: Some(500_000),
            },
        ),
    ],
    closed: true,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::validate;
    use serde_json::json;

    fn connect(extra: serde_json::Value) -> serde_json::Value {
        let mut base = json!({"minProtocol":4,"maxProtocol":4,
            "client":{"id":"cli","version":"1","platform":"linux","mode":"cli"},
            "role":"operator","scopes":["operator.read"],"caps":[],"commands":[],"permissions":{},
            "auth":{"token":"t"},"locale":"en-US","userAgent":"x"});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(k);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        base
    }

    #[test]
    fn golden_connect_params_are_valid() {
        assert_eq!(validate(&CONNECT_PARAMS, &connect(json!({}))), Ok(()));
    }

    #[test]
    fn unknown_client_id_has_reference_text() {
        let v =
            connect(json!({"client":{"id":"nope","version":"1","platform":"linux","mode":"cli"}}));
        assert_eq!(
            validate(&CONNECT_PARAMS, &v),
            Err("at /client/id: must be equal to one of the allowed values".into())
        );
    }

    #[test]
    fn missing_device_nonce_has_reference_text() {
        let v = connect(json!({"device":{"id":"a","publicKey":"b","signature":"c","signedAt":1}}));
        assert_eq!(
            validate(&CONNECT_PARAMS, &v),
            Err("at /device: must have required property 'nonce'".into())
        );
    }

    #[test]
    fn request_frame_rejects_extra_properties() {
        let v = json!({"type":"req","id":"1","method":"health","extra":true});
        assert_eq!(
            validate(&REQUEST_FRAME, &v),
            Err("at root: unexpected property 'extra'".into())
        );
        let v = json!({"type":"req","id":"","method":"health"});
        assert_eq!(
            validate(&REQUEST_FRAME, &v),
            Err("at /id: must NOT have fewer than 1 characters".into())
        );
    }

    #[test]
    fn chat_history_golden_message() {
        assert_eq!(
            validate(&CHAT_HISTORY_PARAMS, &json!({"bogus":1})),
            Err(
                "must have required property 'sessionKey'; at root: unexpected property 'bogus'"
                    .into()
            )
        );
    }

    #[test]
    fn logs_tail_bounds() {
        assert_eq!(
            validate(&LOGS_TAIL_PARAMS, &json!({"limit":5000,"maxBytes":1})),
            Ok(())
        );
        assert_eq!(
            validate(&LOGS_TAIL_PARAMS, &json!({"limit":5001})),
            Err("at /limit: must be <= 5000".into())
        );
        assert_eq!(
            validate(&EMPTY_PARAMS, &json!({"x":1})),
            Err("at root: unexpected property 'x'".into())
        );
    }
}
