//! A log-bucketed latency histogram in microseconds: 128 linear buckets below 128 µs, then
//! 64 buckets per power of two (relative error under 1.6 %). Fixed size, whatever the run
//! length, so memory stays bounded.

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS; // 128
const HALF: u64 = SUB / 2; // 64
const NBUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * HALF) as usize;

/// Latencies in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; NBUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64; // floor(log2 v) >= SUB_BITS
    let shift = e - SUB_BITS as u64 + 1;
    (SUB + (e - SUB_BITS as u64) * HALF + ((v >> shift) - HALF)) as usize
}

/// The largest value that falls into bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let e = (i - SUB) / HALF + SUB_BITS as u64;
    let m = (i - SUB) % HALF + HALF;
    let shift = e - SUB_BITS as u64 + 1;
    ((m + 1) << shift) - 1
}

impl Histogram {
    /// Adds one latency.
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.sum += micros as u128;
        self.max = self.max.max(micros);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Largest sample.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean, in microseconds.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The `q` quantile (0..=1): the upper bound of the bucket holding it, capped at the max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous() {
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            255,
            256,
            1000,
            65_535,
            1 << 40,
            u64::MAX >> 1,
        ] {
            let i = index(v);
            assert!(upper(i) >= v, "v={v} i={i} upper={}", upper(i));
            if i > 0 {
                assert!(upper(i - 1) < v, "v={v}");
            }
            assert!(i < NBUCKETS);
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.02, "{p50}");
        assert_eq!(h.quantile(1.0), 10_000);
    }
}
