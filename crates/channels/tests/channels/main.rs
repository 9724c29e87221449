//! Channel adapters against the platform fakes of `pincer-fakes`, over real sockets: DM
//! pairing, mention gating, chunked replies, reconnect/resume without loss or duplicates,
//! 429 backoff, invalid tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod discord;
mod slack;
mod telegram;
