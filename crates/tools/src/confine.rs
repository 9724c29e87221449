//! Workspace path confinement for file tools and exec's working directory.
//!
//! Two layers:
//! 1. **Lexical**: the model's path is normalised (`.`/`..` folded, `~` expanded) and must land
//!    under a root (the workspace, or an extra root the config allows). `..` that climbs above the
//!    root and absolute paths elsewhere are refused before touching the filesystem.
//! 2. **Kernel-enforced resolution**: every open goes through `openat2(2)` relative to the root's
//!    directory fd with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so a symlink (or a directory
//!    swapped for a symlink after the check: TOCTOU) cannot lead outside. A symlink that stays
//!    inside but is absolute makes the kernel refuse (`EXDEV`); we then canonicalise, re-check that
//!    the target is inside a root, and reopen the canonical path with `RESOLVE_NO_SYMLINKS`, which
//!    fails closed if anything changes in between. Kernels without `openat2` fall back to
//!    canonicalise-and-check plus `O_NOFOLLOW` on the final component.
//!
//! All functions here block; callers run them on the blocking pool.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::ToolError;

#[derive(Debug, Clone)]
struct Root {
    /// As configured (absolute, normalised) — absolute user paths may use this spelling.
    configured: PathBuf,
    /// Canonical (symlinks resolved) — what opens are relative to.
    canonical: PathBuf,
    writable: bool,
}

/// The set of directories a session's tools may touch.
#[derive(Debug, Clone)]
pub struct Workspace {
    roots: Vec<Root>,
}

/// A user path mapped onto a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    root: usize,
    /// Relative to the root, normalised, no `..`; empty = the root itself.
    pub rel: PathBuf,
    /// Absolute (canonical root + rel) — for messages and for exec.
    pub abs: PathBuf,
}

impl Workspace {
    /// `root` must be an existing directory.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, ToolError> {
        Ok(Self {
            roots: vec![make_root(root.as_ref(), true)?],
        })
    }

    /// Allow another directory (config: extra roots / `workspaceOnly: false` style opt-ins).
    pub fn with_extra_root(
        mut self,
        path: impl AsRef<Path>,
        writable: bool,
    ) -> Result<Self, ToolError> {
        self.roots.push(make_root(path.as_ref(), writable)?);
        Ok(self)
    }

    /// Make the workspace read-only for file tools (`workspaceAccess: ro`).
    pub fn read_only(mut self) -> Self {
        for r in &mut self.roots {
            r.writable = false;
        }
        self
    }

    /// The same workspace without extra roots (what a sandboxed session sees).
    pub fn workspace_only(&self) -> Self {
        Self {
            roots: self.roots.iter().take(1).cloned().collect(),
        }
    }

    /// Canonical workspace directory.
    pub fn root(&self) -> &Path {
        self.roots
            .first()
            .map_or(Path::new("/"), |r| r.canonical.as_path())
    }

    pub fn is_writable(&self, p: &ResolvedPath) -> bool {
        self.roots.get(p.root).is_some_and(|r| r.writable)
    }

    fn roots_display(&self) -> String {
        let list: Vec<String> = self
            .roots
            .iter()
            .map(|r| r.canonical.display().to_string())
            .collect();
        list.join(", ")
    }

    /// Map a model-supplied path to a root, refusing escapes (lexical layer only).
    pub fn resolve(&self, user: &str) -> Result<ResolvedPath, ToolError> {
        if user.trim().is_empty() {
            return Err(ToolError::PathDenied("Path is empty.".into()));
        }
        if user.contains('\0') {
            return Err(ToolError::PathDenied("Path contains a NUL byte.".into()));
        }
        let expanded = expand_home(user);
        let path = Path::new(&expanded);
        if path.is_absolute() {
            let normalized = normalize_absolute(path);
            for (i, root) in self.roots.iter().enumerate() {
                for base in [&root.canonical, &root.configured] {
                    if let Ok(rel) = normalized.strip_prefix(base) {
                        return Ok(ResolvedPath {
                            root: i,
                            rel: rel.to_path_buf(),
                            abs: root.canonical.join(rel),
                        });
                    }
                }
            }
            return Err(ToolError::PathDenied(format!(
                "Path '{user}' is outside the workspace ({}). File tools may only access files \
                 inside the workspace; use a relative path.",
                self.roots_display()
            )));
        }
        let mut rel = PathBuf::new();
        for comp in path.components() {
            match comp {
                Component::Normal(c) => rel.push(c),
                Component::CurDir => {}
                Component::ParentDir => {
                    if !rel.pop() {
                        return Err(ToolError::PathDenied(format!(
                            "Path '{user}' escapes the workspace ({}) via '..'. Use a path \
                             inside the workspace.",
                            self.root().display()
                        )));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {}
            }
        }
        Ok(ResolvedPath {
            root: 0,
            abs: self.root().join(&rel),
            rel,
        })
    }

    fn root_fd(&self, idx: usize) -> Result<OwnedFd, ToolError> {
        let root = self
            .roots
            .get(idx)
            .ok_or_else(|| ToolError::PathDenied("Unknown workspace root.".into()))?;
        rustix::fs::open(
            &root.canonical,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            ToolError::Unavailable(format!(
                "Workspace directory {} cannot be opened: {e}",
                root.canonical.display()
            ))
        })
    }

    /// Open `p` (relative to its root) with kernel-enforced confinement.
    fn open_at(&self, p: &ResolvedPath, flags: OFlags, mode: Mode) -> Result<OwnedFd, ToolError> {
        let dir = self.root_fd(p.root)?;
        let rel: &Path = if p.rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &p.rel
        };
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&dir, rel, flags | OFlags::CLOEXEC, mode, resolve) {
            Ok(fd) => Ok(fd),
            Err(Errno::XDEV) | Err(Errno::LOOP) => self.open_via_canonical(p, flags, mode),
            Err(Errno::NOSYS) | Err(Errno::PERM) if !openat2_supported() => {
                self.open_fallback(p, flags, mode)
            }
            Err(e) => Err(open_error(p, e)),
        }
    }

    /// A symlink made `RESOLVE_BENEATH` refuse: follow it ourselves and accept only if the target
    /// is inside a root, then reopen without following any symlink (fails closed on races).
    fn open_via_canonical(
        &self,
        p: &ResolvedPath,
        flags: OFlags,
        mode: Mode,
    ) -> Result<OwnedFd, ToolError> {
        let target = canonicalize_existing_prefix(&p.abs);
        let inside = self.locate_canonical(&target).ok_or_else(|| {
            ToolError::PathDenied(format!(
                "Path '{}' resolves through a symbolic link to '{}', which is outside the \
                 workspace ({}).",
                p.abs.display(),
                target.display(),
                self.roots_display()
            ))
        })?;
        let dir = self.root_fd(inside.root)?;
        let rel: &Path = if inside.rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &inside.rel
        };
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS;
        rustix::fs::openat2(&dir, rel, flags | OFlags::CLOEXEC, mode, resolve).map_err(|e| {
            if e == Errno::LOOP || e == Errno::XDEV {
                ToolError::PathDenied(format!(
                    "Path '{}' changed while it was being opened (symbolic link race); refused.",
                    p.abs.display()
                ))
            } else {
                open_error(p, e)
            }
        })
    }

    /// No `openat2`: canonicalise, check, open with `O_NOFOLLOW` on the last component.
    fn open_fallback(
        &self,
        p: &ResolvedPath,
        flags: OFlags,
        mode: Mode,
    ) -> Result<OwnedFd, ToolError> {
        let target = canonicalize_existing_prefix(&p.abs);
        if self.locate_canonical(&target).is_none() {
            return Err(ToolError::PathDenied(format!(
                "Path '{}' resolves to '{}', which is outside the workspace ({}).",
                p.abs.display(),
                target.display(),
                self.roots_display()
            )));
        }
        rustix::fs::open(&target, flags | OFlags::CLOEXEC | OFlags::NOFOLLOW, mode)
            .map_err(|e| open_error(p, e))
    }

    fn locate_canonical(&self, target: &Path) -> Option<ResolvedPath> {
        self.roots.iter().enumerate().find_map(|(i, r)| {
            target
                .strip_prefix(&r.canonical)
                .ok()
                .map(|rel| ResolvedPath {
                    root: i,
                    rel: rel.to_path_buf(),
                    abs: target.to_path_buf(),
                })
        })
    }

    fn require_writable(&self, p: &ResolvedPath) -> Result<(), ToolError> {
        if self.is_writable(p) {
            Ok(())
        } else {
            Err(ToolError::PathDenied(format!(
                "Path '{}' is read-only for this session.",
                p.abs.display()
            )))
        }
    }

    /// Open a regular file for reading.
    pub fn open_read(&self, p: &ResolvedPath) -> Result<File, ToolError> {
        // O_NONBLOCK so a FIFO planted in the workspace cannot hang the tool; it is irrelevant
        // for regular files, and anything else is refused below.
        let fd = self.open_at(p, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
        let st = rustix::fs::fstat(&fd).map_err(|e| open_error(p, e))?;
        let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        if kind == rustix::fs::FileType::Directory {
            return Err(ToolError::Failed(format!(
                "'{}' is a directory, not a file.",
                p.abs.display()
            )));
        }
        if kind != rustix::fs::FileType::RegularFile {
            return Err(ToolError::PathDenied(format!(
                "'{}' is not a regular file.",
                p.abs.display()
            )));
        }
        let fl = OFlags::RDONLY;
        rustix::fs::fcntl_setfl(&fd, fl).map_err(|e| open_error(p, e))?;
        Ok(File::from(fd))
    }

    /// Read a whole regular file (bounded by `max_bytes`: larger files are refused).
    pub fn read_file(&self, p: &ResolvedPath, max_bytes: u64) -> Result<Vec<u8>, ToolError> {
        use std::io::Read;
        let file = self.open_read(p)?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > max_bytes {
            return Err(ToolError::Failed(format!(
                "'{}' is too large ({len} bytes; limit {max_bytes}).",
                p.abs.display()
            )));
        }
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(max_bytes + 1)
            .read_to_end(&mut buf)
            .map_err(|e| ToolError::io(&p.abs.display().to_string(), &e))?;
        Ok(buf)
    }

    /// Does `p` exist (without following a final symlink out of the workspace)?
    pub fn exists(&self, p: &ResolvedPath) -> bool {
        self.open_at(p, OFlags::PATH, Mode::empty()).is_ok()
    }

    /// Create the parent directories of `p` inside the root.
    pub fn create_parents(&self, p: &ResolvedPath) -> Result<(), ToolError> {
        self.require_writable(p)?;
        let Some(parent) = p.rel.parent() else {
            return Ok(());
        };
        let mut prefix = PathBuf::new();
        for comp in parent.components() {
            let Component::Normal(name) = comp else {
                continue;
            };
            let dir = self.open_at(
                &ResolvedPath {
                    root: p.root,
                    abs: p.abs.clone(),
                    rel: prefix.clone(),
                },
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )?;
            match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(open_error(p, e)),
            }
            prefix.push(name);
        }
        Ok(())
    }

    /// Write `data` to `p` (create or truncate), optionally creating parents.
    pub fn write_file(
        &self,
        p: &ResolvedPath,
        data: &[u8],
        create_parents: bool,
    ) -> Result<(), ToolError> {
        use std::io::Write;
        self.require_writable(p)?;
        if p.rel.as_os_str().is_empty() {
            return Err(ToolError::Failed(
                "Cannot write to the workspace directory itself.".into(),
            ));
        }
        if create_parents {
            self.create_parents(p)?;
        }
        let fd = self.open_at(
            p,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
            Mode::from_raw_mode(0o644),
        )?;
        let st = rustix::fs::fstat(&fd).map_err(|e| open_error(p, e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(ToolError::PathDenied(format!(
                "'{}' is not a regular file.",
                p.abs.display()
            )));
        }
        let mut file = File::from(fd);
        file.write_all(data)
            .and_then(|()| file.flush())
            .map_err(|e| ToolError::io(&p.abs.display().to_string(), &e))
    }

    fn parent_fd(&self, p: &ResolvedPath) -> Result<(OwnedFd, PathBuf), ToolError> {
        let name = p.rel.file_name().ok_or_else(|| {
            ToolError::PathDenied("Refusing to operate on the workspace directory itself.".into())
        })?;
        let parent = ResolvedPath {
            root: p.root,
            rel: p.rel.parent().map(Path::to_path_buf).unwrap_or_default(),
            abs: p.abs.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let fd = self.open_at(&parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((fd, PathBuf::from(name)))
    }

    /// Remove a file (a final symlink is removed itself, never followed).
    pub fn remove_file(&self, p: &ResolvedPath) -> Result<(), ToolError> {
        self.require_writable(p)?;
        let (dir, name) = self.parent_fd(p)?;
        rustix::fs::unlinkat(&dir, &name, rustix::fs::AtFlags::empty())
            .map_err(|e| open_error(p, e))
    }

    /// Rename within the roots.
    pub fn rename(&self, from: &ResolvedPath, to: &ResolvedPath) -> Result<(), ToolError> {
        self.require_writable(from)?;
        self.require_writable(to)?;
        let (from_dir, from_name) = self.parent_fd(from)?;
        let (to_dir, to_name) = self.parent_fd(to)?;
        rustix::fs::renameat(&from_dir, &from_name, &to_dir, &to_name)
            .map_err(|e| open_error(from, e))
    }

    /// Check that `p` is a directory inside the roots and return its canonical absolute path
    /// (exec's working directory).
    pub fn directory(&self, p: &ResolvedPath) -> Result<PathBuf, ToolError> {
        let fd = self
            .open_at(p, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(|e| match e {
                ToolError::NotFound(_) => ToolError::NotFound(format!(
                    "Working directory '{}' does not exist.",
                    p.abs.display()
                )),
                other => other,
            })?;
        drop(fd);
        let canonical = canonicalize_existing_prefix(&p.abs);
        if self.locate_canonical(&canonical).is_none() {
            return Err(ToolError::PathDenied(format!(
                "Working directory '{}' is outside the workspace.",
                p.abs.display()
            )));
        }
        Ok(canonical)
    }
}

fn make_root(path: &Path, writable: bool) -> Result<Root, ToolError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| {
        ToolError::Unavailable(format!(
            "Workspace root {} is not usable: {e}",
            path.display()
        ))
    })?;
    if !canonical.is_dir() {
        return Err(ToolError::Unavailable(format!(
            "Workspace root {} is not a directory.",
            path.display()
        )));
    }
    let configured = if path.is_absolute() {
        normalize_absolute(path)
    } else {
        canonical.clone()
    };
    Ok(Root {
        configured,
        canonical,
        writable,
    })
}

fn open_error(p: &ResolvedPath, e: Errno) -> ToolError {
    match e {
        Errno::NOENT => ToolError::NotFound(format!("File not found: {}", p.abs.display())),
        Errno::NOTDIR => ToolError::NotFound(format!(
            "A parent of {} is not a directory.",
            p.abs.display()
        )),
        Errno::ISDIR => ToolError::Failed(format!("'{}' is a directory.", p.abs.display())),
        Errno::ACCESS | Errno::PERM | Errno::ROFS => {
            ToolError::PathDenied(format!("Permission denied: {}", p.abs.display()))
        }
        other => ToolError::Failed(format!("{}: {other}", p.abs.display())),
    }
}

fn openat2_supported() -> bool {
    use std::sync::OnceLock;
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        !matches!(
            rustix::fs::openat2(
                rustix::fs::CWD,
                ".",
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH,
            ),
            Err(Errno::NOSYS) | Err(Errno::PERM)
        )
    })
}

fn expand_home(user: &str) -> String {
    if user == "~" || user.starts_with("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            let mut s = home.to_string_lossy().into_owned();
            s.push_str(&user[1..]);
            return s;
        }
    }
    user.to_owned()
}

/// Fold `.` and `..` lexically (`..` at `/` stays at `/`).
fn normalize_absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Canonicalise the longest existing ancestor of `path` and append the rest.
pub(crate) fn canonicalize_existing_prefix(path: &Path) -> PathBuf {
    let mut tail: Vec<&OsStr> = Vec::new();
    let mut cur = path;
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name);
                cur = parent;
            }
            _ => return normalize_absolute(path),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lexical_layer() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path()).unwrap();
        assert_eq!(ws.resolve("a/./b/../c").unwrap().rel, PathBuf::from("a/c"));
        assert!(matches!(ws.resolve("../x"), Err(ToolError::PathDenied(_))));
        assert!(matches!(
            ws.resolve("a/../../x"),
            Err(ToolError::PathDenied(_))
        ));
        assert!(matches!(
            ws.resolve("/etc/passwd"),
            Err(ToolError::PathDenied(_))
        ));
        assert!(matches!(ws.resolve(""), Err(ToolError::PathDenied(_))));
        let inside = format!("{}/sub/f.txt", ws.root().display());
        assert_eq!(ws.resolve(&inside).unwrap().rel, PathBuf::from("sub/f.txt"));
        let sneaky = format!("{}/../x", ws.root().display());
        assert!(matches!(ws.resolve(&sneaky), Err(ToolError::PathDenied(_))));
    }
}
