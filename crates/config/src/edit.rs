//! Changing the config file: set/unset by path, JSON merge-patch (RFC 7386), whole-document
//! replace — each validated before anything is written, guarded by an optional `baseHash`,
//! and written atomically (temp file + fsync + rename, mode 0600).
//!
//! Edits operate on the file's own document (an `$include` key stays a key), so the result
//! is written back as formatted JSON (JSON5 comments of an edited file are not preserved).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::json5;
use crate::openclaw::{display_path, Segment};
use crate::reload::changed_paths;
use crate::{config_hash, parse_str, ConfigError, LoadOptions, Loaded};

/// Serialises edits within this process (the gateway's RPCs and its CLI helpers).
static EDIT_LOCK: Mutex<()> = Mutex::new(());

/// Parses `a.b[0].c` (a key with dots can be quoted: `models.providers["my.host"].apiKey`).
pub fn parse_path(path: &str) -> Result<Vec<Segment>, ConfigError> {
    let bad = |reason: &str| ConfigError::BadPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let chars: Vec<char> = path.trim().chars().collect();
    let mut segs = Vec::new();
    let mut i = 0;
    let mut cur = String::new();
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if cur.is_empty() {
                    if i == 0 || chars[i - 1] != ']' {
                        return Err(bad("empty segment"));
                    }
                } else {
                    segs.push(Segment::Key(std::mem::take(&mut cur)));
                }
                if i + 1 == chars.len() {
                    return Err(bad("empty segment"));
                }
                i += 1;
            }
            '[' => {
                if !cur.is_empty() {
                    segs.push(Segment::Key(std::mem::take(&mut cur)));
                }
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| bad("missing ']'"))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    segs.push(Segment::Key(q.to_string()));
                } else {
                    let idx: usize = inner
                        .parse()
                        .map_err(|_| bad("array index must be a number"))?;
                    segs.push(Segment::Index(idx));
                }
                i = close + 1;
            }
            c => {
                cur.push(c);
                i += 1;
            }
        }
    }
    if !cur.is_empty() {
        segs.push(Segment::Key(cur));
    }
    if segs.is_empty() {
        return Err(bad("empty path"));
    }
    Ok(segs)
}

/// Sets `path` to `value`, creating intermediate objects.
pub fn set_path(doc: &mut Value, path: &[Segment], value: Value) -> Result<(), ConfigError> {
    let bad = |reason: String| ConfigError::BadPath {
        path: display_path(path),
        reason,
    };
    let Some((last, parents)) = path.split_last() else {
        return Err(bad("empty path".into()));
    };
    let mut cur = doc;
    for (i, seg) in parents.iter().enumerate() {
        cur = match seg {
            Segment::Key(k) => {
                if !cur.is_object() {
                    return Err(bad(format!(
                        "{} is not an object",
                        display_path(&path[..i])
                    )));
                }
                let obj = cur
                    .as_object_mut()
                    .ok_or_else(|| bad("not an object".into()))?;
                obj.entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
            }
            Segment::Index(n) => {
                let len = cur.as_array().map(Vec::len);
                match cur.as_array_mut().and_then(|a| a.get_mut(*n)) {
                    Some(v) => v,
                    None => {
                        return Err(bad(format!(
                            "index {n} is out of range (length {})",
                            len.unwrap_or(0)
                        )))
                    }
                }
            }
        };
    }
    match last {
        Segment::Key(k) => match cur.as_object_mut() {
            Some(obj) => {
                obj.insert(k.clone(), value);
                Ok(())
            }
            None => Err(bad(format!("{} is not an object", display_path(parents)))),
        },
        Segment::Index(n) => match cur.as_array_mut() {
            Some(a) if *n < a.len() => {
                a[*n] = value;
                Ok(())
            }
            Some(a) if *n == a.len() => {
                a.push(value);
                Ok(())
            }
            _ => Err(bad(format!("index {n} is out of range"))),
        },
    }
}

/// Removes `path`; returns whether something was removed.
pub fn unset_path(doc: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = doc;
    for seg in parents {
        let next = match seg {
            Segment::Key(k) => cur.get_mut(k.as_str()),
            Segment::Index(n) => cur.get_mut(*n),
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    match last {
        Segment::Key(k) => cur.as_object_mut().is_some_and(|o| o.remove(k).is_some()),
        Segment::Index(n) => match cur.as_array_mut() {
            Some(a) if *n < a.len() => {
                a.remove(*n);
                true
            }
            _ => false,
        },
    }
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Writes `contents` to `path` atomically: a temp file in the same directory (mode 0600),
/// fsync, rename over the target, fsync of the directory. A symlinked target is replaced.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let wrap = |source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(wrap)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("config");
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), unique()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(wrap)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Result of a successful edit.
#[derive(Debug, Clone)]
pub struct EditOutcome {
    pub loaded: Loaded,
    /// Changed paths (dotted), empty for a no-op.
    pub changed_paths: Vec<String>,
    /// Nothing changed, nothing was written.
    pub noop: bool,
}

/// Reads the file's own document (`{}` when missing) with its hash.
fn read_document(path: &Path, opts: &LoadOptions) -> Result<(Value, String), ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(raw) => {
            let node = json5::parse(&raw, 0).map_err(|e| ConfigError::Syntax {
                file: path.to_path_buf(),
                line: e.line,
                col: e.col,
                message: e.message,
            })?;
            Ok((node.to_value(), config_hash(&raw, &opts.hash_key)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((Value::Object(Map::new()), config_hash("", &opts.hash_key)))
        }
        Err(source) => Err(ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Applies `f` to the file's document, validates the result, and writes it atomically.
/// With `base_hash`, refuses (`Conflict`) when the file changed since that hash was read.
pub fn edit(
    path: &Path,
    opts: &LoadOptions,
    base_hash: Option<&str>,
    f: impl FnOnce(&mut Value) -> Result<(), ConfigError>,
) -> Result<EditOutcome, ConfigError> {
    let _guard = EDIT_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (before, hash) = read_document(path, opts)?;
    if let Some(expected) = base_hash {
        if expected != hash {
            return Err(ConfigError::Conflict {
                expected: expected.to_string(),
                actual: hash,
            });
        }
    }
    let mut after = before.clone();
    f(&mut after)?;
    if !after.is_object() {
        return Err(ConfigError::NotAnObject);
    }
    let changed = changed_paths(&before, &after);
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&after).map_err(|e| ConfigError::BadPath {
            path: String::new(),
            reason: e.to_string(),
        })?
    );
    // Validate exactly what will be written before touching the file.
    let loaded = parse_str(&text, path, opts)?;
    if changed.is_empty() {
        let loaded = crate::load(path, opts)?;
        return Ok(EditOutcome {
            loaded,
            changed_paths: changed,
            noop: true,
        });
    }
    write_atomic(path, text.as_bytes())?;
    Ok(EditOutcome {
        loaded,
        changed_paths: changed,
        noop: false,
    })
}

/// `config set <path> <value>` / `config.set`-by-path.
pub fn set(
    path: &Path,
    opts: &LoadOptions,
    base_hash: Option<&str>,
    key: &str,
    value: Value,
) -> Result<EditOutcome, ConfigError> {
    let segs = parse_path(key)?;
    edit(path, opts, base_hash, |doc| set_path(doc, &segs, value))
}

/// `config unset <path>`.
pub fn unset(
    path: &Path,
    opts: &LoadOptions,
    base_hash: Option<&str>,
    key: &str,
) -> Result<EditOutcome, ConfigError> {
    let segs = parse_path(key)?;
    edit(path, opts, base_hash, |doc| {
        unset_path(doc, &segs);
        Ok(())
    })
}

/// `config.patch`: merge-patch `raw` (JSON5 object) into the document. Redacted
/// placeholders in `raw` keep the current values.
pub fn patch(
    path: &Path,
    opts: &LoadOptions,
    base_hash: Option<&str>,
    raw: &str,
) -> Result<EditOutcome, ConfigError> {
    let mut patch = parse_fragment(raw)?;
    edit(path, opts, base_hash, |doc| {
        crate::redact::restore_redacted(&mut patch, doc);
        merge_patch(doc, &patch);
        Ok(())
    })
}

/// `config.set` / `config.apply`: replace the whole document with `raw` (JSON5). Redacted
/// placeholders keep the current values.
pub fn replace(
    path: &Path,
    opts: &LoadOptions,
    base_hash: Option<&str>,
    raw: &str,
) -> Result<EditOutcome, ConfigError> {
    let mut next = parse_fragment(raw)?;
    edit(path, opts, base_hash, |doc| {
        crate::redact::restore_redacted(&mut next, doc);
        *doc = next;
        Ok(())
    })
}

fn parse_fragment(raw: &str) -> Result<Value, ConfigError> {
    let node = json5::parse(raw, 0).map_err(|e| ConfigError::Syntax {
        file: PathBuf::from("(request)"),
        line: e.line,
        col: e.col,
        message: e.message,
    })?;
    let v = node.to_value();
    if !v.is_object() {
        return Err(ConfigError::NotAnObject);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn path_parsing_table() {
        let k = |s: &str| Segment::Key(s.to_string());
        let cases: Vec<(&str, Vec<Segment>)> = vec![
            ("gateway.port", vec![k("gateway"), k("port")]),
            (
                "bindings[0].agentId",
                vec![k("bindings"), Segment::Index(0), k("agentId")],
            ),
            (
                "models.providers[\"my.host\"].apiKey",
                vec![k("models"), k("providers"), k("my.host"), k("apiKey")],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_path(input).unwrap(), want, "{input}");
        }
        for bad in ["", "a..b", "a[x]", "a[1"] {
            assert!(parse_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_unset_merge() {
        let mut doc = json!({"gateway": {"port": 1}, "bindings": [{"agentId": "a"}]});
        set_path(
            &mut doc,
            &parse_path("gateway.auth.mode").unwrap(),
            json!("token"),
        )
        .unwrap();
        set_path(
            &mut doc,
            &parse_path("bindings[0].agentId").unwrap(),
            json!("b"),
        )
        .unwrap();
        assert_eq!(doc["gateway"]["auth"]["mode"], "token");
        assert_eq!(doc["bindings"][0]["agentId"], "b");
        let err = set_path(&mut doc, &parse_path("gateway.port.x").unwrap(), json!(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config path \"gateway.port.x\": gateway.port is not an object"
        );
        assert!(unset_path(&mut doc, &parse_path("gateway.auth").unwrap()));
        assert!(!unset_path(&mut doc, &parse_path("gateway.auth").unwrap()));
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(
            &mut t,
            &json!({"a": {"b": null, "e": 3}, "d": [2], "f": {"g": 1}}),
        );
        assert_eq!(t, json!({"a": {"c": 2, "e": 3}, "d": [2], "f": {"g": 1}}));
    }
}
