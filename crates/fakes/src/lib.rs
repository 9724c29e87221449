//! Local fake servers that speak real wire protocols, for tests in any crate and for
//! benchmarks. Everything binds `127.0.0.1` only.
//!
//! - [`http`]: a small HTTP/1.1 server framework with byte-level control of responses
//!   (chunk boundaries, delays, hang-ups, stalls) and connection counters. Platform fakes
//!   implement its [`http::Handler`].
//! - [`llm`]: a scripted fake LLM provider (OpenAI Chat Completions and Responses,
//!   Anthropic Messages, Ollama), see [`llm::FakeLlm`].
//!
//! - [`telegram`], [`discord`], [`slack`] (cargo features of the same names): chat-platform
//!   fakes speaking each platform's real wire protocol (Bot API over HTTP; gateway op codes
//!   over WebSocket plus REST; Socket Mode envelopes plus Web API), scriptable from tests.

#[cfg(feature = "discord")]
pub mod discord;
pub mod http;
pub mod llm;
#[cfg(feature = "slack")]
pub mod slack;
#[cfg(feature = "telegram")]
pub mod telegram;
#[cfg(feature = "ws")]
pub mod ws;
