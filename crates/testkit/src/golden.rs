//! Golden captures from the reference gateway (`testdata/golden/*.jsonl`, format in
//! `../shared/spec/reference-measurements.md` §5): a `meta` line, then one row per frame.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Placeholder the capture put where the shared gateway token was.
pub const GATEWAY_TOKEN_PLACEHOLDER: &str = "<GATEWAY_TOKEN>";
/// Placeholder for device tokens the reference issued.
pub const DEVICE_TOKEN_PLACEHOLDER: &str = "<DEVICE_TOKEN>";

/// Who sent a row, or what happened on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Server → client frame.
    S2c,
    /// Client → server frame (`frame`, or `raw` text).
    C2s,
    /// The client started a close handshake (`frame` = `{code, reason}`).
    C2sClose,
    /// The connection ended; `frame` = the close code and reason the server sent or echoed.
    Closed,
    /// (CLI taps only) the tap accepted the client's socket.
    Open,
}

impl Dir {
    fn parse(s: &str) -> Option<Dir> {
        Some(match s {
            "s2c" => Dir::S2c,
            "c2s" => Dir::C2s,
            "c2s_close" => Dir::C2sClose,
            "closed" => Dir::Closed,
            "open" => Dir::Open,
            _ => return None,
        })
    }
}

/// One captured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Line number in the file (1 = the meta line).
    pub line: usize,
    pub t_ms: f64,
    /// Connection name (`op`, `node`, `listener1`, … or a tap number).
    pub conn: String,
    pub dir: Dir,
    /// The JSON frame (or `{code, reason}` for close rows).
    pub frame: Option<Value>,
    /// A non-JSON frame the client sent.
    pub raw: Option<String>,
}

/// A loaded capture.
#[derive(Debug, Clone)]
pub struct Golden {
    /// File name, e.g. `health.jsonl`.
    pub name: String,
    pub meta: Value,
    pub rows: Vec<Row>,
}

/// The directory holding the captures.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

impl Golden {
    /// Load `testdata/golden/<name>`; panics with the line on malformed input (test data).
    pub fn load(name: &str) -> Golden {
        let path = golden_dir().join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut meta = Value::Null;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}:{}: not JSON: {e}", i + 1));
            if i == 0 {
                meta = v.get("meta").cloned().unwrap_or(Value::Null);
                continue;
            }
            let dir = v["dir"]
                .as_str()
                .and_then(Dir::parse)
                .unwrap_or_else(|| panic!("{name}:{}: unknown dir {}", i + 1, v["dir"]));
            rows.push(Row {
                line: i + 1,
                t_ms: v["t_ms"].as_f64().unwrap_or(0.0),
                conn: match &v["conn"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                dir,
                frame: v.get("frame").cloned(),
                raw: v.get("raw").and_then(Value::as_str).map(str::to_string),
            });
        }
        Golden {
            name: name.to_string(),
            meta,
            rows,
        }
    }

    pub fn scenario(&self) -> &str {
        self.meta["scenario"].as_str().unwrap_or(&self.name)
    }

    /// The `meta.timing_sensitive` entries (what must be masked).
    pub fn timing_sensitive(&self) -> Vec<&str> {
        self.meta["timing_sensitive"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The challenge payload the reference sent on `conn`.
    pub fn challenge_for(&self, conn: &str) -> Option<&Value> {
        self.rows.iter().find_map(|r| {
            let f = r.frame.as_ref()?;
            (r.conn == conn && r.dir == Dir::S2c && f["event"] == "connect.challenge")
                .then(|| &f["payload"])
        })
    }

    /// The method of the request with `id` sent on `conn` (to label its response).
    pub fn method_of(&self, conn: &str, id: &str) -> Option<&str> {
        self.rows.iter().find_map(|r| {
            let f = r.frame.as_ref()?;
            (r.conn == conn && r.dir == Dir::C2s && f["type"] == "req" && f["id"] == id)
                .then(|| f["method"].as_str())
                .flatten()
        })
    }
}

/// The vectors file: throwaway keys and the literal shared token of the capture session.
pub fn device_auth_vectors() -> Value {
    let path = golden_dir().join("device_auth_vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shared token the reference ran with while capturing (what `<GATEWAY_TOKEN>` stood for);
/// used only to re-verify the captured device proofs and so learn what each scenario meant.
pub fn capture_token() -> String {
    device_auth_vectors()["gateway_token_literal"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A short label for a server frame: `event:<name>`, `res:<method>` (method looked up from the
/// request with the same id), `close`.
pub fn frame_label(frame: &Value, method_of: impl Fn(&str) -> Option<String>) -> String {
    match frame["type"].as_str() {
        Some("event") => format!("event:{}", frame["event"].as_str().unwrap_or("?")),
        Some("res") => {
            let id = frame["id"].as_str().unwrap_or("");
            format!("res:{}", method_of(id).unwrap_or_else(|| "?".into()))
        }
        Some(other) => other.to_string(),
        None if frame.get("code").is_some() => "close".to_string(),
        None => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capture_loads_and_has_meta() {
        let mut n = 0;
        for entry in std::fs::read_dir(golden_dir()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.ends_with(".jsonl") {
                continue;
            }
            let g = Golden::load(&name);
            assert!(!g.rows.is_empty(), "{name}");
            assert!(g.meta.is_object(), "{name}");
            n += 1;
        }
        assert!(n >= 38, "only {n} captures");
    }

    #[test]
    fn rows_parse_dirs_and_labels() {
        let g = Golden::load("non_json_first_frame.jsonl");
        let dirs: Vec<Dir> = g.rows.iter().map(|r| r.dir).collect();
        assert_eq!(dirs, [Dir::S2c, Dir::C2s, Dir::Closed]);
        assert_eq!(g.rows[1].raw.as_deref(), Some("this is not json"));
        assert!(g.challenge_for("op").unwrap()["nonce"].is_string());
        let g = Golden::load("unknown_method.jsonl");
        let res = g
            .rows
            .iter()
            .find(|r| r.frame.as_ref().is_some_and(|f| f["ok"] == false))
            .unwrap();
        let label = frame_label(res.frame.as_ref().unwrap(), |id| {
            g.method_of("op", id).map(str::to_string)
        });
        assert_eq!(label, "res:no.such.method");
        assert_eq!(capture_token().len(), 31);
    }
}
