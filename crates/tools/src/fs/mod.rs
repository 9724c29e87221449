//! File tools: `read`, `write`, `edit`, `apply_patch`. Every path goes through
//! [`crate::confine::Workspace`]; sandboxed sessions get the workspace-only view.

pub mod patch;

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::confine::{ResolvedPath, Workspace};
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::output::{ContentBlock, ToolOutput};
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;
use crate::util::{blocking, num_to_usize, parse_args};

/// `read` caps (runtime spec §7.1).
pub const READ_MAX_LINES: usize = 2000;
pub const READ_MAX_BYTES: usize = 50 * 1024;
/// Largest file `edit`/`apply_patch` will load.
pub const EDIT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Largest image `read` will attach.
pub const IMAGE_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The workspace view for this call: sandboxed sessions lose extra roots (and write access when
/// the sandbox mounts the workspace read-only).
pub(crate) fn workspace_for(ctx: &ToolContext) -> Arc<Workspace> {
    match &ctx.sandbox {
        Some(sandbox) => {
            let ws = ctx.workspace.workspace_only();
            Arc::new(if sandbox.config().workspace_read_only {
                ws.read_only()
            } else {
                ws
            })
        }
        None => Arc::clone(&ctx.workspace),
    }
}

fn spec(name: &str) -> ToolSpec {
    builtin_spec(name).unwrap_or_else(|| ToolSpec::new(name, "", json!({"type": "object"})))
}

fn display_rel(p: &ResolvedPath) -> String {
    if p.rel.as_os_str().is_empty() {
        ".".into()
    } else {
        p.rel.display().to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// read
// ---------------------------------------------------------------------------------------------

pub struct ReadTool {
    spec: ToolSpec,
}

impl Default for ReadTool {
    fn default() -> Self {
        Self { spec: spec("read") }
    }
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
    offset: Option<f64>,
    limit: Option<f64>,
    cursor: Option<f64>,
    optional: Option<bool>,
}

fn image_mime(path: &str, head: &[u8]) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    let by_ext = [
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".bmp", "image/bmp"),
    ]
    .into_iter()
    .find(|(ext, _)| lower.ends_with(ext))
    .map(|(_, m)| m)?;
    // Trust content over the name.
    let sniffed = if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        "image/gif"
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        "image/webp"
    } else if head.starts_with(b"BM") {
        "image/bmp"
    } else {
        return None;
    };
    let _ = by_ext;
    Some(sniffed)
}

struct ReadResult {
    text: String,
    start_line: usize,
    end_line: usize,
    total_lines: usize,
    truncated: bool,
}

fn read_text(
    file: std::fs::File,
    display: &str,
    offset: usize,
    limit: usize,
    cursor: usize,
) -> Result<ReadResult, ToolError> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut lineno = 0usize;
    let mut out = String::new();
    let mut first_out = 0usize;
    let mut last_out = 0usize;
    let mut stop_note: Option<String> = None;
    let mut checked_binary = false;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| ToolError::io(display, &e))?;
        if n == 0 {
            break;
        }
        if !checked_binary {
            checked_binary = true;
            if line.iter().take(8192).any(|b| *b == 0) {
                return Err(ToolError::Failed(format!(
                    "{display} appears to be a binary file; read only handles text and images."
                )));
            }
        }
        lineno += 1;
        if lineno < offset || stop_note.is_some() {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if lineno == offset && (cursor > 0 || text.len() > READ_MAX_BYTES) {
            // A long line: page through it by character position.
            let chars: Vec<char> = text.chars().collect();
            let start = cursor.min(chars.len());
            let mut end = start;
            let mut bytes = 0usize;
            while end < chars.len() && bytes + chars[end].len_utf8() <= READ_MAX_BYTES {
                bytes += chars[end].len_utf8();
                end += 1;
            }
            out.extend(&chars[start..end]);
            first_out = lineno;
            last_out = lineno;
            if end < chars.len() {
                stop_note = Some(format!(
                    "[Line {lineno} is longer than {} KB; showing characters {start}-{end} of {}. \
                     Use offset={lineno} cursor={end} to continue.]",
                    READ_MAX_BYTES / 1024,
                    chars.len()
                ));
            }
            continue;
        }
        let lines_out = if first_out == 0 {
            0
        } else {
            last_out - first_out + 1
        };
        if lines_out >= limit || out.len() + text.len() + 1 > READ_MAX_BYTES {
            stop_note = Some(String::new());
            continue;
        }
        if first_out == 0 {
            first_out = lineno;
        } else {
            out.push('\n');
        }
        out.push_str(text);
        last_out = lineno;
    }
    if offset > lineno.max(1) {
        return Err(ToolError::Failed(format!(
            "offset {offset} is beyond the end of {display} ({lineno} lines)."
        )));
    }
    let truncated = stop_note.is_some();
    if let Some(note) = stop_note {
        let note = if note.is_empty() {
            format!(
                "[Showing lines {first_out}-{last_out} of {lineno}. Use offset={} to continue.]",
                last_out + 1
            )
        } else {
            note
        };
        out.push_str("\n\n");
        out.push_str(&note);
    }
    Ok(ReadResult {
        text: out,
        start_line: first_out.max(1),
        end_line: last_out,
        total_lines: lineno,
        truncated,
    })
}

#[async_trait]
impl Tool for ReadTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let a: ReadArgs = parse_args("read", args)?;
        let ws = workspace_for(ctx);
        let p = ws.resolve(&a.path)?;
        let offset = a.offset.map_or(1, num_to_usize).max(1);
        let limit = a
            .limit
            .map_or(READ_MAX_LINES, num_to_usize)
            .clamp(1, READ_MAX_LINES);
        let cursor = a.cursor.map_or(0, num_to_usize);
        let optional = a.optional.unwrap_or(false);
        let user_path = a.path.clone();
        blocking(move || {
            let display = display_rel(&p);
            let mut file = match ws.open_read(&p) {
                Ok(f) => f,
                Err(ToolError::NotFound(_)) if optional => {
                    return Ok(ToolOutput::json(json!({
                        "status": "not_found",
                        "path": user_path,
                    }))
                    .with_meta(format!("from {display}")));
                }
                Err(ToolError::NotFound(_)) => {
                    return Err(ToolError::NotFound(format!("File not found: {user_path}")));
                }
                Err(e) => return Err(e),
            };
            let mut head = [0u8; 16];
            let n = file.read(&mut head).map_err(|e| ToolError::io(&display, &e))?;
            if let Some(mime) = image_mime(&display, &head[..n]) {
                let bytes = ws.read_file(&p, IMAGE_MAX_BYTES)?;
                let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
                return Ok(ToolOutput {
                    content: vec![
                        ContentBlock::Text {
                            text: format!("Read image file [{mime}] {display} ({} bytes)", bytes.len()),
                        },
                        ContentBlock::Image {
                            data,
                            mime_type: mime.to_owned(),
                        },
                    ],
                    details: Some(json!({"kind": "image", "path": display, "mimeType": mime, "bytes": bytes.len()})),
                    is_error: false,
                    meta: Some(format!("from {display}")),
                });
            }
            let file = ws.open_read(&p)?;
            let r = read_text(file, &display, offset, limit, cursor)?;
            Ok(ToolOutput::text(r.text.clone())
                .with_details(json!({
                    "kind": "text",
                    "content": r.text,
                    "path": display,
                    "startLine": r.start_line,
                    "endLine": r.end_line,
                    "totalLines": r.total_lines,
                    "truncated": r.truncated,
                }))
                .with_meta(format!("from {display}")))
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// write
// ---------------------------------------------------------------------------------------------

pub struct WriteTool {
    spec: ToolSpec,
}

impl Default for WriteTool {
    fn default() -> Self {
        Self {
            spec: spec("write"),
        }
    }
}

#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

#[async_trait]
impl Tool for WriteTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let a: WriteArgs = parse_args("write", args)?;
        let ws = workspace_for(ctx);
        let p = ws.resolve(&a.path)?;
        blocking(move || {
            ws.write_file(&p, a.content.as_bytes(), true)?;
            let display = display_rel(&p);
            Ok(ToolOutput::text(format!(
                "Successfully wrote {} bytes to {display}",
                a.content.len()
            ))
            .with_details(json!({"kind": "write", "path": display, "bytes": a.content.len()}))
            .with_meta(format!("to {display}")))
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// edit
// ---------------------------------------------------------------------------------------------

pub struct EditTool {
    spec: ToolSpec,
}

impl Default for EditTool {
    fn default() -> Self {
        Self { spec: spec("edit") }
    }
}

#[derive(Deserialize)]
struct EditArgs {
    path: String,
    edits: Vec<EditOp>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct EditOp {
    pub old_text: String,
    pub new_text: String,
}

/// Apply exact replacements against `original`: each `old_text` must occur exactly once and the
/// matched regions must not overlap. CRLF files accept LF edits.
pub fn apply_edits(original: &str, edits: &[EditOp]) -> Result<(String, usize), String> {
    let crlf = original.contains("\r\n");
    let mut spans: Vec<(usize, usize, String)> = Vec::with_capacity(edits.len());
    for (i, e) in edits.iter().enumerate() {
        if e.old_text.is_empty() {
            return Err(format!(
                "edits[{i}].oldText is empty; it must quote existing text."
            ));
        }
        let (needle, replacement) = if !original.contains(&e.old_text) && crlf {
            (
                e.old_text.replace('\n', "\r\n"),
                e.new_text.replace('\n', "\r\n"),
            )
        } else {
            (e.old_text.clone(), e.new_text.clone())
        };
        let mut matches = original.match_indices(&needle);
        let Some((start, _)) = matches.next() else {
            return Err(format!(
                "edits[{i}].oldText was not found in the file. It must match the current \
                 contents exactly (including whitespace); read the file again."
            ));
        };
        let extra = matches.count();
        if extra > 0 {
            return Err(format!(
                "edits[{i}].oldText matches {} times; include more surrounding text so it is \
                 unique.",
                extra + 1
            ));
        }
        spans.push((start, start + needle.len(), replacement));
    }
    spans.sort_by_key(|s| s.0);
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err("Two edits overlap; merge them into one edit.".into());
        }
    }
    let mut out = String::with_capacity(original.len());
    let mut pos = 0;
    for (start, end, rep) in &spans {
        out.push_str(&original[pos..*start]);
        out.push_str(rep);
        pos = *end;
    }
    out.push_str(&original[pos..]);
    Ok((out, spans.len()))
}

#[async_trait]
impl Tool for EditTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let a: EditArgs = parse_args("edit", args)?;
        if a.edits.is_empty() {
            return Err(ToolError::invalid(
                "edit",
                "edits must contain at least one edit",
            ));
        }
        let ws = workspace_for(ctx);
        let p = ws.resolve(&a.path)?;
        blocking(move || {
            let display = display_rel(&p);
            let bytes = ws.read_file(&p, EDIT_MAX_BYTES)?;
            let original = String::from_utf8(bytes).map_err(|_| {
                ToolError::Failed(format!("{display} is not valid UTF-8 text; edit refused."))
            })?;
            let (updated, count) = apply_edits(&original, &a.edits)
                .map_err(|m| ToolError::Failed(format!("Edit of {display} failed: {m}")))?;
            ws.write_file(&p, updated.as_bytes(), false)?;
            Ok(ToolOutput::text(format!(
                "Successfully replaced {count} block(s) in {display}."
            ))
            .with_details(json!({
                "kind": "edit",
                "path": display,
                "replacements": count,
                "bytesBefore": original.len(),
                "bytesAfter": updated.len(),
            }))
            .with_meta(format!("in {display}")))
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// apply_patch
// ---------------------------------------------------------------------------------------------

pub struct ApplyPatchTool {
    spec: ToolSpec,
}

impl Default for ApplyPatchTool {
    fn default() -> Self {
        Self {
            spec: spec("apply_patch"),
        }
    }
}

#[derive(Deserialize)]
struct PatchArgs {
    input: String,
}

enum Planned {
    Write {
        path: ResolvedPath,
        contents: String,
        tag: char,
    },
    Delete {
        path: ResolvedPath,
    },
    Move {
        from: ResolvedPath,
        to: ResolvedPath,
        contents: String,
    },
}

fn plan_patch(ws: &Workspace, ops: Vec<patch::PatchOp>) -> Result<Vec<Planned>, ToolError> {
    use patch::PatchOp;
    let mut plan = Vec::with_capacity(ops.len());
    // Paths deleted earlier in the same patch may be re-added.
    let mut deleted: Vec<ResolvedPath> = Vec::new();
    for op in ops {
        match op {
            PatchOp::Add { path, contents } => {
                let p = ws.resolve(&path)?;
                if ws.exists(&p) && !deleted.contains(&p) {
                    return Err(ToolError::Failed(format!(
                        "Add File {path}: the file already exists. Delete it earlier in the \
                         patch or use Update File."
                    )));
                }
                plan.push(Planned::Write {
                    path: p,
                    contents,
                    tag: 'A',
                });
            }
            PatchOp::Delete { path } => {
                let p = ws.resolve(&path)?;
                if !ws.exists(&p) {
                    return Err(ToolError::NotFound(format!(
                        "Delete File {path}: file not found."
                    )));
                }
                deleted.push(p.clone());
                plan.push(Planned::Delete { path: p });
            }
            PatchOp::Update {
                path,
                move_to,
                chunks,
            } => {
                let p = ws.resolve(&path)?;
                let bytes = ws.read_file(&p, EDIT_MAX_BYTES).map_err(|e| match e {
                    ToolError::NotFound(_) => {
                        ToolError::NotFound(format!("Update File {path}: file not found."))
                    }
                    other => other,
                })?;
                let original = String::from_utf8(bytes).map_err(|_| {
                    ToolError::Failed(format!("{path} is not valid UTF-8 text; patch refused."))
                })?;
                let updated = if chunks.is_empty() {
                    original
                } else {
                    patch::apply_chunks(&original, &chunks, &path).map_err(ToolError::Failed)?
                };
                match move_to {
                    Some(dest) => {
                        let to = ws.resolve(&dest)?;
                        if to != p && ws.exists(&to) && !deleted.contains(&to) {
                            return Err(ToolError::Failed(format!(
                                "Move to {dest}: the destination already exists."
                            )));
                        }
                        plan.push(Planned::Move {
                            from: p,
                            to,
                            contents: updated,
                        });
                    }
                    None => plan.push(Planned::Write {
                        path: p,
                        contents: updated,
                        tag: 'M',
                    }),
                }
            }
        }
    }
    Ok(plan)
}

#[async_trait]
impl Tool for ApplyPatchTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let a: PatchArgs = parse_args("apply_patch", args)?;
        let ops = patch::parse_patch(&a.input).map_err(|m| ToolError::invalid("apply_patch", m))?;
        let ws = workspace_for(ctx);
        blocking(move || {
            // Everything is checked and computed before the first write, so a bad hunk leaves
            // the workspace untouched.
            let plan = plan_patch(&ws, ops)?;
            let mut summary = Vec::with_capacity(plan.len());
            for step in plan {
                match step {
                    Planned::Write {
                        path,
                        contents,
                        tag,
                    } => {
                        ws.write_file(&path, contents.as_bytes(), true)?;
                        summary.push((tag, display_rel(&path)));
                    }
                    Planned::Delete { path } => {
                        ws.remove_file(&path)?;
                        summary.push(('D', display_rel(&path)));
                    }
                    Planned::Move { from, to, contents } => {
                        ws.write_file(&from, contents.as_bytes(), false)?;
                        if from != to {
                            ws.create_parents(&to)?;
                            ws.rename(&from, &to)?;
                        }
                        summary.push(('M', display_rel(&to)));
                    }
                }
            }
            let mut text = String::from("Success. Updated the following files:");
            for (tag, path) in &summary {
                text.push_str(&format!("\n{tag} {path}"));
            }
            let files: Vec<Value> = summary
                .iter()
                .map(|(tag, path)| json!({"op": tag.to_string(), "path": path}))
                .collect();
            Ok(ToolOutput::text(text).with_details(json!({"kind": "patch", "files": files})))
        })
        .await
    }
}
