//! Pincer configuration.
//!
//! One JSON5 file, `<state dir>/pincer.json` (override `PINCER_CONFIG_PATH`, or
//! `OPENCLAW_CONFIG_PATH`), whose keys follow the OpenClaw schema so an existing
//! `openclaw.json` loads for every section Pincer implements.
//!
//! Loading ([`load`]) runs: a span-preserving JSON5 parse ([`json5`]), `$include`
//! resolution and `${VAR}` substitution ([`load`](mod@load)), then validation against the JSON
//! Schema generated from the Rust types ([`json_schema`]), which yields errors that name the
//! file, line, key path and reason ([`Issue`]). Keys of the OpenClaw schema that Pincer does
//! not implement are dropped and reported in one [`Warning`]. Finally the validated tree is
//! deserialised into [`Config`].
//!
//! Also here: credential resolution for SecretRefs ([`secrets`]), redaction for
//! `config.get` ([`redact`]), a keyed content hash for `baseHash` concurrency
//! ([`config_hash`]), path-based edits, merge-patch and atomic writes ([`edit`]), and hot
//! reload: a debounced file watcher plus a diff that classifies every changed path as hot
//! or restart ([`reload`]).

//! # Using it from the gateway
//!
//! ```no_run
//! # fn demo(state_dir: &std::path::Path) -> Result<(), pincer_config::ConfigError> {
//! use std::sync::Arc;
//! use pincer_config::reload::{ConfigWatcher, ReloadEvent};
//!
//! let mut opts = pincer_config::LoadOptions::from_process_env();
//! opts.hash_key = b"per-install secret, e.g. derived from the gateway token".to_vec();
//! let path = pincer_config::config_path(state_dir, &|k| std::env::var(k).ok());
//! // Refuse to start on error: its Display names file, line, key path and reason.
//! let current = Arc::new(pincer_config::load(&path, &opts)?);
//! for w in &current.warnings { eprintln!("warning: {}", w.message); }
//! // Keep `current` in an RwLock/ArcSwap; the watcher reports changes from its own thread.
//! let _watcher = ConfigWatcher::spawn(current.clone(), opts.clone(), move |event| match event {
//!     ReloadEvent::Applied { loaded, plan } => { /* swap in `loaded`; apply plan.hot; announce plan.restart */ let _ = (loaded, plan); }
//!     ReloadEvent::Rejected { error } => { /* log + surface in health; keep the old config */ let _ = error; }
//! })?;
//! # Ok(()) }
//! ```

pub mod edit;
pub mod json5;
pub mod load;
mod migrate;
pub mod model;
pub mod net;
pub mod openclaw;
pub mod redact;
pub mod reload;
pub mod secrets;
mod semantic;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

pub use model::Config;
pub use validate::Issue;

/// Config file name inside the state dir.
pub const CONFIG_FILE_NAME: &str = "pincer.json";

/// Everything that can go wrong reading or writing the config. Every variant names the
/// file, and where it applies the line, column and key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("{} is {size} bytes, over the {limit}-byte limit for config files", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{}:{line}:{col} — syntax error: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: u32,
        col: u32,
        message: String,
    },
    #[error("{}:{line}:{col} — {path}: {message}", file.display())]
    Include {
        file: PathBuf,
        line: u32,
        col: u32,
        path: String,
        message: String,
    },
    #[error("{}", format_issues(issues))]
    Invalid { issues: Vec<Issue> },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file changed since it was read (baseHash {expected} does not match the current {actual}); reload it and retry")]
    Conflict { expected: String, actual: String },
    #[error("invalid config path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("the config must be a JSON object at the top level")]
    NotAnObject,
}

fn format_issues(issues: &[Issue]) -> String {
    match issues {
        [one] => format!("invalid configuration: {one}"),
        many => {
            let mut s = format!("invalid configuration ({} problems):", many.len());
            for i in many {
                s.push_str("\n  ");
                s.push_str(&i.to_string());
            }
            s
        }
    }
}

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// OpenClaw keys Pincer does not implement yet (ignored).
    Unimplemented,
    /// `${VAR}` with an unset or empty variable.
    MissingEnv,
    /// A legacy key that was read in its current form (e.g. `agents.list`).
    Legacy,
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
    pub paths: Vec<String>,
}

/// A variable lookup (`${VAR}`, `env` SecretRefs).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How to load: where variables come from and which directories `$include` may read.
#[derive(Clone)]
pub struct LoadOptions {
    pub env: EnvLookup,
    /// Extra `$include` roots besides the config file's directory.
    pub include_roots: Vec<PathBuf>,
    /// Key of the content hash. The gateway should set a secret per-install key so the hash
    /// it publishes cannot be used to guess secrets in the file offline.
    pub hash_key: Vec<u8>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("include_roots", &self.include_roots)
            .finish_non_exhaustive()
    }
}

impl LoadOptions {
    /// Process environment; include roots from `PINCER_INCLUDE_ROOTS` /
    /// `OPENCLAW_INCLUDE_ROOTS` (path-list separated).
    pub fn from_process_env() -> Self {
        let mut roots = Vec::new();
        for var in ["PINCER_INCLUDE_ROOTS", "OPENCLAW_INCLUDE_ROOTS"] {
            if let Some(v) = std::env::var_os(var) {
                roots.extend(std::env::split_paths(&v));
            }
        }
        LoadOptions {
            env: Arc::new(|k| std::env::var(k).ok()),
            include_roots: roots,
            hash_key: b"pincer-config-v1".to_vec(),
        }
    }

    /// A fixed variable set (tests, tools).
    pub fn with_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let map: std::collections::HashMap<String, String> = vars.into_iter().collect();
        LoadOptions {
            env: Arc::new(move |k| map.get(k).cloned()),
            include_roots: Vec::new(),
            hash_key: b"pincer-config-v1".to_vec(),
        }
    }
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub exists: bool,
    /// The file's text (`None` when the file does not exist).
    pub raw: Option<String>,
    /// Files pulled in by `$include`.
    pub included_paths: Vec<PathBuf>,
    /// The document after `$include` and `${VAR}` (before dropping unimplemented keys).
    pub source: Value,
    /// The document that was validated and deserialised.
    pub resolved: Value,
    pub config: Config,
    pub warnings: Vec<Warning>,
    /// Keyed hash of `raw` (`baseHash` for optimistic concurrency).
    pub hash: String,
}

/// `<state>/pincer.json`, unless `PINCER_CONFIG_PATH` or `OPENCLAW_CONFIG_PATH` is set.
pub fn config_path(state_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    for var in ["PINCER_CONFIG_PATH", "OPENCLAW_CONFIG_PATH"] {
        if let Some(p) = env(var).filter(|p| !p.trim().is_empty()) {
            return model::expand_home(p.trim());
        }
    }
    state_dir.join(CONFIG_FILE_NAME)
}

/// Keyed content hash: `hmac-sha256:v1:<base64url>` (the reference's format).
pub fn config_hash(raw: &str, key: &[u8]) -> String {
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map(|m| m.chain_update(raw.as_bytes()).finalize());
    match mac {
        Ok(out) => format!(
            "hmac-sha256:v1:{}",
            URL_SAFE_NO_PAD.encode(out.into_bytes())
        ),
        // HMAC accepts keys of any length; this arm is unreachable in practice.
        Err(_) => "hmac-sha256:v1:".to_string(),
    }
}

/// The JSON Schema (draft-07) of [`Config`], generated from the Rust types.
pub fn json_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let settings = schemars::generate::SchemaSettings::draft07();
        let schema = settings.into_generator().into_root_schema_for::<Config>();
        schema.to_value()
    })
}

/// Loads the config at `path`. A missing file yields the defaults (`exists: false`).
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Loaded {
                path: path.to_path_buf(),
                exists: false,
                raw: None,
                included_paths: Vec::new(),
                source: Value::Object(Default::default()),
                resolved: Value::Object(Default::default()),
                config: Config::default(),
                warnings: Vec::new(),
                hash: config_hash("", &opts.hash_key),
            })
        }
        _ => {}
    }
    let raw = load::Loader::read_file(path)?;
    parse_str(&raw, path, opts)
}

/// Parses and validates config text as if it were the content of `path` (includes resolve
/// relative to it). Nothing is written.
pub fn parse_str(raw: &str, path: &Path, opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let env = opts.env.clone();
    let env_fn = move |k: &str| env(k);
    let mut roots = vec![path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))];
    roots.extend(opts.include_roots.iter().cloned());
    let mut loader = load::Loader {
        files: Vec::new(),
        include_roots: roots,
        env: &env_fn,
        warnings: Vec::new(),
    };
    let mut chain = Vec::new();
    let mut node = loader.parse_document(raw, path, 0, &mut chain)?;
    if !matches!(node.value, json5::NodeValue::Object(_)) {
        return Err(ConfigError::NotAnObject);
    }
    loader.substitute_env(&mut node, &mut Vec::new());
    let source = node.to_value();
    let mut legacy = migrate::legacy_agents_list(&mut node, &loader.files);
    let files = loader.files.clone();
    let mut validator = validate::Validator::new(json_schema(), &files);
    validator.validate(&mut node, json_schema(), &mut Vec::new());
    if !validator.issues.is_empty() {
        return Err(ConfigError::Invalid {
            issues: validator.issues,
        });
    }
    let semantic = semantic::check(&node, &files);
    if !semantic.is_empty() {
        return Err(ConfigError::Invalid { issues: semantic });
    }
    let mut warnings = loader.warnings;
    warnings.append(&mut legacy);
    if !validator.unimplemented.is_empty() {
        warnings.push(Warning {
            kind: WarningKind::Unimplemented,
            message: format!(
                "{}: these OpenClaw settings are not implemented by Pincer yet and are ignored: {}",
                path.display(),
                validator.unimplemented.join(", ")
            ),
            paths: validator.unimplemented,
        });
    }
    let resolved = node.to_value();
    let config: Config =
        serde_json::from_value(resolved.clone()).map_err(|e| ConfigError::Invalid {
            issues: vec![Issue {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                path: "(root)".into(),
                message: e.to_string(),
                allowed_values: None,
            }],
        })?;
    let mut included_paths: Vec<PathBuf> = files.into_iter().skip(1).collect();
    included_paths.dedup();
    Ok(Loaded {
        path: path.to_path_buf(),
        exists: true,
        raw: Some(raw.to_string()),
        included_paths,
        source,
        resolved,
        config,
        warnings,
        hash: config_hash(raw, &opts.hash_key),
    })
}
