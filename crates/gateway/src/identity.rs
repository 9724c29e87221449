//! The gateway's own persistent Ed25519 identity (`<state>/identity/device.json`, 0600).

use std::path::{Path, PathBuf};

use pincer_protocol::device_auth::{decode_base64url, encode_base64url, DeviceKeypair};
use serde::{Deserialize, Serialize};

use crate::state_dir::{ensure_private_dir, write_private_file, StateDirError};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityFile {
    version: u32,
    device_id: String,
    public_key: String,
    /// Ed25519 seed, base64url. The file is 0600 inside a 0700 dir.
    private_key_seed: String,
    created_at_ms: u64,
}

/// The loaded identity. `Debug` shows only the id.
#[derive(Debug, Clone)]
pub struct GatewayIdentity {
    pub keypair: DeviceKeypair,
    pub created_at_ms: u64,
    pub path: PathBuf,
}

impl GatewayIdentity {
    /// Load `<state>/identity/device.json`, creating a fresh key pair if it is missing.
    pub fn load_or_create(state_dir: &Path, now_ms: u64) -> Result<GatewayIdentity, StateDirError> {
        let dir = state_dir.join("identity");
        ensure_private_dir(&dir)?;
        let path = dir.join("device.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let parsed: Result<IdentityFile, _> = serde_json::from_str(&text);
            let seed = parsed
                .as_ref()
                .ok()
                .and_then(|f| decode_base64url(&f.private_key_seed))
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
            return match (parsed, seed) {
                (Ok(file), Some(seed)) => {
                    Ok(GatewayIdentity { keypair: DeviceKeypair::from_seed(&seed), created_at_ms: file.created_at_ms, path })
                }
                _ => Err(StateDirError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "not a valid identity file (expected JSON with privateKeySeed); move it away to create a new identity",
                    ),
                }),
            };
        }
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        let keypair = DeviceKeypair::from_seed(&seed);
        let file = IdentityFile {
            version: 1,
            device_id: keypair.device_id(),
            public_key: keypair.public_key(),
            private_key_seed: encode_base64url(&seed),
            created_at_ms: now_ms,
        };
        let json = serde_json::to_vec_pretty(&file).unwrap_or_default();
        write_private_file(&path, &json)?;
        Ok(GatewayIdentity {
            keypair,
            created_at_ms: now_ms,
            path,
        })
    }

    /// The public view returned by `gateway.identity.get`.
    pub fn public_json(&self) -> serde_json::Value {
        serde_json::json!({
            "deviceId": self.keypair.device_id(),
            "publicKey": self.keypair.public_key(),
            "publicKeyPem": self.keypair.public_key_pem(),
            "algorithm": "ed25519",
            "createdAtMs": self.created_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn identity_persists_and_is_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = GatewayIdentity::load_or_create(dir.path(), 5).unwrap_or_else(|e| panic!("{e}"));
        let b = GatewayIdentity::load_or_create(dir.path(), 9).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.keypair.device_id(), b.keypair.device_id());
        assert_eq!(b.created_at_ms, 5);
        let mode = std::fs::metadata(&a.path)
            .map(|m| m.permissions().mode() & 0o777)
            .ok();
        assert_eq!(mode, Some(0o600));
        let public = a.public_json().to_string();
        assert!(!public.contains(&encode_base64url(&a.keypair.seed())));
    }

    #[test]
    fn corrupt_identity_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("identity")).unwrap_or_default();
        std::fs::write(dir.path().join("identity/device.json"), "garbage").unwrap_or_default();
        let err = GatewayIdentity::load_or_create(dir.path(), 1)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("device.json"), "{err}");
    }
}
