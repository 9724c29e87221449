//! The HTTP side: one shared reqwest client, the per-call state machine (connect, retry
//! with backoff, stream, decode, idle/overall timeouts, cancellation) and the fallback chain.
//!
//! # Retry and failover rules (runtime.md §8.1 "Failover", §4.5 "Model recovery")
//!
//! 1. **Same-model recovery.** `rate_limit` (429, rate-limit events) is retried with
//!    [`CallOptions::rate_limit_retry`] (default 10 attempts); `server` (5xx, 529,
//!    overloaded/server error events) and `network` (refused/reset connections, streams cut
//!    before the end marker) with [`CallOptions::transient_retry`] (default ≤ 8 retries within
//!    90 s). The wait is `max(backoff, retry-after)`; a provider asking for more than the
//!    policy's `max_retry_after` is not waited for (we fail over instead). `auth`, `billing`,
//!    `model_not_found`, `timeout`, `malformed`, `context_length`, `refusal` and
//!    `invalid_request` are never retried on the same model.
//! 2. **Fallback.** When a model ends with a failover-class error
//!    ([`ErrorKind::is_failover`]: rate_limit, timeout, auth, billing, server, network,
//!    malformed, model_not_found) the chain moves to the next model. `context_length` is
//!    surfaced (the agent compacts and retries), as are `refusal`, `invalid_request` and
//!    `cancelled`.
//! 3. **Never after output.** Once a delta reached the consumer, nothing is retried or failed
//!    over: the error is surfaced and the agent decides.
//!
//! Auth-profile rotation (step 2 of the spec) belongs to the caller: it resolves one
//! [`ResolvedModel`] per profile and puts them in the chain.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use pincer_backoff::{parse_retry_after, parse_retry_after_ms, Backoff, RetryPolicy};
use tokio_util::sync::CancellationToken;

use crate::api::{self, Decoder, Flow, Framing, WireError, WireRequest};
use crate::error::{ErrorKind, ProviderError};
use crate::event::{EventStream, ProviderEvent};
use crate::model::CompletionRequest;
use crate::ndjson::NdjsonParser;
use crate::registry::ResolvedModel;
use crate::sse::SseParser;

/// Error bodies are read up to this many bytes (enough for any provider's error JSON).
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// After the end marker, unread trailing bytes are drained for at most this long so the
/// connection can go back to the pool.
const DRAIN_BUDGET: Duration = Duration::from_millis(250);

/// Per-call knobs. `Default` follows runtime.md §4.5.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Overrides the model's idle timeout (no bytes for this long → `timeout`).
    pub idle_timeout: Option<Duration>,
    /// Bound on the whole call (all attempts); `None` = only the idle timeout applies.
    pub request_timeout: Option<Duration>,
    /// Retries after `rate_limit`.
    pub rate_limit_retry: RetryPolicy,
    /// Retries after `server` / `network` failures.
    pub transient_retry: RetryPolicy,
    /// Cancels the call: the HTTP connection is closed and the stream ends with a
    /// `cancelled` error.
    pub cancel: CancellationToken,
}

impl Default for CallOptions {
    fn default() -> Self {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        Self {
            idle_timeout: None,
            request_timeout: Some(Duration::from_secs(30 * 60)),
            rate_limit_retry: RetryPolicy::new(backoff, 10)
                .with_max_retry_after(Duration::from_secs(60)),
            transient_retry: RetryPolicy::new(backoff, 9).with_max_elapsed(Duration::from_secs(90)),
            cancel: CancellationToken::new(),
        }
    }
}

/// Building the HTTP client failed (TLS set-up).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client construction failed: {0}")]
    Http(#[from] reqwest::Error),
}

fn platform_client() -> Result<reqwest::Client, ClientBuildError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("pincer/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Calls models. Cheap to clone; share one per process so connections are pooled.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    http: Arc<OnceLock<reqwest::Client>>,
}

impl ProviderClient {
    /// A client with rustls (ring) and the platform's certificate verifier.
    pub fn new() -> Result<Self, ClientBuildError> {
        Ok(Self::from_reqwest(platform_client()?))
    }

    /// [`ProviderClient::new`] built on first use: the platform verifier reads and parses the
    /// system's trust store (some 150 certificate files) when it is made, which a gateway
    /// that has not called a model yet should not pay for at start, in time or memory. A
    /// TLS set-up failure then is logged and a default HTTP client used instead.
    pub fn lazy() -> Self {
        Self {
            http: Arc::new(OnceLock::new()),
        }
    }

    /// Wraps an existing reqwest client (custom proxies, tests).
    pub fn from_reqwest(http: reqwest::Client) -> Self {
        Self {
            http: Arc::new(OnceLock::from(http)),
        }
    }

    /// Builds a [`ProviderClient::lazy`] client on a blocking thread if it is not built yet:
    /// reading the trust store takes milliseconds of file I/O that must not stall an async
    /// worker. Callers about to stream await this first.
    pub async fn ready(&self) {
        if self.http.get().is_some() {
            return;
        }
        let this = self.clone();
        if tokio::task::spawn_blocking(move || {
            this.http();
        })
        .await
        .is_err()
        {
            // The blocking pool is shutting down; `http()` builds it inline if still needed.
            tracing::debug!("provider client set-up did not run on the blocking pool");
        }
    }

    /// The underlying HTTP client (shares the connection pool; e.g. for model listing).
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            platform_client().unwrap_or_else(|e| {
                tracing::error!(error = %e, "TLS set-up for model providers failed; using a default HTTP client");
                reqwest::Client::default()
            })
        })
    }

    /// Streams one call to one model (retries included, no fallback).
    pub fn stream(
        &self,
        model: &ResolvedModel,
        request: &CompletionRequest,
        options: &CallOptions,
    ) -> EventStream {
        single_model_stream(
            self.http().clone(),
            model.clone(),
            request,
            options.clone(),
            None,
        )
    }

    /// Streams one call through a fallback chain (`primary`, then `fallbacks` in order).
    /// Each model emits a `ModelStart`; a move to the next model carries the error that
    /// caused it. An empty chain yields one `invalid_request` error.
    pub fn stream_chain(
        &self,
        chain: &[ResolvedModel],
        request: &CompletionRequest,
        options: &CallOptions,
    ) -> EventStream {
        self.stream_chain_shared(chain, Arc::new(request.clone()), options)
    }

    /// [`stream_chain`](Self::stream_chain) for a request the caller already holds in an
    /// `Arc` (no copy of the prompt, the messages and the tool schemas per call).
    pub fn stream_chain_shared(
        &self,
        chain: &[ResolvedModel],
        request: Arc<CompletionRequest>,
        options: &CallOptions,
    ) -> EventStream {
        let state = ChainState {
            http: self.http().clone(),
            chain: chain.to_vec().into(),
            request,
            options: options.clone(),
            current: None,
            output_seen: false,
            last_error: None,
            started: false,
        };
        Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                let event = state.next_event().await?;
                Some((event, state))
            },
        ))
    }
}

struct ChainState {
    http: reqwest::Client,
    chain: VecDeque<ResolvedModel>,
    request: Arc<CompletionRequest>,
    options: CallOptions,
    current: Option<EventStream>,
    output_seen: bool,
    last_error: Option<ProviderError>,
    started: bool,
}

impl ChainState {
    async fn next_event(&mut self) -> Option<ProviderEvent> {
        loop {
            if self.current.is_none() {
                let Some(model) = self.chain.pop_front() else {
                    if self.started {
                        return None;
                    }
                    self.started = true;
                    return Some(ProviderEvent::Error(ProviderError::new(
                        ErrorKind::InvalidRequest,
                        "",
                        "",
                        "no model to call: the model chain is empty",
                    )));
                };
                self.started = true;
                let from = self.last_error.take().map(Box::new);
                self.current = Some(single_model_stream(
                    self.http.clone(),
                    model,
                    &self.request,
                    self.options.clone(),
                    from,
                ));
            }
            let current = self.current.as_mut()?;
            match current.next().await {
                Some(ProviderEvent::Error(error))
                    if !self.output_seen && error.kind.is_failover() && !self.chain.is_empty() =>
                {
                    tracing::info!(provider = %error.provider, model = %error.model, kind = %error.kind, "model failed; falling back");
                    self.current = None;
                    self.last_error = Some(error);
                }
                Some(event) => {
                    self.output_seen |= event.is_output();
                    return Some(event);
                }
                None => {
                    self.chain.clear();
                    self.current = None;
                    return None;
                }
            }
        }
    }
}

fn single_model_stream(
    http: reqwest::Client,
    model: ResolvedModel,
    request: &CompletionRequest,
    options: CallOptions,
    fallback_from: Option<Box<ProviderError>>,
) -> EventStream {
    let mut queue = VecDeque::new();
    queue.push_back(ProviderEvent::ModelStart {
        provider: model.provider.clone(),
        model: model.model.clone(),
        api: model.api.clone(),
        fallback_from,
    });
    let (wire, phase) = match api::build_request(&model, request) {
        Ok(wire) => (Some(wire), Phase::Connect),
        Err(error) => {
            queue.push_back(ProviderEvent::Error(to_provider_error(&model, error, None)));
            (None, Phase::Done)
        }
    };
    let idle = options.idle_timeout.unwrap_or(model.idle_timeout);
    let body = wire
        .as_ref()
        .map(|w| Bytes::from(w.body.clone()))
        .unwrap_or_default();
    let state = CallState {
        http,
        wire,
        body,
        idle,
        deadline: options.request_timeout.map(|t| Instant::now() + t),
        started: Instant::now(),
        options,
        model,
        queue,
        phase,
        rate_limit_failures: 0,
        transient_failures: 0,
        output_emitted: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            let event = state.next_event().await?;
            Some((event, state))
        },
    ))
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

enum Framer {
    Sse(SseParser, Vec<crate::sse::SseEvent>),
    Ndjson(NdjsonParser, Vec<String>),
}

struct Active {
    body: ByteStream,
    framer: Framer,
    decoder: Box<dyn Decoder>,
}

enum Phase {
    Connect,
    Backoff(Duration),
    Streaming(Box<Active>),
    Draining(ByteStream, Instant),
    Done,
}

struct CallState {
    http: reqwest::Client,
    model: ResolvedModel,
    wire: Option<WireRequest>,
    body: Bytes,
    options: CallOptions,
    idle: Duration,
    deadline: Option<Instant>,
    started: Instant,
    queue: VecDeque<ProviderEvent>,
    phase: Phase,
    rate_limit_failures: u32,
    transient_failures: u32,
    output_emitted: bool,
}

/// The bounds of every wait (owned, so no borrow of the call state lives across awaits).
struct Limits {
    cancel: CancellationToken,
    idle: Duration,
    deadline: Option<Instant>,
}

impl Limits {
    async fn guard<F: std::future::Future>(self, future: F) -> Wait<F::Output> {
        let now = Instant::now();
        let (limit, is_deadline) = match self.deadline {
            Some(deadline) if deadline.saturating_duration_since(now) < self.idle => {
                (deadline.saturating_duration_since(now), true)
            }
            _ => (self.idle, false),
        };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Wait::Cancelled,
            result = tokio::time::timeout(limit, future) => match result {
                Ok(value) => Wait::Ready(value),
                Err(_) if is_deadline => Wait::Deadline,
                Err(_) => Wait::IdleTimeout,
            },
        }
    }
}

/// What stopped a wait.
enum Wait<T> {
    Ready(T),
    Cancelled,
    IdleTimeout,
    Deadline,
}

impl CallState {
    async fn next_event(&mut self) -> Option<ProviderEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                self.output_emitted |= event.is_output();
                return Some(event);
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Connect => match self.connect().await {
                    Ok(active) => self.phase = Phase::Streaming(Box::new(active)),
                    Err(error) => self.fail(error),
                },
                Phase::Backoff(delay) => {
                    let cancel = self.options.cancel.clone();
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => self.fail(self.error(ErrorKind::Cancelled, "the call was cancelled")),
                        _ = tokio::time::sleep(delay) => self.phase = Phase::Connect,
                    }
                }
                Phase::Streaming(mut active) => match self.read(&mut active).await {
                    Ok(Flow::Continue) => self.phase = Phase::Streaming(active),
                    Ok(Flow::Finished) => {
                        self.phase = Phase::Draining(active.body, Instant::now() + DRAIN_BUDGET)
                    }
                    Err(error) => self.fail(error),
                },
                Phase::Draining(mut body, until) => {
                    // Read what is left (usually just the chunked terminator) so the
                    // connection is reusable; give up quickly otherwise.
                    let cancel = self.options.cancel.clone();
                    let left = until.saturating_duration_since(Instant::now());
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => {}
                        next = tokio::time::timeout(left, body.next()) => {
                            if let Ok(Some(Ok(_))) = next {
                                self.phase = Phase::Draining(body, until);
                            }
                        }
                    }
                }
            }
        }
    }

    fn error(&self, kind: ErrorKind, message: impl AsRef<str>) -> ProviderError {
        ProviderError::new(kind, &self.model.provider, &self.model.model, message)
            .redact(self.model.api_key.as_ref().map(|k| k.expose()))
    }

    /// Awaits `future` under cancellation, the idle timeout and the overall deadline.
    fn guarded<F: std::future::Future>(
        &self,
        future: F,
    ) -> impl std::future::Future<Output = Wait<F::Output>> {
        let limits = Limits {
            cancel: self.options.cancel.clone(),
            idle: self.idle,
            deadline: self.deadline,
        };
        limits.guard(future)
    }

    fn wait_error(&self, wait: &Wait<()>) -> ProviderError {
        match wait {
            Wait::Cancelled => self.error(ErrorKind::Cancelled, "the call was cancelled"),
            Wait::Deadline => self.error(
                ErrorKind::Timeout,
                format!(
                    "the request exceeded its overall timeout of {}s",
                    self.options.request_timeout.unwrap_or_default().as_secs()
                ),
            ),
            _ => self.error(
                ErrorKind::Timeout,
                format!(
                    "no data from the provider for {}s (idle timeout)",
                    self.idle.as_secs_f64()
                ),
            ),
        }
    }

    async fn connect(&mut self) -> Result<Active, ProviderError> {
        let Some(wire) = self.wire.as_ref() else {
            return Err(self.error(ErrorKind::InvalidRequest, "no request"));
        };
        let mut builder = self.http.post(&wire.url).body(self.body.clone());
        for (name, value) in &wire.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = match self.guarded(builder.send()).await {
            Wait::Ready(Ok(response)) => response,
            Wait::Ready(Err(error)) => return Err(self.reqwest_error(&error)),
            Wait::Cancelled => return Err(self.wait_error(&Wait::Cancelled)),
            Wait::Deadline => return Err(self.wait_error(&Wait::Deadline)),
            Wait::IdleTimeout => return Err(self.wait_error(&Wait::IdleTimeout)),
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let framing = api::framing(&self.model.api);
        let mut body: ByteStream = Box::pin(response.bytes_stream());
        if status >= 400 {
            let bytes = self.read_bounded(&mut body).await?;
            let wire = api::http_error(status, &bytes);
            return Err(
                to_provider_error(&self.model, wire, Some(status)).with_retry_after(retry_after)
            );
        }
        // A JSON body where a stream was expected is an error object (or garbage).
        if framing == Framing::Sse && content_type.starts_with("application/json") {
            let bytes = self.read_bounded(&mut body).await?;
            let wire = match serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .as_ref()
                .and_then(api::extract_error)
            {
                Some((error_type, message)) => {
                    WireError::reported(error_type, message, ErrorKind::Server)
                }
                None => WireError::malformed(format!(
                    "expected an event stream, got JSON: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )),
            };
            return Err(to_provider_error(&self.model, wire, None));
        }
        let framer = match framing {
            Framing::Sse => Framer::Sse(SseParser::new(), Vec::new()),
            Framing::Ndjson => Framer::Ndjson(NdjsonParser::new(), Vec::new()),
        };
        Ok(Active {
            body,
            framer,
            decoder: api::decoder(&self.model.api),
        })
    }

    async fn read_bounded(&mut self, body: &mut ByteStream) -> Result<Vec<u8>, ProviderError> {
        let mut out = Vec::new();
        loop {
            match self.guarded(body.next()).await {
                Wait::Ready(Some(Ok(chunk))) => {
                    let room = ERROR_BODY_LIMIT.saturating_sub(out.len());
                    out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if out.len() >= ERROR_BODY_LIMIT {
                        return Ok(out);
                    }
                }
                // A cut error body still classifies by status.
                Wait::Ready(None | Some(Err(_))) => return Ok(out),
                Wait::Cancelled => return Err(self.wait_error(&Wait::Cancelled)),
                Wait::Deadline => return Err(self.wait_error(&Wait::Deadline)),
                Wait::IdleTimeout => return Ok(out),
            }
        }
    }

    async fn read(&mut self, active: &mut Active) -> Result<Flow, ProviderError> {
        let next = match self.guarded(active.body.next()).await {
            Wait::Ready(next) => next,
            Wait::Cancelled => return Err(self.wait_error(&Wait::Cancelled)),
            Wait::Deadline => return Err(self.wait_error(&Wait::Deadline)),
            Wait::IdleTimeout => return Err(self.wait_error(&Wait::IdleTimeout)),
        };
        let mut events = Vec::new();
        let flow = match next {
            Some(Ok(chunk)) => decode_chunk(active, &chunk, &mut events),
            Some(Err(error)) => Err(WireError::new(
                ErrorKind::Network,
                format!("connection lost mid-stream: {}", error_chain(&error)),
            )),
            None => decode_eof(active, &mut events),
        };
        self.queue.extend(events);
        flow.map_err(|wire| to_provider_error(&self.model, wire, None))
    }

    fn reqwest_error(&self, error: &reqwest::Error) -> ProviderError {
        let kind = if error.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Network
        };
        self.error(kind, format!("request failed: {}", error_chain(error)))
    }

    /// Records a failure: schedules a retry when allowed, else ends the stream with it.
    fn fail(&mut self, error: ProviderError) {
        let output_pending = self.output_emitted || self.queue.iter().any(ProviderEvent::is_output);
        if !output_pending && error.kind.is_retryable() {
            let (failures, policy) = if error.kind == ErrorKind::RateLimit {
                self.rate_limit_failures += 1;
                (self.rate_limit_failures, self.options.rate_limit_retry)
            } else {
                self.transient_failures += 1;
                (self.transient_failures, self.options.transient_retry)
            };
            let elapsed = self.started.elapsed();
            let delay = policy
                .next_delay(failures, elapsed, error.retry_after)
                .filter(|delay| {
                    self.deadline
                        .is_none_or(|deadline| Instant::now() + *delay < deadline)
                });
            if let Some(delay) = delay {
                tracing::debug!(
                    provider = %self.model.provider, model = %self.model.model, kind = %error.kind,
                    attempt = failures, delay_ms = delay.as_millis() as u64, "retrying model call"
                );
                self.queue.clear();
                self.queue.push_back(ProviderEvent::Retrying {
                    attempt: failures,
                    max_attempts: policy.max_attempts.saturating_sub(1),
                    delay,
                    error: Box::new(error),
                });
                self.phase = Phase::Backoff(delay);
                return;
            }
        }
        tracing::debug!(provider = %self.model.provider, model = %self.model.model, kind = %error.kind, "model call failed");
        self.queue.push_back(ProviderEvent::Error(error));
        self.phase = Phase::Done;
    }
}

fn decode_chunk(
    active: &mut Active,
    chunk: &[u8],
    out: &mut Vec<ProviderEvent>,
) -> Result<Flow, WireError> {
    match &mut active.framer {
        Framer::Sse(parser, frames) => {
            frames.clear();
            parser.feed(chunk, frames).map_err(WireError::malformed)?;
            for frame in frames.iter() {
                if active.decoder.on_sse(frame, out)? == Flow::Finished {
                    return Ok(Flow::Finished);
                }
            }
        }
        Framer::Ndjson(parser, lines) => {
            lines.clear();
            parser.feed(chunk, lines).map_err(WireError::malformed)?;
            for line in lines.iter() {
                if active.decoder.on_line(line, out)? == Flow::Finished {
                    return Ok(Flow::Finished);
                }
            }
        }
    }
    Ok(Flow::Continue)
}

fn decode_eof(active: &mut Active, out: &mut Vec<ProviderEvent>) -> Result<Flow, WireError> {
    match &mut active.framer {
        Framer::Sse(parser, _) => {
            let truncated = !parser.is_idle();
            parser.finish();
            if truncated {
                return Err(WireError::new(
                    ErrorKind::Network,
                    "the stream ended in the middle of an event",
                ));
            }
        }
        Framer::Ndjson(parser, lines) => {
            lines.clear();
            parser.finish(lines);
            for line in lines.iter() {
                if active.decoder.on_line(line, out)? == Flow::Finished {
                    return Ok(Flow::Finished);
                }
            }
        }
    }
    active.decoder.on_eof(out)
}

fn to_provider_error(model: &ResolvedModel, wire: WireError, status: Option<u16>) -> ProviderError {
    let mut error = ProviderError::new(wire.kind, &model.provider, &model.model, &wire.message)
        .with_type(wire.error_type)
        .redact(model.api_key.as_ref().map(|k| k.expose()));
    error.http_status = status;
    error
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    get("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| get("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now())))
}

/// reqwest's Display hides the cause ("error sending request"); include the source chain.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Decodes a complete response body given as chunks (benchmarks and fuzzing): returns the
/// number of events. Not part of the stable API.
#[doc(hidden)]
pub fn decode_for_bench(api: &crate::config::ApiKind, chunks: &[Bytes]) -> Result<usize, String> {
    let mut active = Active {
        body: Box::pin(futures_util::stream::empty()),
        framer: match api::framing(api) {
            Framing::Sse => Framer::Sse(SseParser::new(), Vec::new()),
            Framing::Ndjson => Framer::Ndjson(NdjsonParser::new(), Vec::new()),
        },
        decoder: api::decoder(api),
    };
    let mut events = Vec::new();
    for chunk in chunks {
        if decode_chunk(&mut active, chunk, &mut events).map_err(|e| e.message)? == Flow::Finished {
            return Ok(events.len());
        }
    }
    decode_eof(&mut active, &mut events).map_err(|e| e.message)?;
    Ok(events.len())
}
