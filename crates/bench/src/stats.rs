//! Latency summaries (nearest-rank percentiles, like the reference harness) in milliseconds.

use std::time::Duration;

use serde_json::{json, Value};

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A summary of latencies in ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of_ms(mut ms: Vec<f64>) -> Summary {
        if ms.is_empty() {
            return Summary::default();
        }
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        Summary {
            n,
            min: ms[0],
            p50: pct(&ms, 50.0),
            p90: pct(&ms, 90.0),
            p99: pct(&ms, 99.0),
            max: ms[n - 1],
            mean: ms.iter().sum::<f64>() / n as f64,
        }
    }

    pub fn of(durations: &[Duration]) -> Summary {
        Summary::of_ms(durations.iter().map(|d| d.as_secs_f64() * 1e3).collect())
    }

    /// From nanosecond samples (the rps hot loop stores `u32`/`u64` ns to stay cheap).
    pub fn of_nanos(ns: &[u64]) -> Summary {
        Summary::of_ms(ns.iter().map(|&n| n as f64 / 1e6).collect())
    }

    pub fn to_json(self) -> Value {
        json!({
            "n": self.n, "min": round3(self.min), "p50": round3(self.p50), "p90": round3(self.p90),
            "p99": round3(self.p99), "max": round3(self.max), "mean": round3(self.mean),
        })
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms  (n={})",
            self.p50, self.p90, self.p99, self.max, self.n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of_ms((1..=100).map(f64::from).collect());
        assert_eq!(
            (s.p50, s.p90, s.p99, s.max, s.min),
            (50.0, 90.0, 99.0, 100.0, 1.0)
        );
        let one = Summary::of_ms(vec![3.0]);
        assert_eq!((one.p50, one.p99), (3.0, 3.0));
        assert_eq!(Summary::of_ms(vec![]).n, 0);
    }
}
