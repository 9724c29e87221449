//! The Pincer Control UI and WebChat: plain ES modules and web components in `web/`,
//! embedded in the binary by `build.rs` (precompressed with gzip and brotli), and the HTTP
//! logic that serves them: content negotiation, ETags, cache rules, SPA fallback and the
//! security headers (strict CSP with Trusted Types, no inline script or style).
//!
//! The crate knows nothing of the gateway: [`ControlUi::respond`] maps a request (method,
//! path, headers) to a response or `None` (not a UI path). The gateway mounts it at
//! `gateway.controlUi.basePath` and serves `<base>/control-ui-config.json` itself.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

/// One embedded file and its precompressed variants.
#[derive(Debug)]
pub struct Asset {
    /// Path below `assets/<version>/` (or `index.html`).
    pub path: &'static str,
    pub content_type: &'static str,
    /// Content hash (without quotes or encoding suffix).
    pub etag: &'static str,
    pub identity: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
}

mod generated {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

pub use generated::{ASSETS, ASSET_VERSION};

/// The build id the UI sends as `client.buildId`; equal to the gateway's
/// `hello-ok.server.buildId` when both come from the same build.
pub const BUILD_ID: &str = env!("PINCER_UI_BUILD_ID");

/// The file the gateway serves itself (behind HTTP auth), relative to the base path.
pub const CONFIG_JSON: &str = "/control-ui-config.json";

/// Content encodings we can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// An invalid `gateway.controlUi.basePath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePathError(pub String);

impl std::fmt::Display for BasePathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gateway.controlUi.basePath {:?}: use a path like \"/ui\" (letters, digits, '-', '_', '.', '~' and '/' only)",
            self.0
        )
    }
}

impl std::error::Error for BasePathError {}

/// `""`, `"/"` → `""` (root); `"ui"`, `"/ui/"` → `"/ui"`.
pub fn normalize_base_path(raw: &str) -> Result<String, BasePathError> {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/'))
        && !trimmed
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if ok {
        Ok(format!("/{trimmed}"))
    } else {
        Err(BasePathError(raw.to_string()))
    }
}

/// The UI mounted at one base path.
#[derive(Debug, Clone)]
pub struct ControlUi {
    base: String,
}

/// `index.html` for one base path.
enum Index {
    Root,
    Rendered { body: Bytes, etag: String },
}

impl ControlUi {
    /// `base_path` as in the config (normalised here).
    pub fn new(base_path: &str) -> Result<ControlUi, BasePathError> {
        Ok(ControlUi {
            base: normalize_base_path(base_path)?,
        })
    }

    /// The normalised base path (`""` for root).
    pub fn base_path(&self) -> &str {
        &self.base
    }

    /// Whether `path` is `<base>/control-ui-config.json`.
    pub fn is_config_json(&self, path: &str) -> bool {
        path.strip_prefix(self.base.as_str()) == Some(CONFIG_JSON)
    }

    fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.base.is_empty() {
            return Some(path);
        }
        let rest = path.strip_prefix(self.base.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    fn index(&self) -> Index {
        if self.base.is_empty() {
            return Index::Root;
        }
        let body = generated::INDEX_TEMPLATE.replace("{{BASE}}", &self.base);
        let etag = format!("{}-{:016x}", generated::ROOT_INDEX.etag, fnv1a(&self.base));
        Index::Rendered {
            body: Bytes::from(body),
            etag,
        }
    }

    /// The response for a UI path, `None` when the path is not the UI's (outside the base
    /// path, or a method other than GET/HEAD). `host` is the request's `Host` header (for
    /// the CSP's WebSocket sources).
    pub fn respond(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Response<Bytes>> {
        let head = match *method {
            Method::GET => false,
            Method::HEAD => true,
            _ => return None,
        };
        let rel = self.relative(path)?;
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if let Some(rest) = rel.strip_prefix("/assets/") {
            let asset = rest
                .strip_prefix(ASSET_VERSION)
                .and_then(|r| r.strip_prefix('/'))
                .and_then(find_asset);
            let mut resp = match asset {
                Some(a) => serve_asset(a, headers, head, CacheRule::Immutable),
                // A stale or unknown asset URL must not be answered with HTML.
                None => plain(StatusCode::NOT_FOUND, "not found\n", head),
            };
            security_headers(resp.headers_mut(), host);
            return Some(resp);
        }
        // Everything else under the base path is the single-page app.
        let mut resp = match self.index() {
            Index::Root => {
                serve_asset(&generated::ROOT_INDEX, headers, head, CacheRule::Revalidate)
            }
            Index::Rendered { body, etag } => serve_bytes(
                body,
                "text/html; charset=utf-8",
                &etag,
                headers,
                head,
                CacheRule::Revalidate,
            ),
        };
        security_headers(resp.headers_mut(), host);
        Some(resp)
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The embedded asset at `path` (below `assets/<version>/`).
pub fn find_asset(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|a| a.path.cmp(path))
        .ok()
        .and_then(|i| ASSETS.get(i))
}

/// Bytes on the wire for the whole UI (index + every asset) with the best encoding.
pub fn total_compressed_bytes() -> usize {
    std::iter::once(&generated::ROOT_INDEX)
        .chain(ASSETS.iter())
        .map(|a| {
            a.brotli
                .or(a.gzip)
                .map(<[u8]>::len)
                .unwrap_or(a.identity.len())
        })
        .sum()
}

#[derive(Clone, Copy)]
enum CacheRule {
    /// Hashed URL: cache forever.
    Immutable,
    /// The entry document: always revalidate (ETag).
    Revalidate,
}

impl CacheRule {
    fn header(self) -> &'static str {
        match self {
            CacheRule::Immutable => "public, max-age=31536000, immutable",
            CacheRule::Revalidate => "no-cache",
        }
    }
}

/// The encodings the client accepts (`Accept-Encoding`, with q-values), best first among
/// what this asset has.
pub fn negotiate(headers: &HeaderMap, has_gzip: bool, has_brotli: bool) -> Encoding {
    let mut br = None;
    let mut gz = None;
    let mut star = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            for p in parts {
                if let Some(v) = p.trim().strip_prefix("q=") {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            match name.as_str() {
                "br" => br = Some(q),
                "gzip" | "x-gzip" => gz = Some(q),
                "*" => star = Some(q),
                _ => {}
            }
        }
    }
    let accepts = |explicit: Option<f32>| explicit.or(star).is_some_and(|q| q > 0.0);
    if has_brotli && accepts(br) {
        Encoding::Brotli
    } else if has_gzip && accepts(gz) {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// `If-None-Match` matches `etag` (weak comparison, lists and `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn serve_asset(
    asset: &'static Asset,
    headers: &HeaderMap,
    head: bool,
    cache: CacheRule,
) -> Response<Bytes> {
    let encoding = negotiate(headers, asset.gzip.is_some(), asset.brotli.is_some());
    let body: &'static [u8] = match encoding {
        Encoding::Brotli => asset.brotli.unwrap_or(asset.identity),
        Encoding::Gzip => asset.gzip.unwrap_or(asset.identity),
        Encoding::Identity => asset.identity,
    };
    let etag = match encoding.token() {
        Some(t) => format!("\"{}-{t}\"", asset.etag),
        None => format!("\"{}\"", asset.etag),
    };
    finish(
        Bytes::from_static(body),
        asset.content_type,
        &etag,
        encoding,
        headers,
        head,
        cache,
    )
}

fn serve_bytes(
    body: Bytes,
    content_type: &'static str,
    etag: &str,
    headers: &HeaderMap,
    head: bool,
    cache: CacheRule,
) -> Response<Bytes> {
    finish(
        body,
        content_type,
        &format!("\"{etag}\""),
        Encoding::Identity,
        headers,
        head,
        cache,
    )
}

fn finish(
    body: Bytes,
    content_type: &'static str,
    etag: &str,
    encoding: Encoding,
    req_headers: &HeaderMap,
    head: bool,
    cache: CacheRule,
) -> Response<Bytes> {
    let fresh = not_modified(req_headers, etag);
    let len = body.len();
    let mut resp = Response::new(if head || fresh { Bytes::new() } else { body });
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache.header()),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if fresh {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return resp;
    }
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(token) = encoding.token() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

fn plain(status: StatusCode, text: &'static str, head: bool) -> Response<Bytes> {
    let mut resp = Response::new(if head {
        Bytes::new()
    } else {
        Bytes::from_static(text.as_bytes())
    });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A `Host` header that is safe to repeat in the CSP (`host[:port]`, IPv6 in brackets).
fn csp_host(host: &str) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then_some(host)
}

/// The Content-Security-Policy: only our own scripts, styles and images; no inline code;
/// DOM XSS sinks locked by Trusted Types (no policy may be created, so `innerHTML` and
/// friends throw); WebSockets only to this host; never framed.
pub fn content_security_policy(host: Option<&str>) -> String {
    let ws = host
        .and_then(csp_host)
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         font-src 'self'; connect-src 'self'{ws}; manifest-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'; object-src 'none'; \
         require-trusted-types-for 'script'; trusted-types 'none'"
    )
}

/// Security headers for every UI response.
pub fn security_headers(h: &mut HeaderMap, host: Option<&str>) {
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(host)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
}

#[cfg(test)]
mod tests;
