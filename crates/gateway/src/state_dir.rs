//! The state directory: creation (0700), the single-instance lock, the token file and
//! `gateway.json` (the contract tests and tools read to find a running gateway).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors around the state directory, each naming the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("cannot create state dir {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another pincer gateway is already running with state dir {dir} (lock held on {lock}); stop it first or use another PINCER_STATE_DIR"
    )]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty; delete it to generate a new token or write a token into it")]
    EmptyToken { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateDirError + '_ {
    move |source| StateDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Create `dir` (and parents) with mode 0700 if missing.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StateDirError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StateDirError::Create {
            path: dir.to_path_buf(),
            source,
        })
}

/// Write `contents` to `path` with mode 0600, atomically (temp file + rename), durably
/// (fsynced before the rename).
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), StateDirError> {
    write_private(path, contents, true)
}

fn write_private(path: &Path, contents: &[u8], durable: bool) -> Result<(), StateDirError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(contents).map_err(io_err(&tmp))?;
        if durable {
            f.sync_all().map_err(io_err(&tmp))?;
        }
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// The exclusive lock on `<state>/gateway.lock`, held for the gateway's lifetime.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> Result<StateLock, StateDirError> {
        let path = state_dir.join("gateway.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        // Explicit trait call: `File::try_lock` is also an inherent method on newer toolchains.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(StateDirError::Locked {
                    dir: state_dir.to_path_buf(),
                    lock: path,
                })
            }
            Err(fs4::TryLockError::Error(source)) => {
                return Err(StateDirError::Io { path, source })
            }
        }
        let _ = file.set_len(0);
        let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
        Ok(StateLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

/// Read `<state>/gateway.token`, or generate a random one (32 bytes, base64url) stored 0600.
/// Returns the token and whether it was generated now.
pub fn load_or_create_token(state_dir: &Path) -> Result<(String, bool), StateDirError> {
    let path = state_dir.join("gateway.token");
    match fs::read_to_string(&path) {
        Ok(s) => {
            let t = s.trim().to_string();
            if t.is_empty() {
                return Err(StateDirError::EmptyToken { path });
            }
            Ok((t, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            let token = pincer_protocol::device_auth::encode_base64url(&bytes);
            write_private_file(&path, format!("{token}\n").as_bytes())?;
            Ok((token, true))
        }
        Err(source) => Err(StateDirError::Io { path, source }),
    }
}

/// `<state>/gateway.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayInfo {
    pub pid: u32,
    pub port: u16,
    pub url: String,
    pub boot_id: String,
    pub started_at_ms: u64,
    pub auth_mode: String,
    /// SHA-256 of the TLS certificate when the port speaks TLS (clients pin it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
}

pub fn gateway_json_path(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway.json")
}

pub fn write_gateway_json(state_dir: &Path, info: &GatewayInfo) -> Result<(), StateDirError> {
    let path = gateway_json_path(state_dir);
    let json = serde_json::to_vec_pretty(info).unwrap_or_default();
    // Atomic but not fsynced: it describes this run only (removed on a clean exit) and is
    // stale after a crash anyway, so an fsync on every start would buy nothing.
    write_private(&path, &json, false)
}

pub fn read_gateway_json(state_dir: &Path) -> Option<GatewayInfo> {
    let text = fs::read_to_string(gateway_json_path(state_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = StateLock::acquire(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let second = StateLock::acquire(dir.path());
        assert!(matches!(second, Err(StateDirError::Locked { .. })));
        drop(first);
        assert!(StateLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn token_is_generated_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (t1, created) = load_or_create_token(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        assert_eq!(t1.len(), 43);
        let (t2, created) = load_or_create_token(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!created);
        assert_eq!(t1, t2);
        let mode =
            fs::metadata(dir.path().join("gateway.token")).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
    }

    #[test]
    fn gateway_json_roundtrip() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let info = GatewayInfo {
            pid: 1,
            port: 2,
            url: "ws://127.0.0.1:2".into(),
            boot_id: "b".into(),
            started_at_ms: 3,
            auth_mode: "token".into(),
            tls_fingerprint: Some("ab".repeat(32)),
        };
        write_gateway_json(dir.path(), &info).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_gateway_json(dir.path()), Some(info));
    }
}
