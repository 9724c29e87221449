//! WebSocket close codes and reasons the server uses (spec §1.6).

pub const NORMAL: u16 = 1000;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const POLICY_VIOLATION: u16 = 1008;
pub const MESSAGE_TOO_BIG: u16 = 1009;
pub const INTERNAL_ERROR: u16 = 1011;
pub const SERVICE_RESTART: u16 = 1012;
pub const TRY_AGAIN_LATER: u16 = 1013;
pub const CREDENTIALS_REVOKED: u16 = 4001;

pub const REASON_PROTOCOL_MISMATCH: &str = "protocol mismatch";
pub const REASON_INVALID_REQUEST_FRAME: &str = "invalid request frame";
pub const REASON_FIRST_REQUEST_MUST_BE_CONNECT: &str =
    "invalid handshake: first request must be connect";
pub const REASON_INVALID_ROLE: &str = "invalid role";
pub const REASON_INVALID_HANDSHAKE: &str = "invalid-handshake";
pub const REASON_TOO_MANY_PENDING_FRAMES: &str = "too many pending handshake frames";
pub const REASON_REPEATED_UNAUTHORIZED: &str = "repeated unauthorized calls";
pub const REASON_SLOW_CONSUMER: &str = "slow consumer";
pub const REASON_SERVICE_RESTART: &str = "service restart";
pub const REASON_GATEWAY_STARTING: &str = "gateway starting";
/// 4001 after the gateway token/password changed (sessions that used it).
pub const REASON_GATEWAY_AUTH_CHANGED: &str = "gateway auth changed";
/// 4001 after a device's token was rotated or revoked, or the device was removed.
pub const REASON_DEVICE_REMOVED: &str = "device removed";

/// WebSocket close reasons are limited to 123 bytes of UTF-8; trim on a char boundary.
pub fn truncate_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_on_char_boundaries() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert!(long.starts_with(cut));
        assert_eq!(truncate_reason("short"), "short");
    }
}
