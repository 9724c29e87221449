//! Redaction of secrets for `config.get`, and restoring them when a client sends a redacted
//! document back (`config.set` / `config.apply` of what `config.get` returned).

use serde_json::Value;

/// The placeholder the reference uses (the Control UI knows it).
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// True for keys whose string values are credentials.
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("token")
        || k.ends_with("password")
        || k.ends_with("secret")
        || k.ends_with("apikey")
        || k == "privatekey"
        || k == "authorization"
        || k == "cookie"
}

/// A copy of `value` with every credential string replaced by [`REDACTED`]. SecretRef
/// objects stay visible (they name where the secret lives, not the secret), and so do
/// `env.vars` names (their values are redacted).
pub fn redact(value: &Value) -> Value {
    redact_inner(value, false)
}

fn redact_inner(value: &Value, force: bool) -> Value {
    match value {
        Value::String(_) if force => Value::String(REDACTED.to_string()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let next = match v {
                        Value::String(_) if force || is_sensitive_key(k) => {
                            Value::String(REDACTED.to_string())
                        }
                        Value::Object(_) if k == "vars" || k == "headers" => redact_inner(v, true),
                        other => redact_inner(other, force),
                    };
                    (k.clone(), next)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| redact_inner(i, force)).collect()),
        other => other.clone(),
    }
}

/// Puts the original value back wherever `incoming` still holds [`REDACTED`] at a path that
/// exists in `original`.
pub fn restore_redacted(incoming: &mut Value, original: &Value) {
    match (incoming, original) {
        (Value::Object(inc), Value::Object(orig)) => {
            for (k, v) in inc.iter_mut() {
                if let Some(o) = orig.get(k) {
                    restore_redacted(v, o);
                }
            }
        }
        (Value::Array(inc), Value::Array(orig)) => {
            for (v, o) in inc.iter_mut().zip(orig) {
                restore_redacted(v, o);
            }
        }
        (v @ Value::String(_), o) if v.as_str() == Some(REDACTED) => *v = o.clone(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_table() {
        let input = json!({
            "gateway": {"auth": {"mode": "token", "token": "abc"}, "remote": {"password": "p"}},
            "models": {"providers": {"mock": {"apiKey": "sk-1", "maxTokens": 10, "headers": {"X-Trace": "t"}}}},
            "channels": {"telegram": {"botToken": {"source": "env", "id": "TG"}, "tokenFile": "/x"}},
            "env": {"vars": {"OPENAI_API_KEY": "sk-2"}},
            "hooks": {"token": "h"},
        });
        let out = redact(&input);
        assert_eq!(out["gateway"]["auth"]["token"], REDACTED);
        assert_eq!(out["gateway"]["auth"]["mode"], "token");
        assert_eq!(out["gateway"]["remote"]["password"], REDACTED);
        assert_eq!(out["models"]["providers"]["mock"]["apiKey"], REDACTED);
        assert_eq!(out["models"]["providers"]["mock"]["maxTokens"], 10);
        assert_eq!(
            out["models"]["providers"]["mock"]["headers"]["X-Trace"],
            REDACTED
        );
        assert_eq!(out["channels"]["telegram"]["botToken"]["id"], "TG");
        assert_eq!(out["channels"]["telegram"]["tokenFile"], "/x");
        assert_eq!(out["env"]["vars"]["OPENAI_API_KEY"], REDACTED);
        assert_eq!(out["hooks"]["token"], REDACTED);
        assert!(!out.to_string().contains("sk-"));

        let mut back = out.clone();
        back["gateway"]["port"] = json!(1);
        restore_redacted(&mut back, &input);
        assert_eq!(back["gateway"]["auth"]["token"], "abc");
        assert_eq!(back["models"]["providers"]["mock"]["apiKey"], "sk-1");
        assert_eq!(back["env"]["vars"]["OPENAI_API_KEY"], "sk-2");
        assert_eq!(back["gateway"]["port"], 1);
    }
}
