//! `/proc` readings of the gateway (and of this process): RSS, HWM, threads, CPU seconds.

use std::time::Duration;

use serde_json::{json, Value};

/// Linux reports `/proc/<pid>/stat` times in USER_HZ, which is 100 on every mainstream arch.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSnap {
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub threads: u64,
    pub cpu_s: f64,
}

impl ProcSnap {
    pub fn read(pid: u32) -> Option<ProcSnap> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some(ProcSnap {
            rss_kb: field("VmRSS:"),
            hwm_kb: field("VmHWM:"),
            threads: field("Threads:"),
            cpu_s: cpu_seconds(&format!("/proc/{pid}/stat")).unwrap_or(0.0),
        })
    }

    /// Median RSS of `n` samples `gap` apart (allocator noise), other fields from that sample.
    pub async fn median(pid: u32, n: usize, gap: Duration) -> Option<ProcSnap> {
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            if let Some(s) = ProcSnap::read(pid) {
                rows.push(s);
            }
            if i + 1 < n {
                tokio::time::sleep(gap).await;
            }
        }
        rows.sort_by_key(|s| s.rss_kb);
        rows.get(rows.len() / 2).copied()
    }

    pub fn to_json(self) -> Value {
        json!({"rss_kb": self.rss_kb, "hwm_kb": self.hwm_kb, "threads": self.threads,
               "cpu_s": (self.cpu_s * 100.0).round() / 100.0})
    }
}

fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the `(comm)`, which may itself contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// CPU seconds used by this (bench) process so far.
pub fn self_cpu_s() -> f64 {
    cpu_seconds("/proc/self/stat").unwrap_or(0.0)
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn snap_json(s: Option<ProcSnap>) -> Value {
    s.map(ProcSnap::to_json).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let s = ProcSnap::read(std::process::id()).unwrap_or_default();
        assert!(s.rss_kb > 0 && s.threads >= 1);
        assert!(ProcSnap::read(u32::MAX).is_none());
    }
}
