//! The `apply_patch` format: `*** Begin Patch` … `*** End Patch` with `Add File`, `Delete File`
//! and `Update File` (+ optional `Move to`) sections; update hunks start with `@@ [context]` and
//! hold ` ` context, `-` removed and `+` added lines, optionally closed by `*** End of File`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOp {
    Add {
        path: String,
        contents: String,
    },
    Delete {
        path: String,
    },
    Update {
        path: String,
        move_to: Option<String>,
        chunks: Vec<Chunk>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Text after `@@` (a line to seek before matching), if any.
    pub context: Option<String>,
    pub old_lines: Vec<String>,
    pub new_lines: Vec<String>,
    /// `*** End of File`: the hunk must match at the end of the file.
    pub eof: bool,
}

const BEGIN: &str = "*** Begin Patch";
const END: &str = "*** End Patch";
const ADD: &str = "*** Add File: ";
const DELETE: &str = "*** Delete File: ";
const UPDATE: &str = "*** Update File: ";
const MOVE: &str = "*** Move to: ";
const EOF_MARK: &str = "*** End of File";

/// Parse a patch; errors name the line.
pub fn parse_patch(input: &str) -> Result<Vec<PatchOp>, String> {
    let lines: Vec<&str> = input.trim().lines().collect();
    let first = lines.first().map(|l| l.trim()).unwrap_or_default();
    if first != BEGIN {
        return Err(format!("The first line of the patch must be '{BEGIN}'."));
    }
    let last = lines.last().map(|l| l.trim()).unwrap_or_default();
    if last != END || lines.len() < 2 {
        return Err(format!("The last line of the patch must be '{END}'."));
    }
    let body = &lines[1..lines.len() - 1];
    let mut ops = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let line = body[i];
        let lineno = i + 2;
        if let Some(path) = line.strip_prefix(ADD) {
            let path = non_empty_path(path, lineno)?;
            i += 1;
            let mut contents = String::new();
            while i < body.len() && !body[i].starts_with("*** ") {
                let l = body[i];
                let Some(text) = l.strip_prefix('+') else {
                    return Err(format!(
                        "Line {}: every line of an added file must start with '+' (got '{l}').",
                        i + 2
                    ));
                };
                contents.push_str(text);
                contents.push('\n');
                i += 1;
            }
            ops.push(PatchOp::Add { path, contents });
        } else if let Some(path) = line.strip_prefix(DELETE) {
            ops.push(PatchOp::Delete {
                path: non_empty_path(path, lineno)?,
            });
            i += 1;
        } else if let Some(path) = line.strip_prefix(UPDATE) {
            let path = non_empty_path(path, lineno)?;
            i += 1;
            let mut move_to = None;
            if let Some(dest) = body.get(i).and_then(|l| l.strip_prefix(MOVE)) {
                move_to = Some(non_empty_path(dest, i + 2)?);
                i += 1;
            }
            let mut chunks: Vec<Chunk> = Vec::new();
            while i < body.len() {
                let l = body[i];
                if l.trim_end() == EOF_MARK {
                    match chunks.last_mut() {
                        Some(c) => c.eof = true,
                        None => {
                            return Err(format!("Line {}: '{EOF_MARK}' without a hunk.", i + 2))
                        }
                    }
                    i += 1;
                    continue;
                }
                if l.starts_with("*** ") {
                    break;
                }
                if let Some(rest) = l.strip_prefix("@@") {
                    let ctx = rest.trim();
                    chunks.push(Chunk {
                        context: (!ctx.is_empty()).then(|| ctx.to_owned()),
                        ..Chunk::default()
                    });
                    i += 1;
                    continue;
                }
                if chunks.is_empty() || chunks.last().is_some_and(|c| c.eof) {
                    chunks.push(Chunk::default());
                }
                let Some(chunk) = chunks.last_mut() else {
                    break;
                };
                if let Some(t) = l.strip_prefix('+') {
                    chunk.new_lines.push(t.to_owned());
                } else if let Some(t) = l.strip_prefix('-') {
                    chunk.old_lines.push(t.to_owned());
                } else if let Some(t) = l.strip_prefix(' ') {
                    chunk.old_lines.push(t.to_owned());
                    chunk.new_lines.push(t.to_owned());
                } else if l.is_empty() {
                    // Models often drop the leading space of an empty context line.
                    chunk.old_lines.push(String::new());
                    chunk.new_lines.push(String::new());
                } else {
                    return Err(format!(
                        "Line {}: unexpected line in update hunk for {path}: '{l}' (hunk lines \
                         start with ' ', '-' or '+').",
                        i + 2
                    ));
                }
                i += 1;
            }
            if chunks.is_empty() && move_to.is_none() {
                return Err(format!("Update of {path} has no hunks."));
            }
            ops.push(PatchOp::Update {
                path,
                move_to,
                chunks,
            });
        } else if line.trim().is_empty() {
            i += 1;
        } else {
            return Err(format!(
                "Line {lineno}: expected '{ADD}', '{DELETE}' or '{UPDATE}' but got '{line}'."
            ));
        }
    }
    if ops.is_empty() {
        return Err("The patch contains no file operations.".into());
    }
    Ok(ops)
}

fn non_empty_path(p: &str, lineno: usize) -> Result<String, String> {
    let p = p.trim();
    if p.is_empty() {
        Err(format!("Line {lineno}: missing file path."))
    } else {
        Ok(p.to_owned())
    }
}

/// Apply update hunks to `original`; returns the new contents (always newline-terminated).
pub fn apply_chunks(original: &str, chunks: &[Chunk], path: &str) -> Result<String, String> {
    let mut lines: Vec<String> = original.split('\n').map(str::to_owned).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut replacements: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let mut cursor = 0usize;
    for chunk in chunks {
        if let Some(ctx) = &chunk.context {
            match find_line(&lines, ctx, cursor) {
                Some(idx) => cursor = idx + 1,
                None => {
                    return Err(format!("Failed to find context '{ctx}' in {path}."));
                }
            }
        }
        if chunk.old_lines.is_empty() {
            let at = if chunk.context.is_some() && !chunk.eof {
                cursor
            } else {
                lines.len()
            };
            replacements.push((at, 0, chunk.new_lines.clone()));
            continue;
        }
        let mut old = chunk.old_lines.as_slice();
        let mut new = chunk.new_lines.as_slice();
        let mut found = find_sequence(&lines, old, cursor, chunk.eof);
        if found.is_none() && old.last().is_some_and(String::is_empty) {
            // A trailing blank context line that is really the file's final newline.
            old = &old[..old.len() - 1];
            if new.last().is_some_and(String::is_empty) {
                new = &new[..new.len() - 1];
            }
            found = find_sequence(&lines, old, cursor, chunk.eof);
        }
        let Some(start) = found else {
            return Err(format!(
                "Failed to find the expected lines in {path}:\n{}",
                chunk.old_lines.join("\n")
            ));
        };
        replacements.push((start, old.len(), new.to_vec()));
        cursor = start + old.len();
    }
    replacements.sort_by_key(|r| r.0);
    for (start, len, new) in replacements.into_iter().rev() {
        let end = (start + len).min(lines.len());
        lines.splice(start..end, new);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

fn find_line(lines: &[String], needle: &str, from: usize) -> Option<usize> {
    let needle = needle.trim();
    (from..lines.len())
        .find(|&i| lines[i] == needle)
        .or_else(|| (from..lines.len()).find(|&i| lines[i].trim() == needle))
}

/// Find `pattern` in `lines` at or after `from`: exact, then ignoring trailing whitespace, then
/// ignoring surrounding whitespace. With `eof`, the match must end at the last line.
fn find_sequence(lines: &[String], pattern: &[String], from: usize, eof: bool) -> Option<usize> {
    if pattern.len() > lines.len() {
        return None;
    }
    let last_start = lines.len() - pattern.len();
    let candidates: Vec<usize> = if eof {
        vec![last_start]
    } else {
        (from.min(last_start + 1)..=last_start).collect()
    };
    let eqs: [fn(&str, &str) -> bool; 3] = [
        |a, b| a == b,
        |a, b| a.trim_end() == b.trim_end(),
        |a, b| a.trim() == b.trim(),
    ];
    for eq in eqs {
        for &start in &candidates {
            if pattern
                .iter()
                .enumerate()
                .all(|(k, p)| eq(&lines[start + k], p))
            {
                return Some(start);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_all_operations() {
        let p = "*** Begin Patch\n*** Add File: a.txt\n+one\n+two\n*** Update File: b.txt\n*** Move to: c.txt\n@@ fn main\n ctx\n-old\n+new\n*** End of File\n*** Delete File: d.txt\n*** End Patch";
        let ops = parse_patch(p).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(
            ops[0],
            PatchOp::Add {
                path: "a.txt".into(),
                contents: "one\ntwo\n".into()
            }
        );
        match &ops[1] {
            PatchOp::Update {
                path,
                move_to,
                chunks,
            } => {
                assert_eq!(path, "b.txt");
                assert_eq!(move_to.as_deref(), Some("c.txt"));
                assert_eq!(chunks[0].context.as_deref(), Some("fn main"));
                assert_eq!(chunks[0].old_lines, vec!["ctx", "old"]);
                assert_eq!(chunks[0].new_lines, vec!["ctx", "new"]);
                assert!(chunks[0].eof);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse_patch("*** Update File: x\n*** End Patch").is_err());
        assert!(parse_patch("*** Begin Patch\n*** Frobnicate: x\n*** End Patch").is_err());
        assert!(parse_patch("*** Begin Patch\n*** Add File: x\nno plus\n*** End Patch").is_err());
    }

    #[test]
    fn applies_hunks_with_context_and_eof() {
        let orig = "a\nb\nc\nb\nd\n";
        let chunks = vec![Chunk {
            context: Some("c".into()),
            old_lines: vec!["b".into()],
            new_lines: vec!["B".into()],
            eof: false,
        }];
        assert_eq!(apply_chunks(orig, &chunks, "f").unwrap(), "a\nb\nc\nB\nd\n");
        let append = vec![Chunk {
            context: None,
            old_lines: vec![],
            new_lines: vec!["e".into()],
            eof: true,
        }];
        assert_eq!(
            apply_chunks(orig, &append, "f").unwrap(),
            "a\nb\nc\nb\nd\ne\n"
        );
        let missing = vec![Chunk {
            context: None,
            old_lines: vec!["zzz".into()],
            new_lines: vec![],
            eof: false,
        }];
        assert!(apply_chunks(orig, &missing, "f")
            .unwrap_err()
            .contains("zzz"));
        // Whitespace-tolerant match.
        let ws = vec![Chunk {
            context: None,
            old_lines: vec!["  d  ".into()],
            new_lines: vec!["D".into()],
            eof: false,
        }];
        assert_eq!(apply_chunks(orig, &ws, "f").unwrap(), "a\nb\nc\nb\nD\n");
    }
}
