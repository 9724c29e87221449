//! `web_fetch`: HTTP(S) GET with size and time caps, HTML → Markdown/text, SSRF guard
//! (every hop checked, DNS resolved once and the connection pinned to the checked addresses).

pub mod html;
pub mod ssrf;

use std::error::Error as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::output::ToolOutput;
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;
use crate::util::{now_ms, num_to_usize, parse_args, truncate_chars};

use ssrf::{check_host, is_trusted, GuardedResolver, SsrfBlocked, SsrfPolicy};

/// `tools.web.fetch.*`.
#[derive(Debug, Clone)]
pub struct WebFetchConfig {
    pub enabled: bool,
    /// Default `maxChars`.
    pub max_chars: usize,
    /// Hard cap for `maxChars`.
    pub max_chars_cap: usize,
    pub max_response_bytes: usize,
    pub timeout: Duration,
    pub max_redirects: usize,
    pub user_agent: String,
    pub ssrf: SsrfPolicy,
}

impl Default for WebFetchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_chars: 20_000,
            max_chars_cap: 20_000,
            max_response_bytes: 750_000,
            timeout: Duration::from_secs(30),
            max_redirects: 3,
            user_agent: concat!(
                "Mozilla/5.0 (compatible; pincer/",
                env!("CARGO_PKG_VERSION"),
                ")"
            )
            .to_owned(),
            ssrf: SsrfPolicy::default(),
        }
    }
}

pub struct WebFetchTool {
    spec: ToolSpec,
    config: WebFetchConfig,
    /// (guarded, trusted) clients, built on first use.
    clients: OnceLock<Result<(reqwest::Client, reqwest::Client), String>>,
}

impl WebFetchTool {
    pub fn new(config: WebFetchConfig) -> Self {
        Self {
            spec: builtin_spec("web_fetch")
                .unwrap_or_else(|| ToolSpec::new("web_fetch", "", json!({"type": "object"}))),
            config,
            clients: OnceLock::new(),
        }
    }

    fn build_client(&self, trusted: bool) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .redirect(reqwest::redirect::Policy::none())
            // Proxies would resolve names themselves, bypassing the guard.
            .no_proxy()
            .connect_timeout(self.config.timeout.min(Duration::from_secs(10)))
            .user_agent(self.config.user_agent.clone())
            .dns_resolver(Arc::new(GuardedResolver {
                policy: self.config.ssrf.clone(),
                trusted,
            }))
            .build()
            .map_err(|e| e.to_string())
    }

    fn clients(&self) -> Result<&(reqwest::Client, reqwest::Client), ToolError> {
        self.clients
            .get_or_init(|| Ok((self.build_client(false)?, self.build_client(true)?)))
            .as_ref()
            .map_err(|e| ToolError::Unavailable(format!("HTTP client unavailable: {e}")))
    }
}

impl Default for WebFetchTool {
    fn default() -> Self {
        Self::new(WebFetchConfig::default())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchArgs {
    url: String,
    extract_mode: Option<String>,
    max_chars: Option<f64>,
}

/// rustls with ring (the workspace's one crypto backend) and the platform's verifier.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_platform_verifier()
        .map_err(|e| e.to_string())?
        .with_no_client_auth())
}

fn map_reqwest_error(e: &reqwest::Error, url: &str) -> ToolError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(blocked) = s.downcast_ref::<SsrfBlocked>() {
            return ToolError::Blocked(blocked.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        ToolError::Timeout(format!("Fetching {url} timed out."))
    } else if e.is_connect() {
        ToolError::Failed(format!("Could not connect to {url}: {e}"))
    } else {
        ToolError::Failed(format!("Fetching {url} failed: {e}"))
    }
}

fn check_url(url: &url::Url, policy: &SsrfPolicy) -> Result<bool, ToolError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolError::Blocked(format!(
            "Only http and https URLs can be fetched (got {}).",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ToolError::Blocked(
            "URLs with embedded credentials are not fetched.".into(),
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| ToolError::Blocked("URL has no host.".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    check_host(policy, host, port).map_err(|b| ToolError::Blocked(b.to_string()))?;
    Ok(is_trusted(policy, host, port))
}

#[async_trait]
impl Tool for WebFetchTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let a: FetchArgs = parse_args("web_fetch", args)?;
        let cfg = &self.config;
        if !cfg.enabled {
            return Err(ToolError::Unavailable(
                "web_fetch is disabled (tools.web.fetch.enabled).".into(),
            ));
        }
        let markdown = a.extract_mode.as_deref() != Some("text");
        let max_chars = a
            .max_chars
            .map_or(cfg.max_chars, num_to_usize)
            .clamp(100, cfg.max_chars_cap.max(100));
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + cfg.timeout;
        let mut url = url::Url::parse(a.url.trim())
            .map_err(|e| ToolError::invalid("web_fetch", format!("url is not a valid URL: {e}")))?;
        let (guarded, trusted_client) = self.clients()?;
        let mut hops = 0usize;
        let mut response = loop {
            let trusted = check_url(&url, &cfg.ssrf)?;
            let client = if trusted { trusted_client } else { guarded };
            let send = client
                .get(url.clone())
                .header(
                    reqwest::header::ACCEPT,
                    "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.8",
                )
                .header(reqwest::header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")
                .send();
            let resp = tokio::time::timeout_at(deadline, send)
                .await
                .map_err(|_| {
                    ToolError::Timeout(format!(
                        "Fetching {url} timed out after {}s.",
                        cfg.timeout.as_secs()
                    ))
                })?
                .map_err(|e| map_reqwest_error(&e, url.as_str()))?;
            if resp.status().is_redirection() {
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        ToolError::Failed(format!("{url} redirected without a Location header."))
                    })?;
                let next = url.join(location).map_err(|e| {
                    ToolError::Failed(format!("Bad redirect target '{location}': {e}"))
                })?;
                hops += 1;
                if hops > cfg.max_redirects {
                    return Err(ToolError::Failed(format!(
                        "Too many redirects (more than {}).",
                        cfg.max_redirects
                    )));
                }
                url = next;
                continue;
            }
            break resp;
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut body: Vec<u8> = Vec::new();
        let mut body_truncated = false;
        loop {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .map_err(|_| {
                    ToolError::Timeout(format!(
                        "Reading {url} timed out after {}s.",
                        cfg.timeout.as_secs()
                    ))
                })?
                .map_err(|e| map_reqwest_error(&e, url.as_str()))?;
            let Some(chunk) = chunk else { break };
            let room = cfg.max_response_bytes.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                body_truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let ct = content_type.to_ascii_lowercase();
        let is_html = ct.contains("html") || (ct.is_empty() && body.starts_with(b"<"));
        let is_text = is_html
            || ct.starts_with("text/")
            || ct.contains("json")
            || ct.contains("xml")
            || ct.contains("javascript")
            || ct.is_empty();
        if !is_text {
            return Err(ToolError::Failed(format!(
                "{url} returned {content_type}, which web_fetch cannot extract as text."
            )));
        }
        let raw = String::from_utf8_lossy(&body);
        let (title, extracted, extractor) = if is_html {
            let e = html::convert(&raw, markdown, Some(&url));
            (e.title, e.text, "html")
        } else {
            (None, raw.into_owned(), "raw")
        };
        let raw_length = extracted.chars().count();
        let (text, cut) = truncate_chars(&extracted, max_chars);
        let result = json!({
            "url": a.url,
            "finalUrl": url.as_str(),
            "status": status,
            "contentType": content_type,
            "title": title,
            "extractMode": if markdown { "markdown" } else { "text" },
            "extractor": extractor,
            "truncated": cut || body_truncated,
            "length": text.chars().count(),
            "rawLength": raw_length,
            "fetchedAt": now_ms(),
            "tookMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "text": text,
        });
        Ok(ToolOutput::json(result)
            .with_error(status >= 400)
            .with_meta(url.host_str().unwrap_or_default().to_owned()))
    }
}
