//! Small helpers shared by the gateway modules.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Read a small pseudo-file (e.g. under `/proc`); these are served from memory by the kernel.
pub fn read_small(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// This process's resident set size in bytes (from `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) consumed by this process, in clock ticks (1/100 s on Linux).
pub fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised comm; utime and stime are fields 14 and 15 (1-based).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Host name of this machine.
pub fn hostname() -> String {
    read_small("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".to_string())
}

/// `linux <kernel release>` like the reference's presence `platform`.
pub fn platform_string() -> String {
    match read_small("/proc/sys/kernel/osrelease") {
        Some(rel) => format!("{} {rel}", std::env::consts::OS),
        None => std::env::consts::OS.to_string(),
    }
}

/// The reference's `deviceFamily` for this OS.
pub fn device_family() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Mac",
        "windows" => "Windows",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_readers_work_on_linux() {
        assert!(now_ms() > 1_600_000_000_000);
        if cfg!(target_os = "linux") {
            assert!(rss_bytes().is_some_and(|r| r > 0));
            assert!(cpu_ticks().is_some());
            assert!(platform_string().starts_with("linux "));
        }
    }
}
