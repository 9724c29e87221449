//! `pincer node install`: a systemd user service that runs `pincer node run` at login (and
//! restarts it). Nothing is enabled here; the caller prints how to enable it.

use std::path::{Path, PathBuf};

/// Unit name.
pub const UNIT_NAME: &str = "pincer-node.service";
/// Environment file (0600) with the gateway secret, so the unit itself holds none.
pub const ENV_FILE: &str = "service.env";

/// What to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The `pincer` binary to run.
    pub exe: PathBuf,
    pub url: String,
    pub display_name: Option<String>,
    pub tls_fingerprint: Option<String>,
    /// Gateway secret written to the environment file (never into the unit).
    pub token: Option<String>,
    pub password: Option<String>,
    /// `PINCER_STATE_DIR` for the service (the node dir lives under it).
    pub state_dir: PathBuf,
    pub node_dir: PathBuf,
    /// `$XDG_CONFIG_HOME` (default `~/.config`).
    pub config_home: PathBuf,
    /// Replace an existing unit.
    pub force: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Installed {
    pub unit_path: PathBuf,
    pub env_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0} already exists (pass --force to replace it)")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// `$XDG_CONFIG_HOME` or `~/.config`.
pub fn default_config_home() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"))
}

pub fn unit_path(config_home: &Path) -> PathBuf {
    config_home.join("systemd").join("user").join(UNIT_NAME)
}

/// One systemd command-line word: double-quoted, with `\`, `"`, `%` and `$` escaped.
fn systemd_word(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn no_newlines(what: &str, v: &str) -> Result<(), InstallError> {
    if v.contains(['\n', '\r', '\0']) {
        return Err(InstallError::Invalid(format!(
            "{what} must not contain line breaks"
        )));
    }
    Ok(())
}

/// The unit text.
pub fn unit_text(o: &InstallOptions, env_file: Option<&Path>) -> Result<String, InstallError> {
    let mut exec = vec![
        systemd_word(&o.exe.display().to_string()),
        "node".into(),
        "run".into(),
        "--url".into(),
        systemd_word(&o.url),
    ];
    if let Some(n) = &o.display_name {
        no_newlines("--display-name", n)?;
        exec.push("--display-name".into());
        exec.push(systemd_word(n));
    }
    if let Some(f) = &o.tls_fingerprint {
        exec.push("--tls-fingerprint".into());
        exec.push(systemd_word(f));
    }
    no_newlines("--url", &o.url)?;
    let state = o.state_dir.display().to_string();
    no_newlines("the state dir", &state)?;
    let mut text = String::new();
    text.push_str("[Unit]\n");
    text.push_str("Description=Pincer node host (runs commands for a Pincer gateway)\n");
    text.push_str("Documentation=pincer node --help\n");
    text.push_str("After=network-online.target\n");
    text.push_str("Wants=network-online.target\n\n");
    text.push_str("[Service]\n");
    text.push_str("Type=simple\n");
    text.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    text.push_str(&format!(
        "Environment={}\n",
        systemd_word(&format!("PINCER_STATE_DIR={state}"))
    ));
    if let Some(env) = env_file {
        text.push_str(&format!("EnvironmentFile=-{}\n", env.display()));
    }
    text.push_str("Restart=on-failure\n");
    text.push_str("RestartSec=5\n\n");
    text.push_str("[Install]\n");
    text.push_str("WantedBy=default.target\n");
    Ok(text)
}

/// Write the unit (and the environment file when a secret is given).
pub fn install(o: &InstallOptions) -> Result<Installed, InstallError> {
    let unit_path = unit_path(&o.config_home);
    if unit_path.exists() && !o.force {
        return Err(InstallError::Exists(unit_path));
    }
    // Validate everything before writing anything.
    unit_text(o, None)?;
    let env_path = if o.token.is_some() || o.password.is_some() {
        let path = o.node_dir.join(ENV_FILE);
        let mut text = String::new();
        if let Some(t) = &o.token {
            no_newlines("--token", t)?;
            text.push_str(&format!("PINCER_GATEWAY_TOKEN={t}\n"));
        }
        if let Some(p) = &o.password {
            no_newlines("--password", p)?;
            text.push_str(&format!("PINCER_GATEWAY_PASSWORD={p}\n"));
        }
        crate::files::write_private(&path, text.as_bytes()).map_err(|source| InstallError::Io {
            path: path.clone(),
            source,
        })?;
        Some(path)
    } else {
        None
    };
    let text = unit_text(o, env_path.as_deref())?;
    if let Some(dir) = unit_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| InstallError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(&unit_path, text).map_err(|source| InstallError::Io {
        path: unit_path.clone(),
        source,
    })?;
    Ok(Installed {
        unit_path,
        env_path,
    })
}

/// How to start it (printed, never run).
pub fn enable_instructions() -> String {
    format!(
        "To start it now and at every login:\n  systemctl --user daemon-reload\n  systemctl --user enable --now {UNIT_NAME}\nTo keep it running while you are logged out:\n  loginctl enable-linger \"$USER\"\nLogs: journalctl --user -u {UNIT_NAME} -f"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn opts(dir: &Path) -> InstallOptions {
        InstallOptions {
            exe: PathBuf::from("/usr/local/bin/pincer"),
            url: "ws://gw.example:18789".into(),
            display_name: Some("Kitchen \"laptop\" 100%".into()),
            tls_fingerprint: None,
            token: Some("s3cret".into()),
            password: None,
            state_dir: dir.join("state"),
            node_dir: dir.join("state/node"),
            config_home: dir.join("config"),
            force: false,
        }
    }

    #[test]
    fn writes_unit_and_private_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        let done = install(&o).unwrap();
        let unit = std::fs::read_to_string(&done.unit_path).unwrap();
        assert!(unit.contains(r#"ExecStart="/usr/local/bin/pincer" node run --url "ws://gw.example:18789" --display-name "Kitchen \"laptop\" 100%%""#));
        assert!(!unit.contains("s3cret"), "the secret stays out of the unit");
        let env = done.env_path.unwrap();
        assert_eq!(
            std::fs::read_to_string(&env).unwrap(),
            "PINCER_GATEWAY_TOKEN=s3cret\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(matches!(install(&o), Err(InstallError::Exists(_))));
        let forced = InstallOptions { force: true, ..o };
        assert!(install(&forced).is_ok());
    }

    #[test]
    fn refuses_line_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.display_name = Some("a\nExecStartPre=/bin/evil".into());
        assert!(matches!(install(&o), Err(InstallError::Invalid(_))));
    }
}
