//! Bubblewrap sandbox for exec in sandboxed sessions.
//!
//! The command runs in fresh user/pid/ipc/uts/cgroup (and, unless allowed, network)
//! namespaces. The filesystem is rebuilt from scratch: system directories read-only, a small set
//! of `/etc` files read-only, fresh `/proc`, `/dev` and `/tmp`, and the workspace bound
//! read-write (or read-only). Everything else — home directories, the gateway's state dir with its
//! tokens and database — is simply absent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::error::ToolError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// `bwrap` binary (looked up on PATH when relative).
    pub bwrap: PathBuf,
    /// Allow network access (default: no network, `--unshare-net`).
    pub network: bool,
    /// Bind the workspace read-only (`workspaceAccess: ro`; also disables file writes).
    pub workspace_read_only: bool,
    /// Extra host paths bound read-only at the same location.
    pub extra_ro_binds: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bwrap: PathBuf::from("bwrap"),
            network: false,
            workspace_read_only: false,
            extra_ro_binds: Vec::new(),
        }
    }
}

/// Why the sandbox cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "Sandboxing is required for this session but bubblewrap (bwrap) is not installed on the \
         gateway host; install the Debian/Ubuntu package `bubblewrap`. Commands will not run \
         unsandboxed."
    )]
    Missing,
    #[error(
        "Sandboxing is required for this session but bubblewrap cannot create namespaces on this \
         host ({0}). Enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 \
         / user.max_user_namespaces > 0, or the AppArmor restriction \
         kernel.apparmor_restrict_unprivileged_userns=0), or run the gateway where namespaces are \
         permitted (containers need a seccomp profile that allows unshare/clone). Commands will \
         not run unsandboxed."
    )]
    NoNamespaces(String),
}

impl From<SandboxError> for ToolError {
    fn from(e: SandboxError) -> Self {
        ToolError::Unavailable(e.to_string())
    }
}

/// A usable sandbox runtime (bwrap found and probed).
#[derive(Debug, Clone)]
pub struct Sandbox {
    config: SandboxConfig,
    bwrap: PathBuf,
}

type ProbeCache = Mutex<Vec<(PathBuf, Result<(), SandboxError>)>>;

fn probe_cache() -> &'static ProbeCache {
    static CACHE: OnceLock<ProbeCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

fn locate(bwrap: &Path) -> Option<PathBuf> {
    if bwrap.components().count() > 1 {
        return bwrap.is_file().then(|| bwrap.to_path_buf());
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    path.split(':')
        .map(|d| Path::new(d).join(bwrap))
        .find(|p| p.is_file())
}

/// Run a trivial command in all the namespaces we will use; cached per binary.
fn probe(bwrap: &Path) -> Result<(), SandboxError> {
    if let Ok(cache) = probe_cache().lock() {
        if let Some((_, r)) = cache.iter().find(|(p, _)| p == bwrap) {
            return r.clone();
        }
    }
    let out = Command::new(bwrap)
        .args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "true",
        ])
        .env_clear()
        .output();
    let result = match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(SandboxError::NoNamespaces(
            String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SandboxError::Missing),
        Err(e) => Err(SandboxError::NoNamespaces(e.to_string())),
    };
    if let Ok(mut cache) = probe_cache().lock() {
        cache.push((bwrap.to_path_buf(), result.clone()));
    }
    result
}

impl Sandbox {
    /// Find bwrap and check it can create namespaces here. Blocking (runs bwrap once per binary,
    /// then cached): call it from the blocking pool or at start-up.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let bwrap = locate(&config.bwrap).ok_or(SandboxError::Missing)?;
        probe(&bwrap)?;
        Ok(Self { config, bwrap })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    pub fn bwrap_path(&self) -> &Path {
        &self.bwrap
    }

    /// The bwrap argv (without the program) that runs `inner` (program + args) in `cwd` with
    /// exactly `env`.
    pub fn wrap_args(
        &self,
        workspace: &Path,
        cwd: &Path,
        env: &[(String, String)],
        inner: &[String],
        pty: bool,
    ) -> Vec<String> {
        let mut a: Vec<String> = Vec::with_capacity(64 + env.len() * 3);
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
        push(&["--die-with-parent", "--unshare-all"]);
        if self.config.network {
            push(&["--share-net"]);
        }
        if !pty {
            // A new session blocks TIOCSTI injection into a controlling terminal; PTY jobs need
            // their terminal as controlling tty, and have no host terminal to inject into.
            push(&["--new-session"]);
        }
        push(&["--cap-drop", "ALL", "--hostname", "sandbox"]);
        push(&["--ro-bind", "/usr", "/usr"]);
        for dir in ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"] {
            let p = Path::new(dir);
            match std::fs::read_link(p) {
                Ok(target) => {
                    let t = target.to_string_lossy().into_owned();
                    push(&["--symlink", &t, dir]);
                }
                Err(_) if p.is_dir() => push(&["--ro-bind", dir, dir]),
                Err(_) => {}
            }
        }
        for etc in [
            "/etc/alternatives",
            "/etc/ld.so.cache",
            "/etc/ld.so.conf",
            "/etc/ld.so.conf.d",
            "/etc/localtime",
            "/etc/passwd",
            "/etc/group",
            "/etc/nsswitch.conf",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/ssl",
            "/etc/ca-certificates",
            "/etc/profile",
            "/etc/bash.bashrc",
            "/etc/inputrc",
            "/etc/mime.types",
        ] {
            push(&["--ro-bind-try", etc, etc]);
        }
        push(&[
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/var/tmp",
        ]);
        for extra in &self.config.extra_ro_binds {
            let e = extra.to_string_lossy().into_owned();
            push(&["--ro-bind-try", &e, &e]);
        }
        let ws = workspace.to_string_lossy().into_owned();
        if self.config.workspace_read_only {
            push(&["--ro-bind", &ws, &ws]);
        } else {
            push(&["--bind", &ws, &ws]);
        }
        let cwd = cwd.to_string_lossy().into_owned();
        push(&["--chdir", &cwd, "--clearenv"]);
        for (k, v) in env {
            push(&["--setenv", k, v]);
        }
        push(&["--"]);
        a.extend(inner.iter().cloned());
        a
    }
}
