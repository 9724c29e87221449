use std::os::unix::fs::symlink;
use std::sync::Arc;

use base64::Engine as _;
use pincer_tools::confine::Workspace;
use pincer_tools::ContentBlock;
use serde_json::json;

use crate::common::{err_text, error_kind, ok_text, Env};

fn setup() -> Env {
    let env = Env::new();
    std::fs::write(env.outside_path().join("secret.txt"), "TOP SECRET").unwrap();
    std::fs::create_dir_all(env.outside_path().join("outdir")).unwrap();
    std::fs::write(
        env.outside_path().join("outdir/secret.txt"),
        "OUTDIR SECRET",
    )
    .unwrap();
    env
}

#[tokio::test]
async fn dotdot_and_absolute_escapes_are_refused() {
    let env = setup();
    let ctx = env.ctx().build();
    for path in [
        "../secret.txt",
        "sub/../../secret.txt",
        "./../outdir/secret.txt",
    ] {
        let out = env.call(&ctx, "read", json!({"path": path})).await;
        assert_eq!(
            error_kind(&out),
            "path_denied",
            "{path}: {}",
            out.text_content()
        );
        assert!(err_text(&out).contains("escapes the workspace"));
    }
    let abs = env.outside_path().join("secret.txt");
    let out = env
        .call(&ctx, "read", json!({"path": abs.to_str().unwrap()}))
        .await;
    assert_eq!(error_kind(&out), "path_denied");
    assert!(err_text(&out).contains("outside the workspace"));
    let out = env.call(&ctx, "read", json!({"path": "/etc/passwd"})).await;
    assert_eq!(error_kind(&out), "path_denied");
    let out = env
        .call(
            &ctx,
            "write",
            json!({"path": "../pwned.txt", "content": "x"}),
        )
        .await;
    assert_eq!(error_kind(&out), "path_denied");
    assert!(!env.outside_path().join("pwned.txt").exists());
    // An absolute path inside the workspace is fine.
    std::fs::write(env.ws_path().join("in.txt"), "inside").unwrap();
    let inside = env.ws_path().join("in.txt");
    let out = env
        .call(&ctx, "read", json!({"path": inside.to_str().unwrap()}))
        .await;
    assert_eq!(ok_text(&out), "inside");
}

#[tokio::test]
async fn symlink_pointing_out_is_refused_for_read_write_edit() {
    let env = setup();
    let ctx = env.ctx().build();
    symlink(
        env.outside_path().join("secret.txt"),
        env.ws_path().join("link.txt"),
    )
    .unwrap();
    symlink("../secret.txt", env.ws_path().join("rel-link.txt")).unwrap();
    for link in ["link.txt", "rel-link.txt"] {
        let out = env.call(&ctx, "read", json!({"path": link})).await;
        assert_eq!(
            error_kind(&out),
            "path_denied",
            "{link}: {}",
            out.text_content()
        );
        assert!(!out.text_content().contains("TOP SECRET"));
        let out = env
            .call(
                &ctx,
                "write",
                json!({"path": link, "content": "overwritten"}),
            )
            .await;
        assert_eq!(error_kind(&out), "path_denied");
        let out = env
            .call(
                &ctx,
                "edit",
                json!({"path": link, "edits": [{"oldText": "TOP", "newText": "x"}]}),
            )
            .await;
        assert!(out.is_error);
    }
    assert_eq!(
        std::fs::read_to_string(env.outside_path().join("secret.txt")).unwrap(),
        "TOP SECRET"
    );
}

#[tokio::test]
async fn symlinked_parent_directory_is_refused() {
    let env = setup();
    let ctx = env.ctx().build();
    symlink(
        env.outside_path().join("outdir"),
        env.ws_path().join("dirlink"),
    )
    .unwrap();
    let out = env
        .call(&ctx, "read", json!({"path": "dirlink/secret.txt"}))
        .await;
    assert_eq!(error_kind(&out), "path_denied");
    let out = env
        .call(
            &ctx,
            "write",
            json!({"path": "dirlink/new.txt", "content": "x"}),
        )
        .await;
    assert_eq!(error_kind(&out), "path_denied");
    assert!(!env.outside_path().join("outdir/new.txt").exists());
    let out = env
        .call(
            &ctx,
            "write",
            json!({"path": "dirlink/deeper/new.txt", "content": "x"}),
        )
        .await;
    assert!(out.is_error);
    assert!(!env.outside_path().join("outdir/deeper").exists());
    let patch = "*** Begin Patch\n*** Add File: dirlink/p.txt\n+x\n*** End Patch";
    let out = env.call(&ctx, "apply_patch", json!({"input": patch})).await;
    assert!(out.is_error);
    assert!(!env.outside_path().join("outdir/p.txt").exists());
    let patch = "*** Begin Patch\n*** Delete File: dirlink/secret.txt\n*** End Patch";
    let out = env.call(&ctx, "apply_patch", json!({"input": patch})).await;
    assert!(out.is_error);
    assert!(env.outside_path().join("outdir/secret.txt").exists());
    // exec cannot use it as a working directory either.
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "cat secret.txt", "workdir": "dirlink"}),
        )
        .await;
    assert_eq!(error_kind(&out), "path_denied", "{}", out.text_content());
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "pwd", "workdir": "../outdir"}),
        )
        .await;
    assert_eq!(error_kind(&out), "path_denied");
}

#[tokio::test]
async fn symlinks_that_stay_inside_work() {
    let env = setup();
    let ctx = env.ctx().build();
    std::fs::create_dir_all(env.ws_path().join("real")).unwrap();
    std::fs::write(env.ws_path().join("real/f.txt"), "real file").unwrap();
    symlink("real/f.txt", env.ws_path().join("rel.txt")).unwrap();
    symlink(
        env.ws_path().join("real/f.txt"),
        env.ws_path().join("abs.txt"),
    )
    .unwrap();
    symlink(env.ws_path().join("real"), env.ws_path().join("absdir")).unwrap();
    assert_eq!(
        ok_text(&env.call(&ctx, "read", json!({"path": "rel.txt"})).await),
        "real file"
    );
    assert_eq!(
        ok_text(&env.call(&ctx, "read", json!({"path": "abs.txt"})).await),
        "real file"
    );
    assert_eq!(
        ok_text(
            &env.call(&ctx, "read", json!({"path": "absdir/f.txt"}))
                .await
        ),
        "real file"
    );
}

#[tokio::test]
async fn extra_roots_are_allowed_when_configured() {
    let env = setup();
    let ws = Workspace::new(env.ws_path())
        .unwrap()
        .with_extra_root(env.outside_path().join("outdir"), false)
        .unwrap();
    let ctx = pincer_tools::ToolContext::builder(Arc::new(ws)).build();
    let p = env.outside_path().join("outdir/secret.txt");
    let out = env
        .call(&ctx, "read", json!({"path": p.to_str().unwrap()}))
        .await;
    assert_eq!(ok_text(&out), "OUTDIR SECRET");
    // Read-only extra root.
    let out = env
        .call(
            &ctx,
            "write",
            json!({"path": p.to_str().unwrap(), "content": "x"}),
        )
        .await;
    assert_eq!(error_kind(&out), "path_denied");
    // Still nothing else outside.
    let out = env
        .call(&ctx, "read", json!({"path": "../secret.txt"}))
        .await;
    assert_eq!(error_kind(&out), "path_denied");
}

#[tokio::test]
async fn read_pages_and_caps() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let text: String = (1..=3000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(env.ws_path().join("big.txt"), &text).unwrap();
    let out = env.call(&ctx, "read", json!({"path": "big.txt"})).await;
    let t = ok_text(&out);
    assert!(t.starts_with("line 1\nline 2\n"));
    assert!(t.contains("line 2000\n\n[Showing lines 1-2000 of 3000. Use offset=2001 to continue.]"));
    assert!(!t.contains("line 2001"));
    let out = env
        .call(
            &ctx,
            "read",
            json!({"path": "big.txt", "offset": 2999, "limit": 5}),
        )
        .await;
    assert_eq!(ok_text(&out), "line 2999\nline 3000");
    assert_eq!(out.meta.as_deref(), Some("from big.txt"));
    // Byte cap: long lines.
    let wide: String = (0..200)
        .map(|i| format!("{i:04}{}\n", "x".repeat(1000)))
        .collect();
    std::fs::write(env.ws_path().join("wide.txt"), &wide).unwrap();
    let out = env.call(&ctx, "read", json!({"path": "wide.txt"})).await;
    let t = ok_text(&out);
    assert!(t.len() <= 50 * 1024 + 200);
    assert!(t.contains("Use offset="));
    // One huge line is paged by cursor.
    std::fs::write(env.ws_path().join("one.txt"), "y".repeat(120_000)).unwrap();
    let out = env.call(&ctx, "read", json!({"path": "one.txt"})).await;
    let t = ok_text(&out);
    assert!(
        t.contains("Use offset=1 cursor=51200 to continue"),
        "{}",
        &t[t.len() - 200..]
    );
    let out = env
        .call(
            &ctx,
            "read",
            json!({"path": "one.txt", "offset": 1, "cursor": 102400}),
        )
        .await;
    assert_eq!(ok_text(&out).len(), 120_000 - 102_400);
}

#[tokio::test]
async fn read_optional_missing_binary_and_image() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let out = env
        .call(&ctx, "read", json!({"path": "nope.md", "optional": true}))
        .await;
    assert_eq!(out.details.as_ref().unwrap()["status"], "not_found");
    assert!(!out.is_error);
    let out = env.call(&ctx, "read", json!({"path": "nope.md"})).await;
    assert_eq!(error_kind(&out), "not_found");
    std::fs::write(env.ws_path().join("bin.dat"), b"\x00\x01\x02binary").unwrap();
    let out = env.call(&ctx, "read", json!({"path": "bin.dat"})).await;
    assert!(err_text(&out).contains("binary"));
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRfake";
    std::fs::write(env.ws_path().join("pic.png"), png).unwrap();
    let out = env.call(&ctx, "read", json!({"path": "pic.png"})).await;
    assert!(!out.is_error);
    match &out.content[1] {
        ContentBlock::Image { data, mime_type } => {
            assert_eq!(mime_type, "image/png");
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .unwrap(),
                png
            );
        }
        other => panic!("expected image, got {other:?}"),
    }
    let out = env.call(&ctx, "read", json!({"path": "."})).await;
    assert!(out.is_error);
}

#[tokio::test]
async fn write_creates_parents_and_overwrites() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let out = env
        .call(
            &ctx,
            "write",
            json!({"path": "a/b/c.txt", "content": "hello"}),
        )
        .await;
    assert_eq!(ok_text(&out), "Successfully wrote 5 bytes to a/b/c.txt");
    let out = env
        .call(&ctx, "write", json!({"path": "a/b/c.txt", "content": "hi"}))
        .await;
    assert!(!out.is_error);
    assert_eq!(
        std::fs::read_to_string(env.ws_path().join("a/b/c.txt")).unwrap(),
        "hi"
    );
}

#[tokio::test]
async fn edit_semantics() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let f = env.ws_path().join("e.txt");
    std::fs::write(&f, "alpha\nbeta\ngamma\nbeta\n").unwrap();
    let out = env
        .call(
            &ctx,
            "edit",
            json!({"path": "e.txt", "edits": [{"oldText": "beta", "newText": "B"}]}),
        )
        .await;
    assert!(err_text(&out).contains("matches 2 times"));
    let out = env
        .call(
            &ctx,
            "edit",
            json!({"path": "e.txt", "edits": [{"oldText": "delta", "newText": "D"}]}),
        )
        .await;
    assert!(err_text(&out).contains("was not found"));
    let out = env
        .call(
            &ctx,
            "edit",
            json!({"path": "e.txt", "edits": [
                {"oldText": "alpha\nbeta", "newText": "A"},
                {"oldText": "beta\ngamma", "newText": "G"}
            ]}),
        )
        .await;
    assert!(err_text(&out).contains("overlap"));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "alpha\nbeta\ngamma\nbeta\n"
    );
    let out = env
        .call(
            &ctx,
            "edit",
            json!({"path": "e.txt", "edits": [
                {"oldText": "alpha\n", "newText": "ALPHA\n"},
                {"oldText": "gamma\nbeta", "newText": "GAMMA\nBETA"}
            ]}),
        )
        .await;
    assert_eq!(ok_text(&out), "Successfully replaced 2 block(s) in e.txt.");
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "ALPHA\nbeta\nGAMMA\nBETA\n"
    );
    // CRLF files accept LF edits and keep CRLF.
    std::fs::write(env.ws_path().join("w.txt"), "one\r\ntwo\r\n").unwrap();
    let out = env
        .call(
            &ctx,
            "edit",
            json!({"path": "w.txt", "edits": [{"oldText": "one\ntwo", "newText": "1\n2"}]}),
        )
        .await;
    assert!(!out.is_error, "{}", out.text_content());
    assert_eq!(
        std::fs::read_to_string(env.ws_path().join("w.txt")).unwrap(),
        "1\r\n2\r\n"
    );
}

#[tokio::test]
async fn apply_patch_semantics() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let ws = env.ws_path();
    std::fs::write(
        ws.join("upd.txt"),
        "fn main() {\n    let x = 1;\n    println!(\"{x}\");\n}\n",
    )
    .unwrap();
    std::fs::write(ws.join("old.txt"), "a\nb\n").unwrap();
    std::fs::write(ws.join("gone.txt"), "bye\n").unwrap();
    let patch = "*** Begin Patch
*** Add File: new/dir/added.txt
+first
+second
*** Update File: upd.txt
@@ fn main() {
-    let x = 1;
+    let x = 2;
*** Update File: old.txt
*** Move to: moved/renamed.txt
@@
 a
-b
+B
*** End of File
*** Delete File: gone.txt
*** End Patch";
    let out = env.call(&ctx, "apply_patch", json!({"input": patch})).await;
    let t = ok_text(&out);
    assert_eq!(
        t,
        "Success. Updated the following files:\nA new/dir/added.txt\nM upd.txt\nM moved/renamed.txt\nD gone.txt"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("new/dir/added.txt")).unwrap(),
        "first\nsecond\n"
    );
    assert!(std::fs::read_to_string(ws.join("upd.txt"))
        .unwrap()
        .contains("let x = 2;"));
    assert_eq!(
        std::fs::read_to_string(ws.join("moved/renamed.txt")).unwrap(),
        "a\nB\n"
    );
    assert!(!ws.join("old.txt").exists());
    assert!(!ws.join("gone.txt").exists());

    // A failing hunk leaves every file untouched (all-or-nothing).
    let before = std::fs::read_to_string(ws.join("upd.txt")).unwrap();
    let bad = "*** Begin Patch
*** Add File: should-not-exist.txt
+x
*** Update File: upd.txt
@@
-this line is not there
+y
*** End Patch";
    let out = env.call(&ctx, "apply_patch", json!({"input": bad})).await;
    assert!(err_text(&out).contains("Failed to find the expected lines"));
    assert!(!ws.join("should-not-exist.txt").exists());
    assert_eq!(std::fs::read_to_string(ws.join("upd.txt")).unwrap(), before);

    // Add File refuses an existing file; a malformed patch is an argument error.
    let out = env
        .call(
            &ctx,
            "apply_patch",
            json!({"input": "*** Begin Patch\n*** Add File: upd.txt\n+x\n*** End Patch"}),
        )
        .await;
    assert!(err_text(&out).contains("already exists"));
    let out = env
        .call(&ctx, "apply_patch", json!({"input": "*** Add File: x\n+y"}))
        .await;
    assert_eq!(error_kind(&out), "invalid_args");
    // Delete then re-add in one patch is allowed.
    let out = env
        .call(
            &ctx,
            "apply_patch",
            json!({"input": "*** Begin Patch\n*** Delete File: upd.txt\n*** Add File: upd.txt\n+fresh\n*** End Patch"}),
        )
        .await;
    assert!(!out.is_error, "{}", out.text_content());
    assert_eq!(
        std::fs::read_to_string(ws.join("upd.txt")).unwrap(),
        "fresh\n"
    );
}
