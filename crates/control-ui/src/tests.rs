#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn get(ui: &ControlUi, path: &str, headers: &[(&str, &str)]) -> Option<Response<Bytes>> {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    ui.respond(&Method::GET, path, &h)
}

fn header<'a>(r: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn main_js() -> String {
    format!("/assets/{ASSET_VERSION}/js/main.js")
}

#[test]
fn base_paths_are_normalised_and_checked() {
    assert_eq!(normalize_base_path("").unwrap(), "");
    assert_eq!(normalize_base_path("/").unwrap(), "");
    assert_eq!(normalize_base_path("ui").unwrap(), "/ui");
    assert_eq!(normalize_base_path("/a/b/").unwrap(), "/a/b");
    for bad in ["/a b", "/../x", "/a//b", "/<x>", "/a/./b", "/%2e"] {
        assert!(normalize_base_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn index_is_served_for_unmatched_paths_with_no_cache_and_a_strict_csp() {
    let ui = ControlUi::new("").unwrap();
    for path in ["/", "/chat", "/sessions/agent:main:main", "/nonexistent"] {
        let r = get(&ui, path, &[("host", "127.0.0.1:18789")]).unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(header(&r, "cache-control"), Some("no-cache"));
        let csp = header(&r, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' ws://127.0.0.1:18789 wss://127.0.0.1:18789;"),
            "{csp}"
        );
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&r, "referrer-policy"), Some("no-referrer"));
        let body = String::from_utf8(r.body().to_vec()).unwrap();
        assert!(body.contains(&main_js()), "{body}");
        assert!(body.contains(BUILD_ID), "{body}");
        assert!(!body.contains("{{"), "{body}");
    }
}

#[test]
fn a_hostile_host_header_never_reaches_the_csp() {
    let csp = content_security_policy(Some("evil.example; script-src *"));
    assert!(!csp.contains("evil"), "{csp}");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
}

#[test]
fn index_html_has_no_inline_script_or_style() {
    let ui = ControlUi::new("").unwrap();
    let r = get(&ui, "/", &[]).unwrap();
    let body = String::from_utf8(r.body().to_vec()).unwrap();
    assert!(!body.contains("style="), "{body}");
    for (i, _) in body.match_indices("<script") {
        let tag = &body[i..body[i..].find('>').unwrap() + i];
        assert!(tag.contains(" src="), "inline script: {tag}");
    }
    assert!(!body.contains("<style"), "{body}");
}

#[test]
fn assets_are_immutable_negotiated_and_revalidated() {
    let ui = ControlUi::new("").unwrap();
    let js = main_js();
    let plain = get(&ui, &js, &[]).unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        header(&plain, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        header(&plain, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(header(&plain, "content-encoding"), None);
    assert_eq!(header(&plain, "vary"), Some("Accept-Encoding"));
    let asset = find_asset("js/main.js").unwrap();
    assert_eq!(plain.body().as_ref(), asset.identity);

    let gz = get(&ui, &js, &[("accept-encoding", "gzip, deflate")]).unwrap();
    if asset.gzip.is_some() {
        assert_eq!(header(&gz, "content-encoding"), Some("gzip"));
        assert_eq!(&gz.body()[..2], &[0x1f, 0x8b]);
    }
    let br = get(&ui, &js, &[("accept-encoding", "gzip, deflate, br, zstd")]).unwrap();
    if asset.brotli.is_some() {
        assert_eq!(header(&br, "content-encoding"), Some("br"));
        assert_ne!(header(&br, "etag"), header(&plain, "etag"));
    }
    // q=0 refuses an encoding.
    let no_br = get(&ui, &js, &[("accept-encoding", "br;q=0, gzip")]).unwrap();
    assert_ne!(header(&no_br, "content-encoding"), Some("br"));

    // Revalidation with the ETag of the variant: 304 with no body.
    let etag = header(&br, "etag").unwrap().to_string();
    let again = get(
        &ui,
        &js,
        &[("accept-encoding", "br"), ("if-none-match", &etag)],
    )
    .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.body().is_empty());
}

#[test]
fn unknown_or_stale_assets_are_404_not_html() {
    let ui = ControlUi::new("").unwrap();
    for path in [
        "/assets/0000000000000000/js/main.js".to_string(),
        format!("/assets/{ASSET_VERSION}/js/nope.js"),
        format!("/assets/{ASSET_VERSION}/../index.html"),
    ] {
        let r = get(&ui, &path, &[]).unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header(&r, "content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[test]
fn a_base_path_scopes_the_ui() {
    let ui = ControlUi::new("/ui/").unwrap();
    assert!(get(&ui, "/", &[]).is_none());
    assert!(get(&ui, "/uix", &[]).is_none());
    assert!(get(&ui, "/health", &[]).is_none());
    let r = get(&ui, "/ui/chat", &[]).unwrap();
    let body = String::from_utf8(r.body().to_vec()).unwrap();
    assert!(body.contains("data-base-path=\"/ui\""), "{body}");
    assert!(body.contains(&format!("/ui{}", main_js())), "{body}");
    let js = get(&ui, &format!("/ui{}", main_js()), &[]).unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(ui.is_config_json("/ui/control-ui-config.json"));
    assert!(!ui.is_config_json("/control-ui-config.json"));
}

#[test]
fn only_get_and_head_are_served() {
    let ui = ControlUi::new("").unwrap();
    let h = HeaderMap::new();
    assert!(ui.respond(&Method::POST, "/", &h).is_none());
    let head = ui.respond(&Method::HEAD, &main_js(), &h).unwrap();
    assert!(head.body().is_empty());
    assert_eq!(
        header(&head, "content-length").unwrap(),
        find_asset("js/main.js").unwrap().identity.len().to_string()
    );
}

#[test]
fn the_whole_ui_stays_within_the_transfer_budget() {
    let total = total_compressed_bytes();
    assert!(total <= 300 * 1024, "{total} bytes compressed");
}
