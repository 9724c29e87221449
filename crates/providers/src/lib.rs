//! LLM provider clients for Pincer: one module per wire API (`openai-completions`,
//! `openai-responses`, `anthropic-messages`, `ollama`), incremental SSE/NDJSON parsing, a
//! provider-neutral message model that matches the transcript, model-ref resolution against
//! configured and environment providers, retries with the shared backoff, fallback chains,
//! idle/overall timeouts and cancellation that closes the HTTP connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use pincer_providers::*;
//!
//! let registry = ProviderRegistry::new(&Default::default(), &ProcessEnv);
//! let chain = registry.resolve_chain("anthropic/claude-sonnet-4-6", &["openrouter/openai/gpt-5".into()])?;
//! let client = ProviderClient::new()?;
//! let request = CompletionRequest { messages: vec![Message::user("hi")], ..Default::default() };
//! let mut stream = client.stream_chain(&chain, &request, &CallOptions::default());
//! let mut turn = TurnCollector::new();
//! while let Some(event) = stream.next().await {
//!     if let ProviderEvent::TextDelta { text } = &event {
//!         print!("{text}");
//!     }
//!     turn.push(&event);
//! }
//! let message = turn.into_message(); // transcript-shaped assistant message
//! # let _ = message; Ok(()) }
//! ```

mod api;
mod client;
pub mod config;
pub mod error;
pub mod event;
pub mod model;
pub mod ndjson;
pub mod registry;
pub mod sse;

#[doc(hidden)]
pub use client::decode_for_bench;
pub use client::{CallOptions, ClientBuildError, ProviderClient};
pub use config::{
    ApiKey, ApiKind, EnvSource, InputModality, ModelConfig, ModelCost, ProcessEnv, ProviderConfig,
};
pub use error::{ErrorDetail, ErrorKind, ProviderError};
pub use event::{collect, EventStream, ProviderEvent, TurnCollector};
pub use model::{
    AssistantMessage, CompletionRequest, ContentBlock, Cost, Message, StopReason, ThinkingLevel,
    ThinkingLevelExt, ToolResultMessage, ToolSpec, Usage, UserContent, UserMessage,
};
pub use pincer_backoff::{Backoff, RetryPolicy};
pub use registry::{
    ModelInfo, ModelRef, ProviderRegistry, ResolveError, ResolvedModel, NO_PROVIDER_HELP,
};
pub use tokio_util::sync::CancellationToken;
