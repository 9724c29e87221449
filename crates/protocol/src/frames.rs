//! Frames: parsing client requests (fast path + validated slow path) and building server frames.
//!
//! Server frames are built by string concatenation in the reference's key order:
//! `res` = `type,id,ok,payload,error`; `event` = `type,event,payload,seq,stateVersion`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::errors::ErrorShape;
use crate::params::REQUEST_FRAME;
use crate::schema;

/// A parsed client request; borrows from the frame text where it can.
#[derive(Debug)]
pub struct Request<'a> {
    pub id: Cow<'a, str>,
    pub method: Cow<'a, str>,
    pub params: Option<Cow<'a, RawValue>>,
    pub traceparent: Option<Cow<'a, str>>,
    pub expected_profile_id: Option<Cow<'a, str>>,
}

impl Request<'_> {
    /// Params text (`None` when absent).
    pub fn params_str(&self) -> Option<&str> {
        self.params.as_deref().map(RawValue::get)
    }

    /// Params as a JSON value; absent params read as `{}`.
    pub fn params_value(&self) -> Value {
        match self.params_str() {
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => Value::Object(Default::default()),
        }
    }
}

/// Why a client frame is not a usable request.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameError {
    /// Not JSON at all.
    NotJson,
    /// JSON, but not a valid `RequestFrame`. `id` is the frame's id if it had a usable one;
    /// `message` is the ajv-style text.
    Invalid { id: Option<String>, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(default, borrow)]
    params: Option<Cow<'a, RawValue>>,
    #[serde(default, borrow)]
    traceparent: Option<Cow<'a, str>>,
    #[serde(default, rename = "expectedProfileId", borrow)]
    expected_profile_id: Option<Cow<'a, str>>,
}

fn fast_checks(w: &WireRequest<'_>) -> bool {
    w.kind == "req"
        && !w.id.is_empty()
        && !w.method.is_empty()
        && w.traceparent
            .as_ref()
            .is_none_or(|t| t.chars().count() <= 128)
        && w.expected_profile_id.as_ref().is_none_or(|p| {
            let n = p.chars().count();
            (1..=128).contains(&n)
        })
}

/// Parse one client text frame as a `RequestFrame`.
pub fn parse_request(text: &str) -> Result<Request<'_>, FrameError> {
    if let Ok(w) = serde_json::from_str::<WireRequest<'_>>(text) {
        if fast_checks(&w) {
            return Ok(Request {
                id: w.id,
                method: w.method,
                params: w.params,
                traceparent: w.traceparent,
                expected_profile_id: w.expected_profile_id,
            });
        }
    }
    // Slow path: exact error text from the schema (or a well-formed request with duplicate keys).
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Err(message) = schema::validate(&REQUEST_FRAME, &value) {
        return Err(FrameError::Invalid { id, message });
    }
    let field = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .map(|s| Cow::Owned(s.to_string()))
    };
    let params = match value.get("params") {
        Some(Value::Null) | None => None,
        Some(p) => serde_json::value::to_raw_value(p).ok().map(Cow::Owned),
    };
    Ok(Request {
        id: field("id").unwrap_or(Cow::Borrowed("")),
        method: field("method").unwrap_or(Cow::Borrowed("")),
        params,
        traceparent: field("traceparent"),
        expected_profile_id: field("expectedProfileId"),
    })
}

/// Append `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"type":"res","id":…,"ok":true,"payload":<payload_json>}`.
pub fn response_ok_raw(id: &str, payload_json: &str) -> String {
    let mut out = String::with_capacity(40 + id.len() + payload_json.len());
    out.push_str(r#"{"type":"res","id":"#);
    push_json_str(&mut out, id);
    out.push_str(r#","ok":true,"payload":"#);
    out.push_str(payload_json);
    out.push('}');
    out
}

/// `res` ok with a serialisable payload.
pub fn response_ok<T: Serialize + ?Sized>(id: &str, payload: &T) -> String {
    match serde_json::to_string(payload) {
        Ok(json) => response_ok_raw(id, &json),
        Err(e) => response_err(
            id,
            &ErrorShape::unavailable(format!("failed to encode response: {e}")),
        ),
    }
}

/// `res` with `ok:false`, optionally still carrying a payload (cached run outcomes do).
pub fn response_err_with_payload(
    id: &str,
    payload_json: Option<&str>,
    error: &ErrorShape,
) -> String {
    let err = serde_json::to_string(error)
        .unwrap_or_else(|_| r#"{"code":"UNAVAILABLE","message":"error"}"#.into());
    let mut out =
        String::with_capacity(48 + id.len() + err.len() + payload_json.map_or(0, str::len));
    out.push_str(r#"{"type":"res","id":"#);
    push_json_str(&mut out, id);
    out.push_str(r#","ok":false"#);
    if let Some(p) = payload_json {
        out.push_str(r#","payload":"#);
        out.push_str(p);
    }
    out.push_str(r#","error":"#);
    out.push_str(&err);
    out.push('}');
    out
}

/// `res` with `ok:false`.
pub fn response_err(id: &str, error: &ErrorShape) -> String {
    response_err_with_payload(id, None, error)
}

/// `stateVersion` attached to `presence`/`health` events and the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateVersion {
    pub presence: u64,
    pub health: u64,
}

/// An event serialised once; framed per connection with that connection's `seq`.
#[derive(Debug, Clone)]
pub struct EventEnvelope {
    name: String,
    /// `{"type":"event","event":"<name>"[,"payload":<json>]`
    head: String,
    /// `[,"stateVersion":{…}]}`
    tail: String,
}

impl EventEnvelope {
    pub fn new(
        event: &str,
        payload_json: Option<&str>,
        state_version: Option<StateVersion>,
    ) -> Self {
        let mut head = String::with_capacity(32 + event.len() + payload_json.map_or(0, str::len));
        head.push_str(r#"{"type":"event","event":"#);
        push_json_str(&mut head, event);
        if let Some(p) = payload_json {
            head.push_str(r#","payload":"#);
            head.push_str(p);
        }
        let mut tail = String::new();
        if let Some(sv) = state_version {
            tail.push_str(&format!(
                r#","stateVersion":{{"presence":{},"health":{}}}"#,
                sv.presence, sv.health
            ));
        }
        tail.push('}');
        EventEnvelope {
            name: event.to_string(),
            head,
            tail,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Approximate size of one framed copy (for outbound buffer accounting).
    pub fn frame_len(&self) -> usize {
        self.head.len() + self.tail.len() + 32
    }

    /// The frame text for one connection (`seq` is omitted for direct events).
    pub fn frame(&self, seq: Option<u64>) -> String {
        let mut out = String::with_capacity(self.frame_len());
        out.push_str(&self.head);
        if let Some(seq) = seq {
            out.push_str(r#","seq":"#);
            out.push_str(&seq.to_string());
        }
        out.push_str(&self.tail);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorShape;

    #[test]
    fn parses_plain_requests_without_copying() {
        let r =
            parse_request(r#"{"type":"req","id":"r1","method":"health","params":{"probe":true}}"#);
        let r = r.unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(r.id, Cow::Borrowed("r1")));
        assert_eq!(r.method, "health");
        assert_eq!(r.params_str(), Some(r#"{"probe":true}"#));
    }

    #[test]
    fn escaped_strings_still_parse() {
        let r = parse_request(r#"{"type":"req","id":"a\"b","method":"status"}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.id, "a\"b");
        assert!(r.params.is_none());
    }

    #[test]
    fn invalid_frames_get_reference_text() {
        assert_eq!(
            parse_request("this is not json").err(),
            Some(FrameError::NotJson)
        );
        assert_eq!(
            parse_request(r#"{"type":"req","id":"1","method":"x","extra":1}"#).err(),
            Some(FrameError::Invalid {
                id: Some("1".into()),
                message: "at root: unexpected property 'extra'".into()
            })
        );
        let e = parse_request(r#"{"type":"foo"}"#).err();
        assert_eq!(
            e,
            Some(FrameError::Invalid {
                id: None,
                message: "must have required property 'id'; must have required property 'method'; at /type: must be equal to constant".into()
            })
        );
        let long = "x".repeat(129);
        let e = parse_request(&format!(
            r#"{{"type":"req","id":"1","method":"x","traceparent":"{long}"}}"#
        ))
        .err();
        assert_eq!(
            e,
            Some(FrameError::Invalid {
                id: Some("1".into()),
                message: "at /traceparent: must NOT have more than 128 characters".into()
            })
        );
        assert!(matches!(
            parse_request("[1,2]"),
            Err(FrameError::Invalid { .. })
        ));
    }

    #[test]
    fn duplicate_keys_fall_back_to_the_validated_path() {
        let r = parse_request(r#"{"type":"req","id":"1","id":"2","method":"health"}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.id, "2");
    }

    #[test]
    fn response_frames_have_reference_key_order() {
        assert_eq!(
            response_ok_raw("r\n1", "{}"),
            "{\"type\":\"res\",\"id\":\"r\\n1\",\"ok\":true,\"payload\":{}}"
        );
        assert_eq!(
            response_err("r2", &ErrorShape::unknown_method("no.such.method")),
            r#"{"type":"res","id":"r2","ok":false,"error":{"code":"INVALID_REQUEST","message":"unknown method: no.such.method"}}"#
        );
        assert_eq!(
            response_err_with_payload(
                "r3",
                Some(r#"{"runId":"x"}"#),
                &ErrorShape::unavailable("u")
            ),
            r#"{"type":"res","id":"r3","ok":false,"payload":{"runId":"x"},"error":{"code":"UNAVAILABLE","message":"u"}}"#
        );
    }

    #[test]
    fn event_frames_have_reference_key_order() {
        let e = EventEnvelope::new(
            "health",
            Some(r#"{"ok":true}"#),
            Some(StateVersion {
                presence: 3,
                health: 6,
            }),
        );
        assert_eq!(
            e.frame(Some(7)),
            r#"{"type":"event","event":"health","payload":{"ok":true},"seq":7,"stateVersion":{"presence":3,"health":6}}"#
        );
        let c = EventEnvelope::new("connect.challenge", Some("{}"), None);
        assert_eq!(
            c.frame(None),
            r#"{"type":"event","event":"connect.challenge","payload":{}}"#
        );
        let t = EventEnvelope::new("tick", Some(r#"{"ts":1}"#), None);
        assert_eq!(
            t.frame(Some(2)),
            r#"{"type":"event","event":"tick","payload":{"ts":1},"seq":2}"#
        );
        assert!(t.frame_len() >= t.frame(Some(u64::MAX)).len());
        let v: Value = serde_json::from_str(&e.frame(Some(1))).unwrap_or_default();
        assert_eq!(v["stateVersion"]["health"], 6);
    }

    #[test]
    fn json_string_escaping_roundtrips() {
        let nasty = "a\u{1}b\"c\\d\u{7f}é\u{2028}";
        let mut s = String::new();
        push_json_str(&mut s, nasty);
        let back: String = serde_json::from_str(&s).unwrap_or_default();
        assert_eq!(back, nasty);
    }
}
