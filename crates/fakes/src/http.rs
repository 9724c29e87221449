//! A deliberately small HTTP/1.1 server for fakes. Built on raw TCP rather than a framework so
//! a fake controls every byte and every failure: chunk boundaries, delays between writes,
//! a connection dropped mid-body, a response that stalls until the client gives up. It
//! counts connections and notices when a client hangs up, so tests can assert that a
//! cancelled call really closed its connection.
//!
//! Platform fakes (LLM providers now; Telegram/Discord/Slack later) implement [`Handler`].

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// Requests with larger headers are answered 431 and the connection closed.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Requests with larger bodies are answered 413 and the connection closed.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string without `?` (empty if none).
    pub query: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    /// First header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// One step of writing a streamed body.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Write these bytes (one chunk of the chunked encoding) and flush.
    Send(Bytes),
    /// Pause (skipped in zero-latency mode). A client hang-up during the pause is noticed.
    Sleep(Duration),
    /// Close the TCP connection abruptly, without finishing the body.
    Hangup,
    /// Write nothing more and keep the connection open until the client closes it.
    Stall,
}

/// A response body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Sent with `content-length`.
    Full(Bytes),
    /// Sent with `transfer-encoding: chunked`, step by step; the terminating chunk follows
    /// the last step unless a `Hangup`/`Stall` came first.
    Chunked(Vec<Step>),
}

/// A response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::full(status, "application/json", value.to_string())
    }

    /// A complete body with a content type.
    pub fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Body::Full(body.into()),
        }
    }

    /// A streamed body.
    pub fn chunked(status: u16, content_type: &str, steps: Vec<Step>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Body::Chunked(steps),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }
}

/// A response now, or one computed asynchronously (long polls).
pub enum Reply {
    Now(Response),
    Later(Pin<Box<dyn Future<Output = Response> + Send>>),
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self::Now(response)
    }
}

/// What a fake does with a request.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> Reply;
}

/// Server knobs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerOptions {
    /// Skip every `Sleep` and write each streamed body in one piece (benchmarks).
    pub zero_latency: bool,
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests parsed.
    pub requests: u64,
    /// TCP connections accepted.
    pub connections_opened: u64,
    /// TCP connections finished (either side).
    pub connections_closed: u64,
    /// Currently open connections.
    pub active_connections: u64,
    /// Responses the client abandoned before their end (it closed the connection).
    pub client_aborts: u64,
}

#[derive(Default)]
struct CounterState {
    requests: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
    client_aborts: AtomicU64,
    changed: Notify,
}

impl CounterState {
    fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> Counters {
        let opened = self.opened.load(Ordering::SeqCst);
        let closed = self.closed.load(Ordering::SeqCst);
        Counters {
            requests: self.requests.load(Ordering::SeqCst),
            connections_opened: opened,
            connections_closed: closed,
            active_connections: opened.saturating_sub(closed),
            client_aborts: self.client_aborts.load(Ordering::SeqCst),
        }
    }
}

/// A running fake server on `127.0.0.1:<ephemeral>`. Dropping it stops the server and
/// closes its connections.
pub struct FakeHttpServer {
    addr: SocketAddr,
    counters: Arc<CounterState>,
    shutdown: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
}

impl FakeHttpServer {
    /// Binds `127.0.0.1:0` and serves `handler`.
    pub async fn start(handler: Arc<dyn Handler>, options: ServerOptions) -> io::Result<Self> {
        Self::bind(
            "127.0.0.1:0"
                .parse()
                .map_err(|_| io::Error::other("bad address"))?,
            handler,
            options,
        )
        .await
    }

    /// Binds a specific loopback address (the standalone binary's `--port`).
    pub async fn bind(
        addr: SocketAddr,
        handler: Arc<dyn Handler>,
        options: ServerOptions,
    ) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "fakes only listen on loopback addresses",
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(CounterState::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept_task = tokio::spawn(accept_loop(
            listener,
            handler,
            options,
            counters.clone(),
            shutdown_rx,
        ));
        Ok(Self {
            addr,
            counters,
            shutdown,
            accept_task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Current counters.
    pub fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    /// Waits until `predicate` holds for the counters, at most `timeout`. Returns whether it
    /// held.
    pub async fn wait_for(&self, predicate: impl Fn(&Counters) -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.counters.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if predicate(&self.counters.snapshot()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return predicate(&self.counters.snapshot());
            }
        }
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.accept_task.abort();
    }
}

impl Drop for FakeHttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    options: ServerOptions,
    counters: Arc<CounterState>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Transient accept errors (EMFILE…): back off briefly instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        counters.bump(&counters.opened);
        let handler = handler.clone();
        let counters = counters.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = serve_connection(stream, handler.as_ref(), options, &counters) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
            counters.bump(&counters.closed);
        });
    }
}

/// How a response ended.
enum Outcome {
    /// Fully written; the connection may serve another request.
    Complete,
    /// Close the connection (hang-up step, client gone, or `connection: close`).
    Close,
}

async fn serve_connection(
    stream: TcpStream,
    handler: &dyn Handler,
    options: ServerOptions,
    counters: &CounterState,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut buffer: VecDeque<u8> = VecDeque::new();
    loop {
        let request = match read_request(&mut reader, &mut buffer).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(status) => {
                let response = Response::full(status, "text/plain", reason(status));
                let _ = write_response(
                    &mut reader,
                    &mut writer,
                    &mut buffer,
                    response,
                    true,
                    options,
                    counters,
                )
                .await;
                return;
            }
        };
        counters.bump(&counters.requests);
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = match handler.handle(request) {
            Reply::Now(response) => response,
            Reply::Later(future) => future.await,
        };
        match write_response(
            &mut reader,
            &mut writer,
            &mut buffer,
            response,
            close,
            options,
            counters,
        )
        .await
        {
            Outcome::Complete if !close => {}
            _ => return,
        }
    }
}

/// Reads one request. `Ok(None)`: the client closed the connection between requests.
async fn read_request(
    reader: &mut OwnedReadHalf,
    buffer: &mut VecDeque<u8>,
) -> Result<Option<Request>, u16> {
    let header_end = loop {
        let contiguous = buffer.make_contiguous();
        if let Some(pos) = contiguous.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buffer.len() > MAX_HEADER_BYTES {
            return Err(431);
        }
        let mut chunk = [0u8; 16 * 1024];
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                return if buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(400)
                }
            }
            Ok(n) => buffer.extend(&chunk[..n]),
        }
    };
    let head: Vec<u8> = buffer.drain(..header_end).collect();
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(505);
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(400);
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked_body(reader, buffer).await?
    } else {
        let length: usize = match header("content-length") {
            Some(v) => v.parse().map_err(|_| 400u16)?,
            None => 0,
        };
        if length > MAX_BODY_BYTES {
            return Err(413);
        }
        fill(reader, buffer, length).await?;
        buffer.drain(..length).collect::<Vec<u8>>()
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: Bytes::from(body),
    }))
}

async fn fill(
    reader: &mut OwnedReadHalf,
    buffer: &mut VecDeque<u8>,
    at_least: usize,
) -> Result<(), u16> {
    while buffer.len() < at_least {
        let mut chunk = [0u8; 16 * 1024];
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(400),
            Ok(n) => buffer.extend(&chunk[..n]),
        }
    }
    Ok(())
}

async fn read_line(reader: &mut OwnedReadHalf, buffer: &mut VecDeque<u8>) -> Result<String, u16> {
    loop {
        let contiguous = buffer.make_contiguous();
        if let Some(pos) = contiguous.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buffer.drain(..pos + 2).collect();
            return Ok(String::from_utf8_lossy(&line[..pos]).into_owned());
        }
        if buffer.len() > MAX_HEADER_BYTES {
            return Err(400);
        }
        fill(reader, buffer, buffer.len() + 1).await?;
    }
}

async fn read_chunked_body(
    reader: &mut OwnedReadHalf,
    buffer: &mut VecDeque<u8>,
) -> Result<Vec<u8>, u16> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader, buffer).await?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| 400u16)?;
        if body.len() + size > MAX_BODY_BYTES {
            return Err(413);
        }
        if size == 0 {
            // Trailers until the empty line.
            while !read_line(reader, buffer).await?.is_empty() {}
            return Ok(body);
        }
        fill(reader, buffer, size + 2).await?;
        body.extend(buffer.drain(..size));
        buffer.drain(..2);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        529 => "Site Overloaded",
        _ => "Status",
    }
}

/// Waits `duration` (or forever) while watching for the client to hang up. Bytes the
/// client sends meanwhile are kept for the next request. Returns `true` if it hung up.
async fn wait_watching(
    reader: &mut OwnedReadHalf,
    buffer: &mut VecDeque<u8>,
    duration: Option<Duration>,
) -> bool {
    let sleep = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(sleep);
    loop {
        let mut chunk = [0u8; 4096];
        tokio::select! {
            _ = &mut sleep => return false,
            read = reader.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return true,
                Ok(n) => buffer.extend(&chunk[..n]),
            },
        }
    }
}

async fn write_response(
    reader: &mut OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
    buffer: &mut VecDeque<u8>,
    response: Response,
    close: bool,
    options: ServerOptions,
    counters: &CounterState,
) -> Outcome {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    match response.body {
        Body::Full(body) => {
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&body);
            if writer.write_all(&bytes).await.is_err() {
                return Outcome::Close;
            }
            Outcome::Complete
        }
        Body::Chunked(steps) => {
            head.push_str("transfer-encoding: chunked\r\n\r\n");
            let mut pending = head.into_bytes();
            let mut aborted = false;
            let mut ended_early = false;
            for step in steps {
                match step {
                    Step::Send(data) => {
                        if data.is_empty() {
                            continue;
                        }
                        pending.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                        pending.extend_from_slice(&data);
                        pending.extend_from_slice(b"\r\n");
                        if !options.zero_latency {
                            if writer.write_all(&pending).await.is_err() {
                                aborted = true;
                                break;
                            }
                            pending.clear();
                        }
                    }
                    Step::Sleep(duration) => {
                        if options.zero_latency {
                            continue;
                        }
                        if wait_watching(reader, buffer, Some(duration)).await {
                            aborted = true;
                            break;
                        }
                    }
                    Step::Hangup => {
                        let _ = writer.write_all(&pending).await;
                        let _ = writer.flush().await;
                        ended_early = true;
                        break;
                    }
                    Step::Stall => {
                        if writer.write_all(&pending).await.is_err()
                            || wait_watching(reader, buffer, None).await
                        {
                            aborted = true;
                        }
                        ended_early = true;
                        break;
                    }
                }
            }
            if aborted {
                counters.bump(&counters.client_aborts);
                return Outcome::Close;
            }
            if ended_early {
                return Outcome::Close;
            }
            pending.extend_from_slice(b"0\r\n\r\n");
            if writer.write_all(&pending).await.is_err() {
                counters.bump(&counters.client_aborts);
                return Outcome::Close;
            }
            Outcome::Complete
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, request: Request) -> Reply {
            match request.path.as_str() {
                "/stream" => Response::chunked(
                    200,
                    "text/plain",
                    vec![
                        Step::Send(Bytes::from_static(b"ab")),
                        Step::Sleep(Duration::from_millis(5)),
                        Step::Send(Bytes::from_static(b"cd")),
                    ],
                )
                .into(),
                "/stall" => Response::chunked(
                    200,
                    "text/plain",
                    vec![Step::Send(Bytes::from_static(b"x")), Step::Stall],
                )
                .into(),
                _ => Response::full(200, "text/plain", request.body).into(),
            }
        }
    }

    async fn roundtrip(stream: &mut TcpStream, request: &[u8], until: &[u8]) -> String {
        stream.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let mut chunk = [0u8; 1024];
        while !out.windows(until.len()).any(|w| w == until) {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn keep_alive_full_chunked_and_chunked_request_bodies() {
        let server = FakeHttpServer::start(Arc::new(Echo), ServerOptions::default())
            .await
            .unwrap();
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        let r = roundtrip(
            &mut s,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            b"hello",
        )
        .await;
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("content-length: 5"),
            "{r}"
        );
        let r = roundtrip(
            &mut s,
            b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
            b"0\r\n\r\n",
        )
        .await;
        assert!(
            r.contains("transfer-encoding: chunked")
                && r.contains("2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"),
            "{r}"
        );
        let r = roundtrip(&mut s, b"POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"abcde").await;
        assert!(r.contains("content-length: 5"));
        drop(s);
        assert!(
            server
                .wait_for(|c| c.connections_closed == 1, Duration::from_secs(5))
                .await
        );
        let c = server.counters();
        assert_eq!(
            (
                c.requests,
                c.connections_opened,
                c.active_connections,
                c.client_aborts
            ),
            (3, 1, 0, 0)
        );
    }

    #[tokio::test]
    async fn stalled_responses_notice_the_client_leaving() {
        let server = FakeHttpServer::start(Arc::new(Echo), ServerOptions::default())
            .await
            .unwrap();
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        roundtrip(&mut s, b"GET /stall HTTP/1.1\r\n\r\n", b"1\r\nx\r\n").await;
        assert_eq!(server.counters().client_aborts, 0);
        drop(s);
        assert!(
            server
                .wait_for(
                    |c| c.client_aborts == 1 && c.connections_closed == 1,
                    Duration::from_secs(5)
                )
                .await
        );
    }

    #[tokio::test]
    async fn garbage_gets_400_and_refuses_non_loopback() {
        let server = FakeHttpServer::start(Arc::new(Echo), ServerOptions::default())
            .await
            .unwrap();
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        let r = roundtrip(&mut s, b"NONSENSE\r\n\r\n", b"Bad Request").await;
        assert!(r.starts_with("HTTP/1.1 400"));
        let err = FakeHttpServer::bind(
            "0.0.0.0:0".parse().unwrap(),
            Arc::new(Echo),
            ServerOptions::default(),
        )
        .await;
        assert!(err.is_err());
    }
}
