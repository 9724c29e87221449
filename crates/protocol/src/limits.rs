//! Size limits and timer constants of the protocol (spec §1.4, §1.5, §7).

/// Largest frame accepted before `hello-ok` (close 1009 above it).
pub const MAX_PREAUTH_PAYLOAD_BYTES: usize = 65_536;
/// Largest frame accepted after `hello-ok` (`policy.maxPayload`).
pub const MAX_PAYLOAD_BYTES: usize = 26_214_400;
/// Default `agents.defaults.mediaMaxMb` (chat attachment ceiling before the envelope cap).
pub const DEFAULT_MEDIA_MAX_MB: u64 = 20;
/// Largest chat attachment that fits a max-size frame once base64-encoded, with 256 KiB left
/// for the rest of the request: `floor((25 MiB − 256 KiB) · 3/4)` = 19464192.
pub const MAX_ATTACHMENT_ENVELOPE_BYTES: u64 = (MAX_PAYLOAD_BYTES as u64 - 256 * 1024) * 3 / 4;
/// Ceiling for image attachments (`policy.attachments.maxImageBytes`).
pub const MAX_IMAGE_ATTACHMENT_BYTES: u64 = 6_291_456;
/// Outbound buffer per connection (`policy.maxBufferedBytes`); over it the slow-consumer rule applies.
pub const MAX_BUFFERED_BYTES: usize = 52_428_800;
/// Frames that may queue while a `connect` is processed; one more closes 1008.
pub const MAX_PENDING_HANDSHAKE_FRAMES: usize = 15;
/// Pre-auth handshake timeout.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 15_000;
/// Global `tick` event interval (`policy.tickIntervalMs`).
pub const TICK_INTERVAL_MS: u64 = 30_000;
/// Periodic health refresh.
pub const HEALTH_REFRESH_INTERVAL_MS: u64 = 60_000;
/// WebSocket ping interval for authenticated sockets; the pong deadline is the same span.
pub const WS_PING_INTERVAL_MS: u64 = 25_000;
/// Allowed clock skew of `device.signedAt`.
pub const DEVICE_SIGNATURE_SKEW_MS: u64 = 120_000;
/// How long the server waits for the peer's close frame after sending its own.
pub const CLOSE_GRACE_MS: u64 = 1_000;
/// Unauthenticated sockets allowed per client IP; more get HTTP 503.
pub const MAX_PREAUTH_CONNECTIONS_PER_IP: usize = 32;
/// Consecutive `unauthorized role` errors tolerated before close 1008.
pub const UNAUTHORIZED_FLOOD_LIMIT: u32 = 10;
/// Idempotency dedupe entry lifetime.
pub const DEDUPE_TTL_MS: u64 = 300_000;
/// Idempotency dedupe capacity.
pub const DEDUPE_MAX_ENTRIES: usize = 1_000;
/// `logs.tail` bounds.
pub const LOGS_TAIL_MAX_LIMIT: u64 = 5_000;
pub const LOGS_TAIL_MAX_BYTES: u64 = 1_000_000;
/// Delay before answering a wrong shared secret (brute-force damping, as the reference does).
pub const AUTH_FAILURE_DELAY_MS: u64 = 250;
