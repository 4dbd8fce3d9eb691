//! CPU time and resident memory of a process, read from `/proc` (Linux only).

use std::time::Duration;

/// Clock ticks per second (`getconf CLK_TCK`, 100 on every usual Linux).
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of `pid` (`"self"` for this process), in seconds.
pub fn cpu_secs(pid: &str, tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields are counted after its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / tck)
}

/// VmRSS of `pid`, in KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// RSS samples (KiB) taken every second until stopped.
#[derive(Default, Clone)]
pub struct RssSamples {
    /// (seconds since the start of sampling, KiB)
    pub samples: Vec<(f64, u64)>,
}

impl RssSamples {
    pub fn peak(&self) -> u64 {
        self.samples.iter().map(|s| s.1).max().unwrap_or(0)
    }
    pub fn last(&self) -> u64 {
        self.samples.last().map(|s| s.1).unwrap_or(0)
    }
    pub fn first(&self) -> u64 {
        self.samples.first().map(|s| s.1).unwrap_or(0)
    }
    /// At most `n` samples, evenly spread (always including the last one).
    pub fn downsample(&self, n: usize) -> Vec<(f64, u64)> {
        let len = self.samples.len();
        if len <= n || n < 2 {
            return self.samples.clone();
        }
        (0..n)
            .map(|i| self.samples[i * (len - 1) / (n - 1)])
            .collect()
    }
}

/// Samples the RSS of `pid` every second until `stop` resolves.
pub async fn sample_rss(pid: String, stop: tokio::sync::watch::Receiver<bool>) -> RssSamples {
    let start = std::time::Instant::now();
    let mut out = RssSamples::default();
    let mut stop = stop;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(kib) = rss_kib(&pid) {
                    out.samples.push((start.elapsed().as_secs_f64(), kib));
                }
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    if let Some(kib) = rss_kib(&pid) {
                        out.samples.push((start.elapsed().as_secs_f64(), kib));
                    }
                    return out;
                }
            }
        }
    }
}

/// Busy CPU time of the whole machine (all cores; `/proc/stat` minus idle and iowait), seconds.
pub fn machine_busy_secs(tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counted in user already)
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle) as f64 / tck)
}
