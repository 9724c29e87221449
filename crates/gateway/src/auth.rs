//! Shared-secret auth (modes none / token / password), compared in constant time.

use pincer_protocol::connect::ConnectAuth;
use pincer_protocol::errors::AuthFailureReason;
use subtle::ConstantTimeEq;

/// The resolved auth mode of a running gateway. Secrets never appear in `Debug`.
#[derive(Clone)]
pub enum GatewayAuth {
    None,
    Token(String),
    Password(String),
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mode_str())
    }
}

/// Outcome of evaluating the shared secret of a `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedAuth {
    /// Auth mode `none`: nothing to check.
    NotRequired,
    /// The presented secret matched.
    Ok,
    /// No secret presented.
    Missing(AuthFailureReason),
    /// A secret was presented and is wrong.
    Failed(AuthFailureReason),
}

impl SharedAuth {
    pub fn is_ok(&self) -> bool {
        matches!(self, SharedAuth::Ok | SharedAuth::NotRequired)
    }
}

/// Constant-time equality of two secrets (length leaks, content does not).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl GatewayAuth {
    pub fn mode_str(&self) -> &'static str {
        match self {
            GatewayAuth::None => "none",
            GatewayAuth::Token(_) => "token",
            GatewayAuth::Password(_) => "password",
        }
    }

    /// `hello-ok.auth.method` for a successful shared-auth connect.
    pub fn method_str(&self) -> &'static str {
        self.mode_str()
    }

    /// The mode selects the configured secret; the client may put it in `auth.token` or
    /// `auth.password`.
    pub fn evaluate(&self, auth: Option<&ConnectAuth>) -> SharedAuth {
        fn presented<'a>(
            primary: Option<&'a String>,
            secondary: Option<&'a String>,
        ) -> Option<&'a str> {
            primary
                .or(secondary)
                .map(String::as_str)
                .filter(|s| !s.is_empty())
        }
        match self {
            GatewayAuth::None => SharedAuth::NotRequired,
            GatewayAuth::Token(expected) => {
                match presented(
                    auth.and_then(|a| a.token.as_ref()),
                    auth.and_then(|a| a.password.as_ref()),
                ) {
                    None => SharedAuth::Missing(AuthFailureReason::TokenMissing),
                    Some(given) if secrets_equal(given, expected) => SharedAuth::Ok,
                    Some(_) => SharedAuth::Failed(AuthFailureReason::TokenMismatch),
                }
            }
            GatewayAuth::Password(expected) => {
                match presented(
                    auth.and_then(|a| a.password.as_ref()),
                    auth.and_then(|a| a.token.as_ref()),
                ) {
                    None => SharedAuth::Missing(AuthFailureReason::PasswordMissing),
                    Some(given) if secrets_equal(given, expected) => SharedAuth::Ok,
                    Some(_) => SharedAuth::Failed(AuthFailureReason::PasswordMismatch),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(token: Option<&str>, password: Option<&str>) -> ConnectAuth {
        ConnectAuth {
            token: token.map(String::from),
            password: password.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn token_mode() {
        let a = GatewayAuth::Token("secret".into());
        assert_eq!(
            a.evaluate(Some(&with(Some("secret"), None))),
            SharedAuth::Ok
        );
        assert_eq!(
            a.evaluate(Some(&with(None, Some("secret")))),
            SharedAuth::Ok
        );
        assert_eq!(
            a.evaluate(Some(&with(Some("nope"), None))),
            SharedAuth::Failed(AuthFailureReason::TokenMismatch)
        );
        assert_eq!(
            a.evaluate(Some(&with(Some("secretx"), None))),
            SharedAuth::Failed(AuthFailureReason::TokenMismatch)
        );
        assert_eq!(
            a.evaluate(Some(&with(None, None))),
            SharedAuth::Missing(AuthFailureReason::TokenMissing)
        );
        assert_eq!(
            a.evaluate(None),
            SharedAuth::Missing(AuthFailureReason::TokenMissing)
        );
        assert_eq!(
            a.evaluate(Some(&with(Some(""), None))),
            SharedAuth::Missing(AuthFailureReason::TokenMissing)
        );
    }

    #[test]
    fn password_mode_and_none() {
        let a = GatewayAuth::Password("pw".into());
        assert_eq!(a.evaluate(Some(&with(None, Some("pw")))), SharedAuth::Ok);
        assert_eq!(
            a.evaluate(Some(&with(None, Some("x")))),
            SharedAuth::Failed(AuthFailureReason::PasswordMismatch)
        );
        assert_eq!(
            a.evaluate(None),
            SharedAuth::Missing(AuthFailureReason::PasswordMissing)
        );
        assert_eq!(GatewayAuth::None.evaluate(None), SharedAuth::NotRequired);
        assert!(!format!("{a:?}").contains("pw\""));
    }
}
