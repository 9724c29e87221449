//! Local fake servers that speak real wire protocols, for tests in any crate and for
//! benchmarks. Everything binds `127.0.0.1` only.
//!
//! - [`http`]: a small HTTP/1.1 server framework with byte-level control of responses
//!   (chunk boundaries, delays, hang-ups, stalls) and connection counters. Platform fakes
//!   implement its [`http::Handler`].
//! - [`llm`]: a scripted fake LLM provider (OpenAI Chat Completions and Responses,
//!   Anthropic Messages, Ollama), see [`llm::FakeLlm`].
//!
//! Chat-platform fakes (Telegram, Discord, Slack) will live beside these as their own modules.

pub mod http;
pub mod llm;
