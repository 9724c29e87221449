//! Error codes, the `ErrorShape` of `res` frames, and the connect detail codes (spec §4.1).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Top-level `error.code` values (`ErrorCodes` in the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Deprecated, never produced by Pincer.
    NotLinked,
    NotPaired,
    /// Deprecated, never produced by Pincer.
    AgentTimeout,
    InvalidRequest,
    Forbidden,
    ApprovalNotFound,
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotLinked => "NOT_LINKED",
            ErrorCode::NotPaired => "NOT_PAIRED",
            ErrorCode::AgentTimeout => "AGENT_TIMEOUT",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::ApprovalNotFound => "APPROVAL_NOT_FOUND",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }
}

/// `ErrorShape`: `{code, message, details?, retryable?, retryAfterMs?}` (closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorShape {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorShape {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retryable = Some(true);
        self.retry_after_ms = Some(ms);
        self
    }

    /// `unknown method: <m>`.
    pub fn unknown_method(method: &str) -> Self {
        Self::invalid_request(format!("unknown method: {method}"))
    }

    /// `invalid <method> params: <ajv text>`.
    pub fn invalid_params(method: &str, ajv: &str) -> Self {
        Self::invalid_request(format!("invalid {method} params: {ajv}"))
    }
}

/// `details.code` values of connect failures ([CED]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectDetailCode {
    AuthRequired,
    AuthUnauthorized,
    AuthTokenMissing,
    AuthTokenMismatch,
    AuthTokenNotConfigured,
    AuthPasswordMissing,
    AuthPasswordMismatch,
    AuthPasswordNotConfigured,
    AuthBootstrapTokenInvalid,
    AuthRateLimited,
    AuthDeviceTokenMismatch,
    AuthScopeMismatch,
    AuthIdentityHeaderRequired,
    AuthVerifiedUserRequired,
    AuthenticatedProfileUnavailable,
    ControlUiBuildMismatch,
    ControlUiOriginNotAllowed,
    ProtocolMismatch,
    ControlUiDeviceIdentityRequired,
    DeviceIdentityRequired,
    DeviceAuthInvalid,
    DeviceAuthDeviceIdMismatch,
    DeviceAuthSignatureExpired,
    DeviceAuthNonceRequired,
    DeviceAuthNonceMismatch,
    DeviceAuthSignatureInvalid,
    DeviceAuthPublicKeyInvalid,
    PairingRequired,
    ClientVersionMismatch,
}

impl ConnectDetailCode {
    pub fn as_str(self) -> &'static str {
        use ConnectDetailCode::*;
        match self {
            AuthRequired => "AUTH_REQUIRED",
            AuthUnauthorized => "AUTH_UNAUTHORIZED",
            AuthTokenMissing => "AUTH_TOKEN_MISSING",
            AuthTokenMismatch => "AUTH_TOKEN_MISMATCH",
            AuthTokenNotConfigured => "AUTH_TOKEN_NOT_CONFIGURED",
            AuthPasswordMissing => "AUTH_PASSWORD_MISSING",
            AuthPasswordMismatch => "AUTH_PASSWORD_MISMATCH",
            AuthPasswordNotConfigured => "AUTH_PASSWORD_NOT_CONFIGURED",
            AuthBootstrapTokenInvalid => "AUTH_BOOTSTRAP_TOKEN_INVALID",
            AuthRateLimited => "AUTH_RATE_LIMITED",
            AuthDeviceTokenMismatch => "AUTH_DEVICE_TOKEN_MISMATCH",
            AuthScopeMismatch => "AUTH_SCOPE_MISMATCH",
            AuthIdentityHeaderRequired => "AUTH_IDENTITY_HEADER_REQUIRED",
            AuthVerifiedUserRequired => "AUTH_VERIFIED_USER_REQUIRED",
            AuthenticatedProfileUnavailable => "AUTHENTICATED_PROFILE_UNAVAILABLE",
            ControlUiBuildMismatch => "CONTROL_UI_BUILD_MISMATCH",
            ControlUiOriginNotAllowed => "CONTROL_UI_ORIGIN_NOT_ALLOWED",
            ProtocolMismatch => "PROTOCOL_MISMATCH",
            ControlUiDeviceIdentityRequired => "CONTROL_UI_DEVICE_IDENTITY_REQUIRED",
            DeviceIdentityRequired => "DEVICE_IDENTITY_REQUIRED",
            DeviceAuthInvalid => "DEVICE_AUTH_INVALID",
            DeviceAuthDeviceIdMismatch => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            DeviceAuthSignatureExpired => "DEVICE_AUTH_SIGNATURE_EXPIRED",
            DeviceAuthNonceRequired => "DEVICE_AUTH_NONCE_REQUIRED",
            DeviceAuthNonceMismatch => "DEVICE_AUTH_NONCE_MISMATCH",
            DeviceAuthSignatureInvalid => "DEVICE_AUTH_SIGNATURE_INVALID",
            DeviceAuthPublicKeyInvalid => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            PairingRequired => "PAIRING_REQUIRED",
            ClientVersionMismatch => "CLIENT_VERSION_MISMATCH",
        }
    }
}

/// Why shared-secret (or device-token) auth failed; maps to `details.authReason` and a detail code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthFailureReason {
    TokenMissing,
    TokenMismatch,
    TokenMissingConfig,
    PasswordMissing,
    PasswordMismatch,
    PasswordMissingConfig,
    DeviceTokenMismatch,
    /// The device token does not cover the requested role/scopes.
    ScopeMismatch,
    RateLimited,
    /// Trusted-proxy auth: the socket peer is not a configured proxy.
    TrustedProxyUntrustedSource,
    /// Trusted-proxy auth: a loopback proxy without `allowLoopback`.
    TrustedProxyLoopbackSource,
    /// Trusted-proxy auth: `gateway.trustedProxies` is empty.
    TrustedProxyNoProxiesConfigured,
    /// Trusted-proxy auth: the user header is missing or blank.
    TrustedProxyUserMissing,
    /// Trusted-proxy auth: the user is not in `allowUsers`.
    TrustedProxyUserNotAllowed,
    /// Trusted-proxy auth: a required header (lower-case name) is missing.
    TrustedProxyMissingHeader(String),
}
/// Which wording of the auth hints applies to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthClientKind {
    /// The CLI on this host.
    CliLocal,
    /// The CLI over the network.
    CliRemote,
    /// Control UI / WebChat.
    Ui,
    Other,
}

/// What the client should do next after an auth failure (`details.recommendedNextStep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecommendedNextStep {
    RetryWithDeviceToken,
    UpdateAuthConfiguration,
    UpdateAuthCredentials,
    WaitThenRetry,
    ReviewAuthConfiguration,
}

impl RecommendedNextStep {
    pub fn as_str(self) -> &'static str {
        match self {
            RecommendedNextStep::RetryWithDeviceToken => "retry_with_device_token",
            RecommendedNextStep::UpdateAuthConfiguration => "update_auth_configuration",
            RecommendedNextStep::UpdateAuthCredentials => "update_auth_credentials",
            RecommendedNextStep::WaitThenRetry => "wait_then_retry",
            RecommendedNextStep::ReviewAuthConfiguration => "review_auth_configuration",
        }
    }
}

impl AuthFailureReason {
    /// The reference's internal reason string (`details.authReason`).
    pub fn as_str(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow;
        Cow::Borrowed(match self {
            AuthFailureReason::TokenMissing => "token_missing",
            AuthFailureReason::TokenMismatch => "token_mismatch",
            AuthFailureReason::TokenMissingConfig => "token_missing_config",
            AuthFailureReason::PasswordMissing => "password_missing",
            AuthFailureReason::PasswordMismatch => "password_mismatch",
            AuthFailureReason::PasswordMissingConfig => "password_missing_config",
            AuthFailureReason::DeviceTokenMismatch => "device_token_mismatch",
            AuthFailureReason::ScopeMismatch => "scope_mismatch",
            AuthFailureReason::RateLimited => "rate_limited",
            AuthFailureReason::TrustedProxyUntrustedSource => "trusted_proxy_untrusted_source",
            AuthFailureReason::TrustedProxyLoopbackSource => "trusted_proxy_loopback_source",
            AuthFailureReason::TrustedProxyNoProxiesConfigured => {
                "trusted_proxy_no_proxies_configured"
            }
            AuthFailureReason::TrustedProxyUserMissing => "trusted_proxy_user_missing",
            AuthFailureReason::TrustedProxyUserNotAllowed => "trusted_proxy_user_not_allowed",
            AuthFailureReason::TrustedProxyMissingHeader(h) => {
                return Cow::Owned(format!("trusted_proxy_missing_header_{h}"))
            }
        })
    }

    pub fn detail_code(&self) -> ConnectDetailCode {
        match self {
            AuthFailureReason::TokenMissing => ConnectDetailCode::AuthTokenMissing,
            AuthFailureReason::TokenMismatch => ConnectDetailCode::AuthTokenMismatch,
            AuthFailureReason::TokenMissingConfig => ConnectDetailCode::AuthTokenNotConfigured,
            AuthFailureReason::PasswordMissing => ConnectDetailCode::AuthPasswordMissing,
            AuthFailureReason::PasswordMismatch => ConnectDetailCode::AuthPasswordMismatch,
            AuthFailureReason::PasswordMissingConfig => {
                ConnectDetailCode::AuthPasswordNotConfigured
            }
            AuthFailureReason::DeviceTokenMismatch => ConnectDetailCode::AuthDeviceTokenMismatch,
            AuthFailureReason::ScopeMismatch => ConnectDetailCode::AuthScopeMismatch,
            AuthFailureReason::RateLimited => ConnectDetailCode::AuthRateLimited,
            AuthFailureReason::TrustedProxyMissingHeader(_) => {
                ConnectDetailCode::AuthIdentityHeaderRequired
            }
            AuthFailureReason::TrustedProxyUntrustedSource
            | AuthFailureReason::TrustedProxyLoopbackSource
            | AuthFailureReason::TrustedProxyNoProxiesConfigured
            | AuthFailureReason::TrustedProxyUserMissing
            | AuthFailureReason::TrustedProxyUserNotAllowed => ConnectDetailCode::AuthUnauthorized,
        }
    }

    /// Whether the failure involved a secret that was present but wrong (these are delayed and counted).
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            AuthFailureReason::TokenMismatch
                | AuthFailureReason::PasswordMismatch
                | AuthFailureReason::DeviceTokenMismatch
        )
    }

    /// Human message, `unauthorized: …`, worded for the kind of client as the reference does.
    pub fn message(&self, client: AuthClientKind) -> String {
        let token_hint = match client {
            AuthClientKind::CliLocal => "use this gateway's gateway.auth.token or pair the device",
            AuthClientKind::CliRemote => "set gateway.remote.token to match gateway.auth.token",
            AuthClientKind::Ui => {
                "open the dashboard URL and paste the token in Control UI settings"
            }
            AuthClientKind::Other => "provide gateway auth token",
        };
        let missing_token_hint = match client {
            AuthClientKind::Ui => {
                "paste in Control UI settings or openclaw doctor --generate-gateway-token; restart"
            }
            _ => token_hint,
        };
        let password_hint = match client {
            AuthClientKind::CliLocal => "use this gateway's gateway.auth.password",
            AuthClientKind::CliRemote => {
                "set gateway.remote.password to match gateway.auth.password"
            }
            AuthClientKind::Ui => "enter the password in Control UI settings",
            AuthClientKind::Other => "provide gateway auth password",
        };
        match self {
            AuthFailureReason::TokenMismatch => format!("unauthorized: gateway token mismatch ({token_hint})"),
            AuthFailureReason::TokenMissing => format!("unauthorized: gateway token missing ({missing_token_hint})"),
            AuthFailureReason::TokenMissingConfig => {
                "unauthorized: gateway token not configured on gateway (set gateway.auth.token)".to_string()
            }
            AuthFailureReason::PasswordMismatch => format!("unauthorized: gateway password mismatch ({password_hint})"),
            AuthFailureReason::PasswordMissing => format!("unauthorized: gateway password missing ({password_hint})"),
            AuthFailureReason::PasswordMissingConfig => {
                "unauthorized: gateway password not configured on gateway (set gateway.auth.password)".to_string()
            }
            AuthFailureReason::DeviceTokenMismatch => {
                "unauthorized: device token mismatch (rotate/reissue device token)".to_string()
            }
            AuthFailureReason::ScopeMismatch => {
                "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)"
                    .to_string()
            }
            AuthFailureReason::RateLimited => {
                "unauthorized: too many failed authentication attempts (retry later)".to_string()
            }
            AuthFailureReason::TrustedProxyUntrustedSource
            | AuthFailureReason::TrustedProxyLoopbackSource
            | AuthFailureReason::TrustedProxyNoProxiesConfigured
            | AuthFailureReason::TrustedProxyUserMissing
            | AuthFailureReason::TrustedProxyUserNotAllowed
            | AuthFailureReason::TrustedProxyMissingHeader(_) => "unauthorized".to_string(),
        }
    }

    /// Build the full error shape. `can_retry_with_device_token` is true only for a token mismatch
    /// from a client that presented a device identity, `auth.token` and no `auth.deviceToken`.
    pub fn to_error_shape(
        &self,
        can_retry_with_device_token: bool,
        client: AuthClientKind,
    ) -> ErrorShape {
        let can_retry = can_retry_with_device_token && *self == AuthFailureReason::TokenMismatch;
        let next = match self {
            _ if can_retry => RecommendedNextStep::RetryWithDeviceToken,
            AuthFailureReason::RateLimited => RecommendedNextStep::WaitThenRetry,
            AuthFailureReason::TokenMissing
            | AuthFailureReason::TokenMissingConfig
            | AuthFailureReason::PasswordMissing
            | AuthFailureReason::PasswordMissingConfig => {
                RecommendedNextStep::UpdateAuthConfiguration
            }
            AuthFailureReason::TokenMismatch
            | AuthFailureReason::PasswordMismatch
            | AuthFailureReason::DeviceTokenMismatch => RecommendedNextStep::UpdateAuthCredentials,
            _ => RecommendedNextStep::ReviewAuthConfiguration,
        };
        ErrorShape::invalid_request(self.message(client)).with_details(json!({
            "code": self.detail_code().as_str(),
            "authReason": self.as_str(),
            "canRetryWithDeviceToken": can_retry,
            "recommendedNextStep": next.as_str(),
        }))
    }

    /// A locked-out client (`rate_limited`): retryable after `retry_after_ms`.
    pub fn rate_limited_shape(retry_after_ms: u64, client: AuthClientKind) -> ErrorShape {
        let mut shape = AuthFailureReason::RateLimited.to_error_shape(false, client);
        shape.retryable = Some(true);
        shape.retry_after_ms = Some(retry_after_ms);
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape_serialises_like_the_reference() {
        let shape = ErrorShape::unknown_method("no.such.method");
        assert_eq!(
            serde_json::to_string(&shape).unwrap_or_default(),
            r#"{"code":"INVALID_REQUEST","message":"unknown method: no.such.method"}"#
        );
    }

    #[test]
    fn token_mismatch_without_device_matches_golden() {
        let shape =
            AuthFailureReason::TokenMismatch.to_error_shape(false, AuthClientKind::CliLocal);
        let v = serde_json::to_value(&shape).unwrap_or_default();
        assert_eq!(
            v,
            json!({"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
                   "details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch","canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"}})
        );
    }

    #[test]
    fn token_mismatch_with_device_recommends_device_token() {
        let v = serde_json::to_value(
            AuthFailureReason::TokenMismatch.to_error_shape(true, AuthClientKind::CliLocal),
        )
        .unwrap_or_default();
        assert_eq!(v["details"]["canRetryWithDeviceToken"], json!(true));
        assert_eq!(
            v["details"]["recommendedNextStep"],
            json!("retry_with_device_token")
        );
        // Only token mismatches can be retried with a device token.
        let v = serde_json::to_value(
            AuthFailureReason::PasswordMismatch.to_error_shape(true, AuthClientKind::Other),
        )
        .unwrap_or_default();
        assert_eq!(v["details"]["canRetryWithDeviceToken"], json!(false));
        assert_eq!(v["details"]["code"], json!("AUTH_PASSWORD_MISMATCH"));
    }

    #[test]
    fn missing_credentials_and_rate_limits_follow_the_reference() {
        let v = serde_json::to_value(
            AuthFailureReason::TokenMissing.to_error_shape(false, AuthClientKind::Other),
        )
        .unwrap_or_default();
        assert_eq!(
            v["details"]["recommendedNextStep"],
            json!("update_auth_configuration")
        );
        let v = serde_json::to_value(AuthFailureReason::rate_limited_shape(
            1234,
            AuthClientKind::CliRemote,
        ))
        .unwrap_or_default();
        assert_eq!(
            v,
            json!({"code":"INVALID_REQUEST","message":"unauthorized: too many failed authentication attempts (retry later)",
                   "details":{"code":"AUTH_RATE_LIMITED","authReason":"rate_limited","canRetryWithDeviceToken":false,"recommendedNextStep":"wait_then_retry"},
                   "retryable":true,"retryAfterMs":1234})
        );
        let v = serde_json::to_value(
            AuthFailureReason::TrustedProxyMissingHeader("x-forwarded-email".into())
                .to_error_shape(false, AuthClientKind::Other),
        )
        .unwrap_or_default();
        assert_eq!(v["message"], json!("unauthorized"));
        assert_eq!(v["details"]["code"], json!("AUTH_IDENTITY_HEADER_REQUIRED"));
        assert_eq!(
            v["details"]["authReason"],
            json!("trusted_proxy_missing_header_x-forwarded-email")
        );
    }
}
