//! Step 9 of the connect pipeline: device pairing and device tokens.
//!
//! The pipeline calls a [`DeviceAuthority`] once a device proof has been verified. This issue
//! ships [`LocalOnlyAuthority`]: devices on a direct loopback connection are approved silently
//! with the scopes they asked for (the reference's local silent pairing, without persisted
//! tokens); every other device gets `NOT_PAIRED` / pairing required. The store-backed
//! authority (pending requests, `device.pair.*`, device tokens) replaces it in the next issue
//! without touching the pipeline.

use std::future::Future;
use std::pin::Pin;

use pincer_protocol::connect::Role;
use pincer_protocol::device_auth::VerifiedDevice;
use pincer_protocol::errors::{ConnectDetailCode, ErrorCode, ErrorShape};
use serde_json::json;

/// Where a connection comes from, as far as pairing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locality {
    /// Loopback socket without forwarding headers.
    DirectLocal,
    Remote,
}

/// Everything a pairing decision may look at.
#[derive(Debug, Clone)]
pub struct PairingRequest {
    pub device: VerifiedDevice,
    pub role: Role,
    pub requested_scopes: Vec<String>,
    pub client_id: String,
    pub client_mode: String,
    pub display_name: Option<String>,
    pub platform: String,
    pub device_family: Option<String>,
    pub locality: Locality,
    pub remote_ip: String,
    /// Whether shared auth (token/password/none) succeeded for this connect.
    pub shared_auth_ok: bool,
}

/// A device token to hand out in `hello-ok.auth`.
#[derive(Debug, Clone)]
pub struct IssuedDeviceToken {
    pub token: String,
    pub issued_at_ms: u64,
}

/// Why pairing is required (`details.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingReason {
    NotPaired,
    RoleUpgrade,
    ScopeUpgrade,
    MetadataUpgrade,
}

impl PairingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "not-paired",
            PairingReason::RoleUpgrade => "role-upgrade",
            PairingReason::ScopeUpgrade => "scope-upgrade",
            PairingReason::MetadataUpgrade => "metadata-upgrade",
        }
    }

    fn requirement(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "device is not approved yet",
            PairingReason::RoleUpgrade => {
                "device is asking for a higher role than currently approved"
            }
            PairingReason::ScopeUpgrade => {
                "device is asking for more scopes than currently approved"
            }
            PairingReason::MetadataUpgrade => "device metadata changed since it was approved",
        }
    }

    fn remediation(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "Approve this device from the pending pairing requests.",
            PairingReason::RoleUpgrade => {
                "Review the requested role upgrade, then approve the pending request."
            }
            PairingReason::ScopeUpgrade => {
                "Review the requested scope upgrade, then approve the pending request."
            }
            PairingReason::MetadataUpgrade => {
                "Review the device metadata change, then approve the pending request."
            }
        }
    }
}

/// The outcome of step 9.
#[derive(Debug, Clone)]
pub enum PairingDecision {
    Approved {
        scopes: Vec<String>,
        device_token: Option<IssuedDeviceToken>,
    },
    Required {
        reason: PairingReason,
        request_id: Option<String>,
    },
}

/// Build the `NOT_PAIRED` error and the close reason for a pairing-required connect.
pub fn pairing_required_error(
    reason: PairingReason,
    request_id: Option<&str>,
    req: &PairingRequest,
) -> (ErrorShape, String) {
    let message = format!("pairing required: {}", reason.requirement());
    let mut details = json!({
        "code": ConnectDetailCode::PairingRequired.as_str(),
        "reason": reason.as_str(),
        "remediationHint": reason.remediation(),
        "deviceId": req.device.device_id,
        "requestedRole": req.role.as_str(),
        "requestedScopes": req.requested_scopes,
    });
    if let (Some(id), Some(obj)) = (request_id, details.as_object_mut()) {
        obj.insert("requestId".into(), json!(id));
    }
    let close_reason = match request_id {
        Some(id) => format!("{message} (requestId: {id})"),
        None => message.clone(),
    };
    (
        ErrorShape::new(ErrorCode::NotPaired, message).with_details(details),
        close_reason,
    )
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides whether a verified device may connect with the role and scopes it asked for.
pub trait DeviceAuthority: Send + Sync {
    fn authorize(&self, request: PairingRequest) -> BoxFuture<'_, PairingDecision>;

    /// Verify `auth.deviceToken` for (device, role). No tokens exist before the store lands.
    fn verify_device_token(
        &self,
        _device_id: &str,
        _role: Role,
        _token: &str,
    ) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }
}

/// Approves direct-local devices silently; everything else needs pairing.
#[derive(Debug, Default)]
pub struct LocalOnlyAuthority;

impl DeviceAuthority for LocalOnlyAuthority {
    fn authorize(&self, request: PairingRequest) -> BoxFuture<'_, PairingDecision> {
        Box::pin(async move {
            if request.locality == Locality::DirectLocal && request.shared_auth_ok {
                PairingDecision::Approved {
                    scopes: request.requested_scopes,
                    device_token: None,
                }
            } else {
                PairingDecision::Required {
                    reason: PairingReason::NotPaired,
                    request_id: None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pincer_protocol::device_auth::SignatureVersion;

    fn request(locality: Locality) -> PairingRequest {
        PairingRequest {
            device: VerifiedDevice {
                device_id: "d".into(),
                public_key: "k".into(),
                signature_version: SignatureVersion::V3,
            },
            role: Role::Operator,
            requested_scopes: vec!["operator.read".into()],
            client_id: "cli".into(),
            client_mode: "cli".into(),
            display_name: None,
            platform: "linux".into(),
            device_family: None,
            locality,
            remote_ip: "127.0.0.1".into(),
            shared_auth_ok: true,
        }
    }

    #[tokio::test]
    async fn local_devices_are_approved_remote_ones_need_pairing() {
        let a = LocalOnlyAuthority;
        match a.authorize(request(Locality::DirectLocal)).await {
            PairingDecision::Approved { scopes, .. } => {
                assert_eq!(scopes, vec!["operator.read".to_string()])
            }
            other => panic!("{other:?}"),
        }
        let remote = request(Locality::Remote);
        match a.authorize(remote.clone()).await {
            PairingDecision::Required { reason, request_id } => {
                let (err, close) = pairing_required_error(reason, request_id.as_deref(), &remote);
                assert_eq!(err.code, ErrorCode::NotPaired);
                assert_eq!(err.message, "pairing required: device is not approved yet");
                assert_eq!(close, "pairing required: device is not approved yet");
                assert_eq!(
                    err.details.as_ref().map(|d| d["code"].clone()),
                    Some(json!("PAIRING_REQUIRED"))
                );
            }
            other => panic!("{other:?}"),
        }
        let (_, close) = pairing_required_error(PairingReason::NotPaired, Some("r1"), &remote);
        assert_eq!(
            close,
            "pairing required: device is not approved yet (requestId: r1)"
        );
        assert!(!a.verify_device_token("d", Role::Operator, "t").await);
    }
}
