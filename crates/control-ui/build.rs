//! Embeds `web/` into the binary: every file gets a content type and is precompressed
//! (gzip, and brotli when smaller); everything but `index.html` is served under
//! `assets/<version>/`, where `<version>` hashes all assets, so asset URLs are immutable.
//! `index.html` gets the asset version, the build id and a `modulepreload` list; its
//! `{{BASE}}` placeholder is filled at run time (`gateway.controlUi.basePath`), and a copy
//! rendered for the default (root) base path is precompressed too. No JavaScript toolchain.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

struct File {
    /// Path relative to `web/`, with `/` separators.
    rel: String,
    bytes: Vec<u8>,
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<File>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.map(|e| e.path()).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, root, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap_or_else(|e| panic!("{e}"))
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            out.push(File { rel, bytes });
        }
    }
}

fn content_type(rel: &str) -> &'static str {
    match rel.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        other => panic!("web/: no content type for .{other} files; add one in build.rs"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap_or_else(|e| panic!("gzip: {e}"));
    enc.finish().unwrap_or_else(|e| panic!("gzip: {e}"))
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)
        .unwrap_or_else(|e| panic!("brotli: {e}"));
    out
}

/// Writes the identity and the useful compressed variants; returns the Rust expression
/// fragments `identity, gzip, brotli`.
fn variants(out_dir: &Path, stem: &str, data: &[u8]) -> (String, String, String) {
    let write = |suffix: &str, bytes: &[u8]| -> String {
        let path = out_dir.join(format!("{stem}{suffix}"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        format!("include_bytes!({:?})", path.display().to_string())
    };
    let identity = write("", data);
    let gz = gzip(data);
    let gz = if gz.len() + 64 < data.len() {
        format!("Some({})", write(".gz", &gz))
    } else {
        "None".into()
    };
    let br = brotli(data);
    let br = if br.len() + 64 < data.len() {
        format!("Some({})", write(".br", &br))
    } else {
        "None".into()
    };
    (identity, gz, br)
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let web = manifest.join("web");
    println!("cargo:rerun-if-changed=web");
    println!("cargo:rerun-if-env-changed=PINCER_BUILD_ID");

    // Same rule as the gateway's `hello-ok.server.buildId` (a test there checks they agree).
    let build_id = std::env::var("PINCER_BUILD_ID").unwrap_or_else(|_| {
        format!(
            "pincer-{}-dev",
            std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
        )
    });
    println!("cargo:rustc-env=PINCER_UI_BUILD_ID={build_id}");

    let mut files = Vec::new();
    collect(&web, &web, &mut files);
    let (index, mut assets): (Vec<File>, Vec<File>) =
        files.into_iter().partition(|f| f.rel == "index.html");
    assets.sort_by(|a, b| a.rel.cmp(&b.rel));
    let index = index
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("web/index.html is missing"));

    let mut all = Sha256::new();
    for f in &assets {
        all.update(f.rel.as_bytes());
        all.update([0]);
        all.update(&f.bytes);
        all.update([0]);
    }
    let version = hex(&all.finalize())[..16].to_string();

    let asset_dir = out_dir.join("assets");
    std::fs::create_dir_all(&asset_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut table = String::from("&[\n");
    for (i, f) in assets.iter().enumerate() {
        let etag = hex(&Sha256::digest(&f.bytes))[..20].to_string();
        let (identity, gz, br) = variants(&asset_dir, &format!("a{i}"), &f.bytes);
        let _ = writeln!(
            table,
            "    Asset {{ path: {:?}, content_type: {:?}, etag: {:?}, identity: {identity}, gzip: {gz}, brotli: {br} }},",
            f.rel,
            content_type(&f.rel),
            etag
        );
    }
    table.push(']');

    // index.html: fill everything known at build time.
    let template = String::from_utf8(index.bytes).unwrap_or_else(|e| panic!("index.html: {e}"));
    let preload: String = assets
        .iter()
        .filter(|f| f.rel.ends_with(".js"))
        .map(|f| {
            format!(
                "    <link rel=\"modulepreload\" href=\"{{{{BASE}}}}/assets/{version}/{}\">\n",
                f.rel
            )
        })
        .collect();
    let template = template
        .replace("{{ASSETS}}", &format!("{{{{BASE}}}}/assets/{version}"))
        .replace("{{BUILD_ID}}", &build_id)
        .replace("    {{MODULEPRELOAD}}\n", &preload);
    assert!(
        !template.contains("{{ASSETS}}") && !template.contains("{{MODULEPRELOAD}}"),
        "index.html: unexpanded placeholder"
    );
    let template_path = out_dir.join("index.template.html");
    std::fs::write(&template_path, &template).unwrap_or_else(|e| panic!("{e}"));
    let root_index = template.replace("{{BASE}}", "");
    let index_etag = hex(&Sha256::digest(root_index.as_bytes()))[..20].to_string();
    let (identity, gz, br) = variants(&out_dir, "index.root.html", root_index.as_bytes());

    let mut code = String::new();
    let _ = writeln!(
        code,
        "/// Hash of all assets: the `assets/<version>/` directory."
    );
    let _ = writeln!(code, "pub const ASSET_VERSION: &str = {version:?};");
    let _ = writeln!(
        code,
        "/// `index.html` with `{{{{BASE}}}}` left for the base path."
    );
    let _ = writeln!(
        code,
        "pub const INDEX_TEMPLATE: &str = include_str!({:?});",
        template_path.display().to_string()
    );
    let _ = writeln!(code, "/// `index.html` for the root base path.");
    let _ = writeln!(
        code,
        "pub static ROOT_INDEX: Asset = Asset {{ path: \"index.html\", content_type: \"text/html; charset=utf-8\", etag: {index_etag:?}, identity: {identity}, gzip: {gz}, brotli: {br} }};"
    );
    let _ = writeln!(code, "/// Every asset, sorted by path.");
    let _ = writeln!(code, "pub static ASSETS: &[Asset] = {table};");
    std::fs::write(out_dir.join("assets.rs"), code).unwrap_or_else(|e| panic!("{e}"));
}
