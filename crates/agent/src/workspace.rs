//! The agent workspace: seeding a brand-new one with starter files, and reading the bootstrap
//! files that are injected into every system prompt (runtime.md §2.7).
//!
//! Injection order is `AGENTS.md, SOUL.md, IDENTITY.md, USER.md, BOOTSTRAP.md`, then
//! `MEMORY.md` (main sessions only). Each file is capped at `bootstrapMaxChars` (20,000) and
//! all files together at `bootstrapTotalMaxChars` (60,000); `USER.md` has its own 4,000-char
//! budget outside the total. A truncated file keeps its head and tail around a fixed notice; a
//! missing `AGENTS.md` is reported with a marker so the model knows it is absent.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Default per-file cap (`agents.defaults.bootstrapMaxChars`).
pub const DEFAULT_FILE_MAX_CHARS: usize = 20_000;
/// Default cap over all files (`agents.defaults.bootstrapTotalMaxChars`).
pub const DEFAULT_TOTAL_MAX_CHARS: usize = 60_000;
/// `USER.md`'s own budget.
pub const USER_FILE_MAX_CHARS: usize = 4_000;

/// The bootstrap files, in injection order.
pub const BOOTSTRAP_FILES: &[&str] = &[
    "AGENTS.md",
    "SOUL.md",
    "IDENTITY.md",
    "USER.md",
    "BOOTSTRAP.md",
    "MEMORY.md",
];

/// Files that must exist (a marker is injected when they do not).
const REQUIRED_FILES: &[&str] = &["AGENTS.md"];

/// Largest file read from disk (bigger files are read up to this and then truncated).
const READ_LIMIT_BYTES: u64 = 1024 * 1024;

/// Starter files written into a brand-new workspace. Pincer's own wording.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("AGENTS.md", AGENTS_TEMPLATE),
    ("SOUL.md", SOUL_TEMPLATE),
    ("IDENTITY.md", IDENTITY_TEMPLATE),
    ("USER.md", USER_TEMPLATE),
    ("BOOTSTRAP.md", BOOTSTRAP_TEMPLATE),
];

const AGENTS_TEMPLATE: &str = "# AGENTS.md — how this workspace works

This folder is your home base. The files here are loaded into your context at the start of
every conversation, so keep them short, current and useful.

## Every session
- Read what the user asked, then check `MEMORY.md` (if it exists) for context that matters.
- Prefer doing over describing: if a tool can answer the question, use it.
- When you learn something durable about the user or the project, write it down (see below).

## Memory
- `MEMORY.md`: long-lived facts, decisions and preferences worth keeping. Curate it; remove
  what is stale.
- `memory/YYYY-MM-DD.md`: a dated scratch log for the day. Use it for notes that may matter
  later but do not belong in `MEMORY.md` yet.
- `USER.md`: who the user is and how they like to work, written as short directives.

## Tools
- File tools work inside this workspace. Paths are relative to it.
- Ask before doing anything destructive or anything that leaves the machine (sending
  messages, publishing, deleting data) unless the user already asked for exactly that.
- Keep command output short: summarise instead of pasting long logs.

## Replies
- Answer in the user's language, concisely. Lead with the result, then the details.
- If a message needs no answer (for example in a busy group chat), reply with exactly
  `NO_REPLY`.
";

const SOUL_TEMPLATE: &str = "# SOUL.md — character

- Be genuinely helpful, not performatively helpful. Skip filler and flattery.
- Have opinions and say so, with reasons. Disagree politely when something looks wrong.
- Be resourceful: try to find the answer before asking. Ask when a guess would be costly.
- Respect privacy. What you see in this workspace and in conversations stays here.
- You are a guest in someone's digital life. Act with care.

Edit this file to shape the assistant's personality; it is loaded every session.
";

const IDENTITY_TEMPLATE: &str = "# IDENTITY.md — who you are

- Name: (not chosen yet)
- Kind of creature: (an AI assistant, a familiar, a ghost in the machine — pick one)
- Vibe: (warm? dry? playful? precise?)
- Emoji: (one emoji you sign with)

Fill this in together with the user during the first conversation.
";

const USER_TEMPLATE: &str = "# USER.md — about the user

Write short directives that should guide every conversation, one per line, each starting
with a verb such as Always, Never or Prefer. Note when you observed it.

<!-- observed: YYYY-MM-DD -->
- Prefer ... (replace with a real preference)

Keep this file under 4,000 characters; it is loaded every session.
";

const BOOTSTRAP_TEMPLATE: &str = "# BOOTSTRAP.md — first run

This workspace was just created. Before anything else, get to know each other:

1. Say hello and ask the user what they would like to call you, and what you should call
   them.
2. Agree on a personality and an emoji; write them into `IDENTITY.md` and `SOUL.md`.
3. Ask how they like answers (length, tone, language) and record it in `USER.md`.
4. When that is done, delete this file. It is only needed once.
";

/// One injected (or missing) file, as reported in `systemPromptReport.injectedWorkspaceFiles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectedFile {
    pub name: String,
    pub path: String,
    pub missing: bool,
    pub raw_chars: usize,
    pub injected_chars: usize,
    pub truncated: bool,
    /// The text that goes into the prompt (empty when missing).
    #[serde(skip)]
    pub text: String,
}

/// Caps for [`load_bootstrap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapCaps {
    pub file_max_chars: usize,
    pub total_max_chars: usize,
    /// Inject `MEMORY.md` (main/private sessions).
    pub include_memory: bool,
}

impl Default for BootstrapCaps {
    fn default() -> Self {
        BootstrapCaps {
            file_max_chars: DEFAULT_FILE_MAX_CHARS,
            total_max_chars: DEFAULT_TOTAL_MAX_CHARS,
            include_memory: true,
        }
    }
}

/// Creates the workspace directory (0700) if needed and, when it is brand new (no
/// `AGENTS.md` yet and nothing else in it), writes the starter files. Existing files are
/// never overwritten. Returns the names of the files written. Blocking: call from
/// `spawn_blocking`.
pub fn ensure_workspace(dir: &Path, seed: bool) -> std::io::Result<Vec<&'static str>> {
    create_private_dir(dir)?;
    if !seed || dir.join("AGENTS.md").exists() {
        return Ok(Vec::new());
    }
    let brand_new = std::fs::read_dir(dir)?.next().is_none();
    let mut written = Vec::new();
    for (name, text) in TEMPLATES {
        if *name == "BOOTSTRAP.md" && !brand_new {
            continue;
        }
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(text.as_bytes())?;
                written.push(*name);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Reads the bootstrap files of `dir` with the caps applied. Blocking.
pub fn load_bootstrap(dir: &Path, caps: BootstrapCaps) -> Vec<InjectedFile> {
    let mut out = Vec::new();
    let mut total_left = caps.total_max_chars;
    for name in BOOTSTRAP_FILES {
        if *name == "MEMORY.md" && !caps.include_memory {
            continue;
        }
        let path = dir.join(name);
        let raw = read_text(&path);
        let Some(raw) = raw else {
            if REQUIRED_FILES.contains(name) {
                out.push(InjectedFile {
                    name: (*name).to_owned(),
                    path: path_string(&path),
                    missing: true,
                    raw_chars: 0,
                    injected_chars: 0,
                    truncated: false,
                    text: String::new(),
                });
            }
            continue;
        };
        let raw_chars = raw.chars().count();
        let is_user = *name == "USER.md";
        let cap = if is_user {
            caps.file_max_chars.min(USER_FILE_MAX_CHARS)
        } else {
            caps.file_max_chars.min(total_left)
        };
        let (text, truncated) = truncate_with_notice(&raw, raw_chars, cap, name);
        let injected_chars = text.chars().count();
        if !is_user {
            total_left = total_left.saturating_sub(injected_chars);
        }
        out.push(InjectedFile {
            name: (*name).to_owned(),
            path: path_string(&path),
            missing: false,
            raw_chars,
            injected_chars,
            truncated,
            text,
        });
    }
    out
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn read_text(path: &PathBuf) -> Option<String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(READ_LIMIT_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Keeps the head (about 70 %) and the tail of `text` around a notice so the whole is at
/// most `cap` characters.
fn truncate_with_notice(text: &str, chars: usize, cap: usize, name: &str) -> (String, bool) {
    if chars <= cap {
        return (text.to_owned(), false);
    }
    let notice = format!(
        "\n\n[… {name} is longer than its {cap}-character budget; the middle was left out. Read the file for the full text. …]\n\n"
    );
    let room = cap.saturating_sub(notice.chars().count());
    if room < 64 {
        // Too little budget for head, notice and tail: keep the beginning.
        return (text.chars().take(cap).collect(), true);
    }
    let head = room * 7 / 10;
    let tail = room - head;
    let head_text: String = text.chars().take(head).collect();
    let tail_text: String = text.chars().skip(chars - tail).collect();
    (format!("{head_text}{notice}{tail_text}"), true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn seeds_a_new_workspace_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        let written = ensure_workspace(&ws, true).unwrap();
        assert_eq!(
            written,
            vec![
                "AGENTS.md",
                "SOUL.md",
                "IDENTITY.md",
                "USER.md",
                "BOOTSTRAP.md"
            ]
        );
        std::fs::write(ws.join("SOUL.md"), "mine").unwrap();
        std::fs::remove_file(ws.join("BOOTSTRAP.md")).unwrap();
        assert!(ensure_workspace(&ws, true).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(ws.join("SOUL.md")).unwrap(), "mine");
        assert!(
            !ws.join("BOOTSTRAP.md").exists(),
            "bootstrap is not re-created"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&ws).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn existing_folder_gets_no_bootstrap_ritual() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let written = ensure_workspace(dir.path(), true).unwrap();
        assert!(written.contains(&"AGENTS.md"));
        assert!(!written.contains(&"BOOTSTRAP.md"));
        let dir2 = tempfile::tempdir().unwrap();
        assert!(ensure_workspace(dir2.path(), false).unwrap().is_empty());
    }

    #[test]
    fn caps_apply_per_file_total_and_user_budget() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("AGENTS.md"), "A".repeat(30_000)).unwrap();
        std::fs::write(p.join("SOUL.md"), "S".repeat(100)).unwrap();
        std::fs::write(p.join("USER.md"), "U".repeat(5_000)).unwrap();
        std::fs::write(p.join("MEMORY.md"), "M".repeat(50)).unwrap();
        let caps = BootstrapCaps {
            file_max_chars: 20_000,
            total_max_chars: 20_050,
            include_memory: true,
        };
        let files = load_bootstrap(p, caps);
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["AGENTS.md", "SOUL.md", "USER.md", "MEMORY.md"]);
        let agents = &files[0];
        assert!(agents.truncated);
        assert_eq!(agents.raw_chars, 30_000);
        assert_eq!(agents.injected_chars, 20_000);
        assert!(agents.text.starts_with("AAAA") && agents.text.ends_with("AAAA"));
        assert!(agents.text.contains("budget"));
        // 50 chars of the total remain for SOUL.md.
        assert_eq!(files[1].injected_chars, 50);
        assert!(files[1].truncated);
        // USER.md has its own 4,000 budget, outside the total.
        assert_eq!(files[2].injected_chars, 4_000);
        // Nothing left of the total for MEMORY.md.
        assert_eq!(files[3].injected_chars, 0);
    }

    #[test]
    fn missing_required_file_is_marked_and_memory_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("MEMORY.md"), "remember").unwrap();
        let files = load_bootstrap(
            dir.path(),
            BootstrapCaps {
                include_memory: false,
                ..BootstrapCaps::default()
            },
        );
        assert_eq!(files.len(), 1);
        assert!(files[0].missing && files[0].name == "AGENTS.md");
        let files = load_bootstrap(dir.path(), BootstrapCaps::default());
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].text, "remember");
    }
}
