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

/// `device.pair.approve` / `device.pair.reject` params.
pub static DEVICE_PAIR_REQUEST_PARAMS: Schema = Schema::Object {
    props: &[Prop::req("requestId", NON_EMPTY)],
    closed: true,
};

/// `device.pair.remove` params.
pub static DEVICE_PAIR_REMOVE_PARAMS: Schema = Schema::Object {
    props: &[Prop::req("deviceId", NON_EMPTY)],
    closed: true,
};

/// `device.pair.rename` params (label 1..64 chars).
pub static DEVICE_PAIR_RENAME_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("deviceId", NON_EMPTY),
        Prop::req(
            "label",
            Schema::Str {
                min_len: Some(1),
                max_len: Some(64),
            },
        ),
    ],
    closed: true,
};

/// `device.token.rotate` params.
pub static DEVICE_TOKEN_ROTATE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("deviceId", NON_EMPTY),
        Prop::req("role", NON_EMPTY),
        Prop::opt("scopes", NON_EMPTY_LIST),
    ],
    closed: true,
};

/// `device.token.revoke` params.
pub static DEVICE_TOKEN_REVOKE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("deviceId", NON_EMPTY),
        Prop::req("role", NON_EMPTY),
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

const POS_INT: Schema = Schema::Int {
    min: Some(1),
    max: None,
};
const NON_NEG_INT: Schema = Schema::Int {
    min: Some(0),
    max: None,
};

/// The filters of `sessions.list` (also accepted by `sessions.subscribe`).
macro_rules! sessions_list_props {
    () => {
        &[
            Prop::opt("limit", POS_INT),
            Prop::opt("offset", NON_NEG_INT),
            Prop::opt("activeMinutes", POS_INT),
            Prop::opt("activeOnly", Schema::Bool),
            Prop::opt("requireLastInteraction", Schema::Bool),
            Prop::opt(
                "sortBy",
                Schema::Enum(&["updatedAt", "lastInteractionAt", "activity"]),
            ),
            Prop::opt("includeGlobal", Schema::Bool),
            Prop::opt("includeUnknown", Schema::Bool),
            Prop::opt("excludeSubagents", Schema::Bool),
            Prop::opt("excludeCron", Schema::Bool),
            Prop::opt("excludeSystem", Schema::Bool),
            Prop::opt("configuredAgentsOnly", Schema::Bool),
            Prop::opt("includeDerivedTitles", Schema::Bool),
            Prop::opt("includeLastMessage", Schema::Bool),
            Prop::opt("includeActivitySummary", Schema::Bool),
            Prop::opt("label", STRING),
            Prop::opt("projectId", STRING),
            Prop::opt("workspaceDir", STRING),
            Prop::opt("group", STRING),
            Prop::opt("pinned", Schema::Bool),
            Prop::opt("boardFace", STRING),
            Prop::opt("hasBoard", Schema::Bool),
            Prop::opt("creatorId", STRING),
            Prop::opt("ownerId", STRING),
            Prop::opt("ownerFirst", Schema::Bool),
            Prop::opt("involvingMe", Schema::Bool),
            Prop::opt("profileRelation", STRING),
            Prop::opt("involvingProfileId", STRING),
            Prop::opt("includePeople", Schema::Bool),
            Prop::opt("spawnedBy", STRING),
            Prop::opt("agentId", NON_EMPTY),
            Prop::opt("search", STRING),
            Prop::opt(
                "archived",
                Schema::AnyOf(&[Schema::Bool, Schema::Const("all")]),
            ),
        ]
    };
}

/// `sessions.list` params.
pub static SESSIONS_LIST_PARAMS: Schema = Schema::Object {
    props: sessions_list_props!(),
    closed: true,
};

/// `sessions.subscribe` params (the list filters; `{}` = ack only).
pub static SESSIONS_SUBSCRIBE_PARAMS: Schema = Schema::Object {
    props: sessions_list_props!(),
    closed: true,
};

/// `sessions.messages.subscribe` / `.unsubscribe` params.
pub static SESSIONS_MESSAGES_SUBSCRIBE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("key", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("includeApprovals", Schema::Bool),
    ],
    closed: true,
};

/// `sessions.preview` params.
pub static SESSIONS_PREVIEW_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req(
            "keys",
            Schema::Array {
                items: &NON_EMPTY,
                min_items: Some(1),
                max_items: None,
            },
        ),
        Prop::opt("limit", POS_INT),
        Prop::opt(
            "maxChars",
            Schema::Int {
                min: Some(20),
                max: None,
            },
        ),
    ],
    closed: true,
};

/// `sessions.describe` params.
pub static SESSIONS_DESCRIBE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("key", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("includeDerivedTitles", Schema::Bool),
        Prop::opt("includeLastMessage", Schema::Bool),
    ],
    closed: true,
};

/// `sessions.create` params (the subset Pincer implements; others are refused by name).
pub static SESSIONS_CREATE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("key", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("label", NON_EMPTY),
        Prop::opt("model", NON_EMPTY),
        Prop::opt("thinkingLevel", NON_EMPTY),
        Prop::opt(
            "message",
            Schema::Str {
                min_len: None,
                max_len: None,
            },
        ),
        Prop::opt("idempotencyKey", NON_EMPTY),
    ],
    closed: true,
};

/// `sessions.patch` params (values may be `null` to clear an override).
pub static SESSIONS_PATCH_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("key", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("expectedSessionId", NON_EMPTY),
        Prop::opt("expectedUpdatedAt", Schema::Any),
        Prop::opt("label", Schema::Any),
        Prop::opt("displayName", Schema::Any),
        Prop::opt("autoLabel", Schema::Any),
        Prop::opt("icon", Schema::Any),
        Prop::opt("color", Schema::Any),
        Prop::opt("category", Schema::Any),
        Prop::opt("boardFace", Schema::Any),
        Prop::opt("boardPresentation", Schema::Any),
        Prop::opt("statusNote", Schema::Any),
        Prop::opt("attention", Schema::Any),
        Prop::opt("ttlMinutes", Schema::Any),
        Prop::opt("archived", Schema::Bool),
        Prop::opt("pinned", Schema::Bool),
        Prop::opt("unread", Schema::Bool),
        Prop::opt("contextWindow", Schema::Any),
        Prop::opt("thinkingLevel", Schema::Any),
        Prop::opt("fastMode", Schema::Any),
        Prop::opt("toolOverrides", Schema::Any),
        Prop::opt("verboseLevel", Schema::Any),
        Prop::opt("traceLevel", Schema::Any),
        Prop::opt("reasoningLevel", Schema::Any),
        Prop::opt("responseUsage", Schema::Any),
        Prop::opt("elevatedLevel", Schema::Any),
        Prop::opt("execHost", Schema::Any),
        Prop::opt("execSecurity", Schema::Any),
        Prop::opt("execAsk", Schema::Any),
        Prop::opt("execNode", Schema::Any),
        Prop::opt("permissionMode", Schema::Any),
        Prop::opt("sandboxMode", Schema::Any),
        Prop::opt("nativeRuntimeConsent", Schema::Any),
        Prop::opt("model", Schema::Any),
        Prop::opt("agentRuntime", Schema::Any),
        Prop::opt("sendPolicy", Schema::Any),
        Prop::opt("groupActivation", Schema::Any),
        Prop::opt("queueMode", Schema::Any),
    ],
    closed: true,
};

/// `sessions.reset` params.
pub static SESSIONS_RESET_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("key", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("reason", Schema::Enum(&["new", "reset"])),
        Prop::opt("expectedSessionId", NON_EMPTY),
    ],
    closed: true,
};

/// `sessions.delete` params.
pub static SESSIONS_DELETE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("key", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("deleteTranscript", Schema::Bool),
        Prop::opt("expectedSessionId", NON_EMPTY),
        Prop::opt("expectedLifecycleRevision", Schema::Any),
        Prop::opt("expectedSessionUpdatedAt", Schema::Any),
        Prop::opt("emitLifecycleHooks", Schema::Bool),
        Prop::opt("archivedOnly", Schema::Bool),
    ],
    closed: true,
};

/// `config.set` params.
pub static CONFIG_SET_PARAMS: Schema = Schema::Object {
    props: &[Prop::req("raw", STRING), Prop::opt("baseHash", STRING)],
    closed: true,
};

/// `config.patch` / `config.apply` params.
pub static CONFIG_PATCH_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("raw", STRING),
        Prop::opt("baseHash", STRING),
        Prop::opt("sessionKey", STRING),
        Prop::opt("deliveryContext", Schema::Any),
        Prop::opt("note", STRING),
        Prop::opt("restartDelayMs", NON_NEG_INT),
        Prop::opt(
            "replacePaths",
            Schema::Array {
                items: &NON_EMPTY,
                min_items: None,
                max_items: Some(256),
            },
        ),
    ],
    closed: true,
};

/// `config.schema.lookup` params.
pub static CONFIG_SCHEMA_LOOKUP_PARAMS: Schema = Schema::Object {
    props: &[Prop::req("path", STRING)],
    closed: true,
};

/// Any JSON value (open sub-objects of the agent/chat params).
const ANY: Schema = Schema::Any;

/// `chat.send` params (closed; field order of the reference's `ChatSendParamsSchema`).
pub static CHAT_SEND_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req(
            "sessionKey",
            Schema::Str {
                min_len: Some(1),
                max_len: Some(512),
            },
        ),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("sessionId", NON_EMPTY),
        Prop::req("message", STRING),
        Prop::opt("mentions", ANY),
        Prop::opt("workContext", ANY),
        Prop::opt("intent", ANY),
        Prop::opt("thinking", STRING),
        Prop::opt(
            "fastMode",
            Schema::AnyOf(&[Schema::Bool, Schema::Const("auto")]),
        ),
        Prop::opt("fastAutoOnSeconds", NON_NEG_INT),
        Prop::opt(
            "queueMode",
            Schema::Enum(&["steer", "followup", "collect", "interrupt"]),
        ),
        Prop::opt("deliver", Schema::Bool),
        Prop::opt("originatingChannel", STRING),
        Prop::opt("originatingTo", STRING),
        Prop::opt("originatingAccountId", STRING),
        Prop::opt("originatingThreadId", STRING),
        Prop::opt("replyToId", STRING),
        Prop::opt(
            "attachments",
            Schema::Array {
                items: &ANY,
                min_items: None,
                max_items: None,
            },
        ),
        Prop::opt("toolBindings", ANY),
        Prop::opt("timeoutMs", NON_NEG_INT),
        Prop::opt("systemInputProvenance", ANY),
        Prop::opt("systemProvenanceReceipt", ANY),
        Prop::opt("suppressCommandInterpretation", Schema::Bool),
        Prop::opt("expectedLeafEntryId", ANY),
        Prop::opt("expectedSessionRoutingContract", ANY),
        Prop::opt("expectedPermissionMode", ANY),
        Prop::opt("expectedToolOverrides", ANY),
        Prop::req("idempotencyKey", NON_EMPTY),
    ],
    closed: true,
};

/// `chat.abort` params.
pub static CHAT_ABORT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("sessionKey", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("runId", NON_EMPTY),
        Prop::opt("preserveSideRuns", Schema::Bool),
    ],
    closed: true,
};

/// `chat.inject` params.
pub static CHAT_INJECT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("sessionKey", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::req("message", NON_EMPTY),
        Prop::opt(
            "label",
            Schema::Str {
                min_len: None,
                max_len: Some(100),
            },
        ),
    ],
    closed: true,
};

/// `agent` params (`AgentParams`). Open: the reference accepts internal fields too.
pub static AGENT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("message", STRING),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("provider", STRING),
        Prop::opt("model", STRING),
        Prop::opt("to", STRING),
        Prop::opt("replyTo", STRING),
        Prop::opt("sessionId", STRING),
        Prop::opt("sessionKey", STRING),
        Prop::opt("expectedExistingSessionId", STRING),
        Prop::opt("thinking", STRING),
        Prop::opt("deliver", Schema::Bool),
        Prop::opt(
            "attachments",
            Schema::Array {
                items: &ANY,
                min_items: None,
                max_items: None,
            },
        ),
        Prop::opt("channel", STRING),
        Prop::opt("replyChannel", STRING),
        Prop::opt("accountId", STRING),
        Prop::opt("replyAccountId", STRING),
        Prop::opt("threadId", STRING),
        Prop::opt("groupId", STRING),
        Prop::opt("groupChannel", STRING),
        Prop::opt("groupSpace", STRING),
        Prop::opt("timeout", NON_NEG_INT),
        Prop::opt("bestEffortDeliver", Schema::Bool),
        Prop::opt("lane", STRING),
        Prop::opt("cwd", STRING),
        Prop::opt("promptMode", Schema::Enum(&["full", "minimal", "none"])),
        Prop::opt("extraSystemPrompt", STRING),
        Prop::opt("label", STRING),
        Prop::req("idempotencyKey", NON_EMPTY),
    ],
    closed: false,
};

/// `agent.wait` params.
pub static AGENT_WAIT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("runId", NON_EMPTY),
        Prop::opt("timeoutMs", NON_NEG_INT),
    ],
    closed: true,
};

/// `agent.identity.get` params.
pub static AGENT_IDENTITY_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("sessionKey", NON_EMPTY),
    ],
    closed: true,
};

/// `models.list` params.
pub static MODELS_LIST_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("sessionKey", NON_EMPTY),
        Prop::opt("authProfileId", NON_EMPTY),
        Prop::opt("provider", NON_EMPTY),
        Prop::opt("includeDetails", Schema::Bool),
        Prop::opt("includeProviderCapabilities", Schema::Bool),
        Prop::opt("includeDefaultModels", Schema::Bool),
        Prop::opt("preparedOnly", Schema::Bool),
        Prop::opt("refresh", Schema::Bool),
        Prop::opt(
            "view",
            Schema::Enum(&["default", "configured", "provider-config", "all"]),
        ),
    ],
    closed: true,
};

/// `sessions.compact` params.
pub static SESSIONS_COMPACT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("key", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("maxLines", POS_INT),
    ],
    closed: true,
};

/// `node.pair.approve` / `node.pair.reject` params.
pub static NODE_PAIR_REQUEST_PARAMS: Schema = Schema::Object {
    props: &[Prop::req("requestId", NON_EMPTY)],
    closed: true,
};

/// `node.pair.remove` / `node.describe` params.
pub static NODE_ID_PARAMS: Schema = Schema::Object {
    props: &[Prop::req("nodeId", NON_EMPTY)],
    closed: true,
};

/// `node.rename` params.
pub static NODE_RENAME_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("nodeId", NON_EMPTY),
        Prop::req("displayName", NON_EMPTY),
    ],
    closed: true,
};

const NON_NEGATIVE_INT: Schema = Schema::Int {
    min: Some(0),
    max: None,
};

/// `node.invoke` params.
pub static NODE_INVOKE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("nodeId", NON_EMPTY),
        Prop::req("command", NON_EMPTY),
        Prop::opt("params", Schema::Any),
        Prop::opt("timeoutMs", NON_NEGATIVE_INT),
        Prop::req("idempotencyKey", NON_EMPTY),
        Prop::opt("sessionKey", NON_EMPTY),
        Prop::opt("turnSourceChannel", STRING),
        Prop::opt("turnSourceTo", STRING),
        Prop::opt("turnSourceAccountId", STRING),
        Prop::opt(
            "turnSourceThreadId",
            Schema::AnyOf(&[
                STRING,
                Schema::Number {
                    min: None,
                    max: None,
                },
            ]),
        ),
    ],
    closed: true,
};

/// `node.invoke.result` params. `payloadJSON` and `error` may be `null` (the reference drops a
/// null before validating); the handler checks their types.
pub static NODE_INVOKE_RESULT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("id", NON_EMPTY),
        Prop::req("nodeId", NON_EMPTY),
        Prop::req("ok", Schema::Bool),
        Prop::opt("payload", Schema::Any),
        Prop::opt("payloadJSON", Schema::Any),
        Prop::opt("error", Schema::Any),
    ],
    closed: true,
};

/// `node.invoke.progress` params (chunks up to 16,384 characters).
pub static NODE_INVOKE_PROGRESS_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("invokeId", NON_EMPTY),
        Prop::req("nodeId", NON_EMPTY),
        Prop::req("seq", NON_NEGATIVE_INT),
        Prop::req(
            "chunk",
            Schema::Str {
                min_len: None,
                max_len: Some(16384),
            },
        ),
    ],
    closed: true,
};

/// `node.event` params.
pub static NODE_EVENT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("event", NON_EMPTY),
        Prop::opt("payload", Schema::Any),
        Prop::opt("payloadJSON", STRING),
    ],
    closed: true,
};

/// `exec.approval.get` params.
pub static EXEC_APPROVAL_GET_PARAMS: Schema = Schema::Object {
    props: &[Prop::req("id", NON_EMPTY)],
    closed: true,
};

/// `exec.approval.waitDecision` params (`timeoutMs` caps the wait; without it the call waits
/// until the approval is decided or expires).
pub static EXEC_APPROVAL_WAIT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("id", NON_EMPTY),
        Prop::opt(
            "timeoutMs",
            Schema::Int {
                min: Some(1),
                max: None,
            },
        ),
    ],
    closed: true,
};

/// `exec.approval.request` params (nullable fields are checked by the handler).
pub static EXEC_APPROVAL_REQUEST_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("id", NON_EMPTY),
        Prop::opt("command", NON_EMPTY),
        Prop::opt(
            "commandArgv",
            Schema::Array {
                items: &STRING,
                min_items: None,
                max_items: None,
            },
        ),
        Prop::opt("systemRunPlan", Schema::Any),
        Prop::opt("env", Schema::Record { value: &STRING }),
        Prop::opt("cwd", Schema::Any),
        Prop::opt("nodeId", Schema::Any),
        Prop::opt("host", Schema::Any),
        Prop::opt("security", Schema::Any),
        Prop::opt("ask", Schema::Any),
        Prop::opt("warningText", Schema::Any),
        Prop::opt("scope", Schema::Any),
        Prop::opt("unavailableDecisions", Schema::Any),
        Prop::opt("commandSpans", Schema::Any),
        Prop::opt("agentId", Schema::Any),
        Prop::opt("resolvedPath", Schema::Any),
        Prop::opt("sessionKey", Schema::Any),
        Prop::opt("sessionId", Schema::Any),
        Prop::opt("runId", Schema::Any),
        Prop::opt("toolCallId", Schema::Any),
        Prop::opt("turnSourceChannel", Schema::Any),
        Prop::opt("turnSourceTo", Schema::Any),
        Prop::opt("turnSourceAccountId", Schema::Any),
        Prop::opt("turnSourceThreadId", Schema::Any),
        Prop::opt("approvalReviewerDeviceIds", Schema::Any),
        Prop::opt("requireDeliveryRoute", Schema::Bool),
        Prop::opt("suppressDelivery", Schema::Bool),
        Prop::opt("deliverToApprovalClientsOnly", Schema::Bool),
        Prop::opt(
            "timeoutMs",
            Schema::Int {
                min: Some(1),
                max: None,
            },
        ),
        Prop::opt("twoPhase", Schema::Bool),
    ],
    closed: true,
};

/// `exec.approval.resolve` params.
pub static EXEC_APPROVAL_RESOLVE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("id", NON_EMPTY),
        Prop::req("decision", NON_EMPTY),
        Prop::opt("reviewer", Schema::Any),
        Prop::opt(
            "grantExpiresInDays",
            Schema::Int {
                min: Some(1),
                max: Some(3650),
            },
        ),
    ],
    closed: true,
};

/// `exec.approvals.set` params (the document itself is checked by the handler).
pub static EXEC_APPROVALS_SET_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req(
            "file",
            Schema::Object {
                props: &[],
                closed: false,
            },
        ),
        Prop::opt("baseHash", NON_EMPTY),
    ],
    closed: true,
};

/// `tools.catalog` params.
pub static TOOLS_CATALOG_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("includePlugins", Schema::Bool),
    ],
    closed: true,
};

/// `tools.effective` params.
pub static TOOLS_EFFECTIVE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("agentId", NON_EMPTY),
        Prop::req("sessionKey", NON_EMPTY),
    ],
    closed: true,
};

// ---- automations (issue 10) --------------------------------------------------------------

const LIMIT_1_200: Schema = Schema::Int {
    min: Some(1),
    max: Some(200),
};
const OFFSET: Schema = Schema::Int {
    min: Some(0),
    max: None,
};

/// `cron.list` params (closed; filter values are checked by the handler).
pub static CRON_LIST_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("sessionKey", NON_EMPTY),
        Prop::opt("sessionAgentId", NON_EMPTY),
        Prop::opt("includeDisabled", Schema::Bool),
        Prop::opt("limit", LIMIT_1_200),
        Prop::opt("offset", OFFSET),
        Prop::opt("query", STRING),
        Prop::opt("enabled", Schema::Enum(&["all", "enabled", "disabled"])),
        Prop::opt("scheduleKind", Schema::Any),
        Prop::opt("lastRunStatus", Schema::Any),
        Prop::opt("trigger", Schema::Any),
        Prop::opt("sortBy", Schema::Any),
        Prop::opt("sortDir", Schema::Enum(&["asc", "desc"])),
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("compact", Schema::Bool),
        Prop::opt("includeDeliveryPreviews", Schema::Bool),
    ],
    closed: true,
};

/// `cron.get`, `cron.remove`, `cron.scratch.get`: `{id}` or `{jobId}`.
pub static CRON_ID_PARAMS: Schema = Schema::Object {
    props: &[Prop::opt("id", NON_EMPTY), Prop::opt("jobId", NON_EMPTY)],
    closed: true,
};

/// `cron.add` params: the top level is closed; `schedule`, `payload`, `delivery` are checked
/// by the job model (closed too, with messages naming the field).
pub static CRON_ADD_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("name", NON_EMPTY),
        Prop::opt("declarationKey", NON_EMPTY),
        Prop::opt("displayName", Schema::Any),
        Prop::opt("owner", Schema::Any),
        Prop::opt("agentId", Schema::Any),
        Prop::opt("sessionKey", Schema::Any),
        Prop::opt("description", STRING),
        Prop::opt("enabled", Schema::Bool),
        Prop::opt("deleteAfterRun", Schema::Bool),
        Prop::req("schedule", Schema::Any),
        Prop::opt("pacing", Schema::Any),
        Prop::opt("trigger", Schema::Any),
        Prop::opt("sessionTarget", NON_EMPTY),
        Prop::opt("wakeMode", Schema::Enum(&["now", "next-heartbeat"])),
        Prop::req("payload", Schema::Any),
        Prop::opt("delivery", Schema::Any),
        Prop::opt("failureAlert", Schema::Any),
    ],
    closed: true,
};

/// `cron.update` params.
pub static CRON_UPDATE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("id", NON_EMPTY),
        Prop::opt("jobId", NON_EMPTY),
        Prop::req(
            "patch",
            Schema::Record {
                value: &Schema::Any,
            },
        ),
        Prop::opt("expectedConfigRevision", NON_EMPTY),
    ],
    closed: true,
};

/// `cron.run` params.
pub static CRON_RUN_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("id", NON_EMPTY),
        Prop::opt("jobId", NON_EMPTY),
        Prop::opt("mode", Schema::Enum(&["due", "force", "if-enabled"])),
        Prop::opt("expectedProcessInstanceId", NON_EMPTY),
    ],
    closed: true,
};

/// `cron.runs` params.
pub static CRON_RUNS_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("agentId", NON_EMPTY),
        Prop::opt("scope", Schema::Enum(&["job", "all"])),
        Prop::opt("id", NON_EMPTY),
        Prop::opt("jobId", NON_EMPTY),
        Prop::opt("runId", NON_EMPTY),
        Prop::opt("limit", LIMIT_1_200),
        Prop::opt("offset", OFFSET),
        Prop::opt(
            "statuses",
            Schema::Array {
                items: &Schema::Enum(&["ok", "error", "skipped", "running", "interrupted"]),
                min_items: Some(1),
                max_items: Some(5),
            },
        ),
        Prop::opt("status", STRING),
        Prop::opt("deliveryStatuses", Schema::Any),
        Prop::opt("deliveryStatus", Schema::Any),
        Prop::opt("query", STRING),
        Prop::opt("sortDir", Schema::Enum(&["asc", "desc"])),
    ],
    closed: true,
};

/// `cron.scratch.set` params (`content` is a string ≤ 256 KiB or `null`, checked by the
/// handler).
pub static CRON_SCRATCH_SET_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("id", NON_EMPTY),
        Prop::opt("jobId", NON_EMPTY),
        Prop::req("content", Schema::Any),
        Prop::opt("expectedRevision", OFFSET),
    ],
    closed: true,
};

/// `wake` params (open, as the reference's).
pub static WAKE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("mode", Schema::Enum(&["now", "next-heartbeat"])),
        Prop::req("text", NON_EMPTY),
        Prop::opt("sessionKey", NON_EMPTY),
        Prop::opt("agentId", NON_EMPTY),
    ],
    closed: false,
};

/// `set-heartbeats` params.
pub static SET_HEARTBEATS_PARAMS: Schema = Schema::Object {
    props: &[Prop::req("enabled", Schema::Bool)],
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
    fn node_invoke_params() {
        let ok = json!({"nodeId":"n","command":"system.which","params":{"bins":["uname"]},
            "timeoutMs":5000,"idempotencyKey":"k"});
        assert_eq!(validate(&NODE_INVOKE_PARAMS, &ok), Ok(()));
        assert_eq!(
            validate(&NODE_INVOKE_PARAMS, &json!({"nodeId":"n","command":"c"})),
            Err("must have required property 'idempotencyKey'".into())
        );
        assert!(validate(
            &NODE_INVOKE_PARAMS,
            &json!({"nodeId":"n","command":"c","idempotencyKey":"k","timeoutMs":-1})
        )
        .is_err());
        assert!(validate(
            &NODE_INVOKE_PROGRESS_PARAMS,
            &json!({"invokeId":"i","nodeId":"n","seq":0,"chunk":"x".repeat(16385)})
        )
        .is_err());
        assert_eq!(
            validate(
                &NODE_INVOKE_RESULT_PARAMS,
                &json!({"id":"i","nodeId":"n","ok":true,"payloadJSON":null})
            ),
            Ok(())
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

    #[test]
    fn exec_approval_and_tools_params() {
        assert_eq!(
            validate(
                &EXEC_APPROVAL_RESOLVE_PARAMS,
                &json!({"id":"a","decision":"allow-once"})
            ),
            Ok(())
        );
        assert_eq!(
            validate(&EXEC_APPROVAL_RESOLVE_PARAMS, &json!({"id":"a"})),
            Err("must have required property 'decision'".into())
        );
        assert!(validate(
            &EXEC_APPROVAL_REQUEST_PARAMS,
            &json!({"command":"ls","cwd":null,"timeoutMs":1000,"twoPhase":true})
        )
        .is_ok());
        assert!(validate(&EXEC_APPROVAL_REQUEST_PARAMS, &json!({"bogus":1})).is_err());
        assert!(validate(&EXEC_APPROVALS_SET_PARAMS, &json!({"file":{"version":1}})).is_ok());
        assert!(validate(&EXEC_APPROVALS_SET_PARAMS, &json!({"file":1})).is_err());
        assert_eq!(
            validate(&TOOLS_EFFECTIVE_PARAMS, &json!({})),
            Err("must have required property 'sessionKey'".into())
        );
    }
}
