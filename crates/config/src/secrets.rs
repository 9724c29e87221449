//! Resolving credential fields: inline strings, or SecretRefs from the environment, a file,
//! a command's output, or Pincer's secret store.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::model::{SecretInput, SecretRef, SecretSource};

/// Largest secret read from a file or a command.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Why a secret could not be resolved. Messages never contain the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{field}: environment variable {id} is not set")]
    MissingEnv { field: String, id: String },
    #[error("{field}: cannot read secret file {}: {source}", path.display())]
    File {
        field: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{field}: secret file {} is empty", path.display())]
    EmptyFile { field: String, path: PathBuf },
    #[error("{field}: secret command {command:?} failed: {reason}")]
    Exec {
        field: String,
        command: String,
        reason: String,
    },
    #[error("{field}: no entry {id:?} in secret store provider {provider:?}")]
    MissingStore {
        field: String,
        provider: String,
        id: String,
    },
    #[error("{field}: secret is larger than {MAX_SECRET_BYTES} bytes")]
    TooLarge { field: String },
}

/// `store` lookups: `(provider, id) -> value`.
pub type StoreLookup<'a> = &'a dyn Fn(&str, &str) -> Option<String>;

/// Where SecretRefs are looked up.
pub struct SecretContext<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Base for relative `file` ids (the config file's directory).
    pub config_dir: &'a Path,
    pub store: Option<StoreLookup<'a>>,
    pub exec_timeout: Duration,
}

/// Resolves `input` for the config field `field` (used in error messages).
pub fn resolve(
    input: &SecretInput,
    field: &str,
    ctx: &SecretContext<'_>,
) -> Result<String, SecretError> {
    match input {
        SecretInput::Plain(s) => Ok(s.clone()),
        SecretInput::Ref(r) => resolve_ref(r, field, ctx),
    }
}

fn resolve_ref(r: &SecretRef, field: &str, ctx: &SecretContext<'_>) -> Result<String, SecretError> {
    let field_s = field.to_string();
    match r.source {
        SecretSource::Env => {
            (ctx.env)(&r.id)
                .filter(|v| !v.is_empty())
                .ok_or(SecretError::MissingEnv {
                    field: field_s,
                    id: r.id.clone(),
                })
        }
        SecretSource::File => {
            let p = PathBuf::from(&r.id);
            let path = if p.is_absolute() {
                p
            } else {
                ctx.config_dir.join(p)
            };
            let mut buf = Vec::new();
            std::fs::File::open(&path)
                .and_then(|f| f.take(MAX_SECRET_BYTES as u64 + 1).read_to_end(&mut buf))
                .map_err(|source| SecretError::File {
                    field: field_s.clone(),
                    path: path.clone(),
                    source,
                })?;
            if buf.len() > MAX_SECRET_BYTES {
                return Err(SecretError::TooLarge { field: field_s });
            }
            let text = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            if text.is_empty() {
                return Err(SecretError::EmptyFile {
                    field: field_s,
                    path,
                });
            }
            Ok(text)
        }
        SecretSource::Exec => run_command(&r.id, field, ctx.exec_timeout),
        SecretSource::Store => {
            let provider = r.provider.clone().unwrap_or_else(|| "default".to_string());
            ctx.store
                .and_then(|s| s(&provider, &r.id))
                .ok_or(SecretError::MissingStore {
                    field: field_s,
                    provider,
                    id: r.id.clone(),
                })
        }
    }
}

fn run_command(command: &str, field: &str, timeout: Duration) -> Result<String, SecretError> {
    let err = |reason: String| SecretError::Exec {
        field: field.to_string(),
        command: command.to_string(),
        reason,
    };
    let mut parts = command.split_whitespace();
    let program = parts.next().ok_or_else(|| err("empty command".into()))?;
    let mut child = Command::new(program)
        .args(parts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    let mut stdout = child.stdout.take().ok_or_else(|| err("no stdout".into()))?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stdout)
            .take(MAX_SECRET_BYTES as u64 + 1)
            .read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| err(e.to_string()))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!("timed out after {} ms", timeout.as_millis())));
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let out = reader
        .join()
        .map_err(|_| err("output reader failed".into()))?;
    if !status.success() {
        return Err(err(format!("exited with {status}")));
    }
    if out.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge {
            field: field.to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out).trim().to_string();
    if text.is_empty() {
        return Err(err("printed nothing".into()));
    }
    Ok(text)
}
