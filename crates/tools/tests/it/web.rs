use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pincer_tools::web::ssrf::{GuardedResolver, SsrfPolicy};
use pincer_tools::web::WebFetchConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{err_text, error_kind, ok_text, Env};

/// A tiny HTTP/1.1 server on 127.0.0.1 with canned routes; counts accepted connections.
struct TestServer {
    port: u16,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(routes: Vec<(&'static str, String)>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let routes = Arc::new(routes);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            h.fetch_add(1, Ordering::SeqCst);
            let routes = Arc::clone(&routes);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let resp = routes
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .into()
                    });
                if path == "/slow" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    TestServer { port, hits, task }
}

fn ok_html(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn redirect(to: &str) -> String {
    format!(
        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
}

fn allow_only(port: u16) -> WebFetchConfig {
    WebFetchConfig {
        ssrf: SsrfPolicy {
            allowed_endpoints: vec![format!("127.0.0.1:{port}")],
            ..SsrfPolicy::default()
        },
        ..WebFetchConfig::default()
    }
}

#[tokio::test]
async fn fetches_and_extracts_from_an_allowed_server() {
    let page = "<html><head><title>Test Page</title></head><body><h1>Heading</h1><p>Hello <a href=\"/next\">next</a></p><script>evil()</script></body></html>";
    let server = serve(vec![("/page", ok_html(page)), ("/hop", redirect("/page"))]).await;
    let env = Env::with_web(allow_only(server.port));
    let ctx = env.ctx().build();
    let url = format!("http://127.0.0.1:{}/hop", server.port);
    let out = env.call(&ctx, "web_fetch", json!({"url": url})).await;
    ok_text(&out);
    let d = out.details.as_ref().unwrap();
    assert_eq!(d["status"], 200);
    assert_eq!(d["title"], "Test Page");
    assert_eq!(
        d["finalUrl"],
        format!("http://127.0.0.1:{}/page", server.port)
    );
    let text = d["text"].as_str().unwrap();
    assert!(text.contains("# Heading"), "{text}");
    assert!(
        text.contains(&format!("[next](http://127.0.0.1:{}/next)", server.port)),
        "{text}"
    );
    assert!(!text.contains("evil"));
    let out = env
        .call(
            &ctx,
            "web_fetch",
            json!({"url": url, "extractMode": "text"}),
        )
        .await;
    assert_eq!(
        out.details.as_ref().unwrap()["text"],
        "Heading\n\nHello next"
    );
}

#[tokio::test]
async fn loopback_private_and_v6_destinations_are_refused_without_connecting() {
    let server = serve(vec![("/page", ok_html("<p>x</p>"))]).await;
    let env = Env::new();
    let ctx = env.ctx().build();
    for url in [
        format!("http://127.0.0.1:{}/page", server.port),
        format!("http://localhost:{}/page", server.port),
        format!("http://[::1]:{}/page", server.port),
        format!("http://[::ffff:127.0.0.1]:{}/page", server.port),
        "http://10.0.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        "http://2130706433/".to_owned(), // 127.0.0.1 as a decimal integer
    ] {
        let out = env.call(&ctx, "web_fetch", json!({"url": url})).await;
        assert_eq!(error_kind(&out), "blocked", "{url}: {}", out.text_content());
        assert!(err_text(&out).contains("SSRF guard"), "{url}");
    }
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        0,
        "no connection may reach the server"
    );
    let out = env
        .call(&ctx, "web_fetch", json!({"url": "ftp://example.com/x"}))
        .await;
    assert_eq!(error_kind(&out), "blocked");
    let out = env
        .call(
            &ctx,
            "web_fetch",
            json!({"url": "http://user:pw@example.com/"}),
        )
        .await;
    assert_eq!(error_kind(&out), "blocked");
}

#[tokio::test]
async fn redirect_from_allowed_server_to_loopback_is_refused() {
    let target = serve(vec![("/secret", ok_html("<p>internal secret</p>"))]).await;
    let to_port = format!("http://127.0.0.1:{}/secret", target.port);
    let to_localhost = format!("http://localhost:{}/secret", target.port);
    let to_v6 = format!("http://[::1]:{}/secret", target.port);
    let to_private = "http://10.1.2.3/secret".to_owned();
    let server = serve(vec![
        ("/r1", redirect(&to_port)),
        ("/r2", redirect(&to_localhost)),
        ("/r3", redirect(&to_v6)),
        ("/r4", redirect(&to_private)),
    ])
    .await;
    let env = Env::with_web(allow_only(server.port));
    let ctx = env.ctx().build();
    for path in ["/r1", "/r2", "/r3", "/r4"] {
        let url = format!("http://127.0.0.1:{}{path}", server.port);
        let out = env.call(&ctx, "web_fetch", json!({"url": url})).await;
        assert_eq!(
            error_kind(&out),
            "blocked",
            "{path}: {}",
            out.text_content()
        );
        assert!(!out.text_content().contains("internal secret"));
    }
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        4,
        "the allowed server was reached"
    );
    assert_eq!(
        target.hits.load(Ordering::SeqCst),
        0,
        "the redirect target never was"
    );
}

#[tokio::test]
async fn size_time_and_redirect_caps() {
    let big = "a".repeat(200_000);
    let server = serve(vec![
        ("/big", format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{big}", big.len())),
        ("/slow", ok_html("late")),
        ("/loop", redirect("/loop")),
        ("/bin", "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 4\r\nconnection: close\r\n\r\n\u{1}\u{2}\u{3}\u{4}".into()),
    ])
    .await;
    let mut cfg = allow_only(server.port);
    cfg.max_response_bytes = 50_000;
    cfg.timeout = Duration::from_secs(1);
    let env = Env::with_web(cfg);
    let ctx = env.ctx().build();
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = env
        .call(
            &ctx,
            "web_fetch",
            json!({"url": format!("{base}/big"), "maxChars": 1000}),
        )
        .await;
    let d = out.details.clone().unwrap();
    assert_eq!(d["truncated"], true);
    assert_eq!(d["length"], 1000);
    assert_eq!(d["rawLength"], 50_000);
    let out = env
        .call(&ctx, "web_fetch", json!({"url": format!("{base}/slow")}))
        .await;
    assert_eq!(error_kind(&out), "timeout", "{}", out.text_content());
    let out = env
        .call(&ctx, "web_fetch", json!({"url": format!("{base}/loop")}))
        .await;
    assert!(err_text(&out).contains("Too many redirects"));
    let out = env
        .call(&ctx, "web_fetch", json!({"url": format!("{base}/bin")}))
        .await;
    assert!(err_text(&out).contains("cannot extract"));
    let out = env
        .call(
            &ctx,
            "web_fetch",
            json!({"url": format!("{base}/page"), "maxChars": 5}),
        )
        .await;
    assert_eq!(error_kind(&out), "invalid_args");
}

#[tokio::test]
async fn resolver_refuses_names_that_resolve_to_internal_addresses() {
    use reqwest::dns::Resolve;
    let r = GuardedResolver {
        policy: SsrfPolicy::default(),
        trusted: false,
    };
    let name: reqwest::dns::Name = "localhost".parse().unwrap();
    let err = match r.resolve(name).await {
        Ok(_) => panic!("localhost must not resolve through the guard"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("loopback"), "{err}");
    let trusted = GuardedResolver {
        policy: SsrfPolicy::default(),
        trusted: true,
    };
    let name: reqwest::dns::Name = "localhost".parse().unwrap();
    assert!(trusted.resolve(name).await.is_ok());
}
