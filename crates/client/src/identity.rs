//! The client's own device identity and the device tokens gateways gave it.
//!
//! `<state>/identity/client.json` holds the Ed25519 seed (0600 in a 0700 dir) — the `pincer`
//! CLI and `pincer node run` sign every connect with it. `<state>/identity/client-tokens.json`
//! (0600) remembers, per gateway URL and role, the device token from `hello-ok.auth`, so a
//! later connect can authenticate with the token alone (no shared secret).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use pincer_protocol::device_auth::{decode_base64url, encode_base64url, DeviceKeypair};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid identity file ({reason}); move it away to create a new identity")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityFile {
    version: u32,
    device_id: String,
    public_key: String,
    /// Ed25519 seed, base64url.
    private_key_seed: String,
    created_at_ms: u64,
}

/// A stored device token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredToken {
    pub token: String,
    pub scopes: Vec<String>,
    pub issued_at_ms: u64,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokensFile {
    version: u32,
    device_id: String,
    /// Key: `<gateway url>|<role>`.
    tokens: BTreeMap<String, StoredToken>,
}

/// The client identity in a state dir.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub keypair: DeviceKeypair,
    dir: PathBuf,
    /// File stem: `client` → `client.json` + `client-tokens.json`.
    name: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn private_dir(dir: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(io(dir))
    }
}

/// Write `contents` to `path` atomically with mode 0600.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `ws://127.0.0.1:18789/` and `ws://127.0.0.1:18789` name the same gateway.
fn gateway_key(url: &str, role: &str) -> String {
    format!(
        "{}|{role}",
        url.trim().trim_end_matches('/').to_ascii_lowercase()
    )
}

impl ClientIdentity {
    /// Load `<state>/identity/client.json`, creating a key pair on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<ClientIdentity, IdentityError> {
        Self::load_or_create_named(state_dir, "client")
    }

    /// Load `<state>/identity/<name>.json` (tokens in `<name>-tokens.json`), creating a key pair
    /// on first use. A node host keeps its own identity apart from the CLI's (`node`).
    pub fn load_or_create_named(
        state_dir: &Path,
        name: &str,
    ) -> Result<ClientIdentity, IdentityError> {
        let dir = state_dir.join("identity");
        private_dir(&dir)?;
        let path = dir.join(format!("{name}.json"));
        let name = name.to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: IdentityFile =
                    serde_json::from_str(&text).map_err(|e| IdentityError::Invalid {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                let seed = decode_base64url(&file.private_key_seed)
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| IdentityError::Invalid {
                        path: path.clone(),
                        reason: "privateKeySeed is not 32 bytes of base64url".into(),
                    })?;
                Ok(ClientIdentity {
                    keypair: DeviceKeypair::from_seed(&seed),
                    dir,
                    name,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                rand::fill(&mut seed);
                let keypair = DeviceKeypair::from_seed(&seed);
                let file = IdentityFile {
                    version: 1,
                    device_id: keypair.device_id(),
                    public_key: keypair.public_key(),
                    private_key_seed: encode_base64url(&seed),
                    created_at_ms: now_ms(),
                };
                let json = serde_json::to_vec_pretty(&file).unwrap_or_default();
                write_private(&path, &json)?;
                Ok(ClientIdentity { keypair, dir, name })
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    pub fn device_id(&self) -> String {
        self.keypair.device_id()
    }

    fn tokens_path(&self) -> PathBuf {
        self.dir.join(format!("{}-tokens.json", self.name))
    }

    fn read_tokens(&self) -> TokensFile {
        std::fs::read_to_string(self.tokens_path())
            .ok()
            .and_then(|t| serde_json::from_str::<TokensFile>(&t).ok())
            .filter(|f| f.device_id == self.device_id())
            .unwrap_or_default()
    }

    fn write_tokens(&self, mut file: TokensFile) -> Result<(), IdentityError> {
        file.version = 1;
        file.device_id = self.device_id();
        let json = serde_json::to_vec_pretty(&file).unwrap_or_default();
        write_private(&self.tokens_path(), &json)
    }

    /// The device token stored for (gateway, role).
    pub fn token_for(&self, gateway_url: &str, role: &str) -> Option<StoredToken> {
        self.read_tokens()
            .tokens
            .get(&gateway_key(gateway_url, role))
            .cloned()
    }

    /// Remember the token a gateway issued (or echoed).
    pub fn store_token(
        &self,
        gateway_url: &str,
        role: &str,
        token: StoredToken,
    ) -> Result<(), IdentityError> {
        let mut file = self.read_tokens();
        if file.tokens.get(&gateway_key(gateway_url, role)) == Some(&token) {
            return Ok(());
        }
        file.tokens.insert(gateway_key(gateway_url, role), token);
        self.write_tokens(file)
    }

    /// Forget the token for (gateway, role) (the gateway rejected it).
    pub fn clear_token(&self, gateway_url: &str, role: &str) -> Result<(), IdentityError> {
        let mut file = self.read_tokens();
        if file
            .tokens
            .remove(&gateway_key(gateway_url, role))
            .is_some()
        {
            self.write_tokens(file)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_tokens_persist_privately() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = ClientIdentity::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let b = ClientIdentity::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.device_id(), b.device_id());
        let t = StoredToken {
            token: "tok".into(),
            scopes: vec!["operator.read".into()],
            issued_at_ms: 5,
        };
        a.store_token("ws://127.0.0.1:1/", "operator", t.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.token_for("WS://127.0.0.1:1", "operator"), Some(t));
        assert_eq!(b.token_for("ws://127.0.0.1:1", "node"), None);
        // A named identity (the node host's) is separate from the CLI's.
        let n = ClientIdentity::load_or_create_named(dir.path(), "node")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(n.device_id(), a.device_id());
        assert_eq!(n.token_for("ws://127.0.0.1:1", "operator"), None);
        assert!(dir.path().join("identity/node.json").exists());
        b.clear_token("ws://127.0.0.1:1", "operator")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.token_for("ws://127.0.0.1:1", "operator"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["client.json", "client-tokens.json"] {
                let mode = std::fs::metadata(dir.path().join("identity").join(f))
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0);
                assert_eq!(mode, 0o600, "{f}");
            }
        }
        // A corrupt file is an error naming the file, never silently replaced.
        std::fs::write(dir.path().join("identity").join("client.json"), "nope")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = ClientIdentity::load_or_create(dir.path())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("client.json")));
    }
}
