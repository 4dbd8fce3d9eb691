//! Time through a handle.
//!
//! Layers below the binary read the time only through [`Clock`], so a test
//! can run several nodes in one process on a manual clock. The default clock
//! is the system clock in milliseconds since the Unix epoch. A simulation
//! uses [`Clock::tokio`], which follows tokio's (paused, auto-advancing)
//! clock, so simulated minutes take milliseconds and replay identically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
#[derive(Clone, Debug)]
pub struct Clock {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    System,
    Manual(Arc<AtomicU64>),
    /// `start_ms` plus the tokio time elapsed since `base`.
    Tokio {
        base: tokio::time::Instant,
        start_ms: u64,
    },
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self {
            source: Source::System,
        }
    }
    /// A clock that only moves when told to, starting at `start_ms`.
    pub fn manual(start_ms: u64) -> Self {
        Self {
            source: Source::Manual(Arc::new(AtomicU64::new(start_ms))),
        }
    }
    /// A clock reading `start_ms` now and moving with tokio's clock (for
    /// simulations on a paused runtime). Must be called inside a runtime.
    pub fn tokio(start_ms: u64) -> Self {
        Self {
            source: Source::Tokio {
                base: tokio::time::Instant::now(),
                start_ms,
            },
        }
    }
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.source {
            Source::Manual(t) => t.load(Ordering::SeqCst),
            Source::System => system_now_ms(),
            Source::Tokio { base, start_ms } => {
                let ms = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
                start_ms.saturating_add(ms)
            }
        }
    }
    /// Moves a manual clock forward (no effect on the other clocks).
    pub fn advance(&self, ms: u64) {
        if let Source::Manual(t) = &self.source {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// The system clock in milliseconds; only for the [`Clock::system`] handle
/// and for code that stamps CRDT updates with wall-clock time.
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Civil date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(1000);
        assert_eq!(c.now_ms(), 1000);
        c.advance(5);
        assert_eq!(c.now_ms(), 1005);
        assert!(Clock::system().now_ms() > 1_600_000_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = Clock::tokio(5000);
        assert_eq!(c.now_ms(), 5000);
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(c.now_ms(), 8000);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2015, 8, 30), 16_677);
        for d in [-1000i64, 0, 16_677, 20_000, 60_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
