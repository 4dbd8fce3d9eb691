//! A small metrics registry and the Prometheus text exposition format
//! (version 0.0.4), without a metrics framework.
//!
//! A series is registered once by (name, labels) in a [`Registry`]; its
//! lock is taken only to register a series and to render them all. Callers
//! keep the returned [`Counter`] and [`Histogram`] handles (in a struct
//! built once, such as one per table or RPC endpoint) and bump atomics on
//! the hot path, so no request takes a shared lock.
//!
//! Gauges that are cheap to compute when scraped (table sizes, cluster
//! health, process memory) are not registered: the scrape handler writes
//! them with a [`TextEncoder`] next to what [`Registry::render`] writes.
//!
//! The process has one [`global`] registry, as Prometheus client libraries
//! do; nodes simulated in one process (tests) share it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// The `Content-Type` of the text format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Upper bounds (seconds) of the buckets of every duration histogram: from
/// half a millisecond (a local K2V read) to 30 s (past any RPC timeout).
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The type of a metric family, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (restarts at 0 with the process).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted into cumulative buckets.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A monotonic counter; clones share the value.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct HistogramCore {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative): `counts[i]` holds those
    /// in `(bounds[i-1], bounds[i]]`, the last one those above every bound.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// A histogram of durations with fixed buckets (seconds); clones share the
/// counts. Observing is two relaxed atomic additions.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramCore>);

/// What a [`Histogram`] holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations at or below it), bounds ascending,
    /// counts cumulative; the `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Histogram {
    /// A histogram with these bucket bounds (ascending), not registered.
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds ascend");
        Self(Arc::new(HistogramCore {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }))
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let core = &self.0;
        let i = core
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(core.bounds.len());
        if let Some(c) = core.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        core.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The cumulative buckets, count and sum. `count` is the sum of the
    /// buckets read, so it always equals the `+Inf` bucket.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let core = &self.0;
        let mut acc = 0u64;
        let mut buckets = Vec::with_capacity(core.bounds.len());
        for (b, c) in core.bounds.iter().zip(core.counts.iter()) {
            acc += c.load(Ordering::Relaxed);
            buckets.push((*b, acc));
        }
        let count = acc + core.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        let sum = core.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        HistogramSnapshot {
            buckets,
            count,
            sum,
        }
    }
}

/// A counter and a duration histogram of the same requests: what every
/// instrumented operation keeps.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    /// Requests started.
    pub count: Counter,
    /// Their durations.
    pub duration: Histogram,
}

impl RequestMetrics {
    /// Counts a request now and times it until the returned guard drops
    /// (whether the request succeeded, failed or was cancelled).
    pub fn start(&self) -> Timer<'_> {
        self.count.inc();
        Timer {
            histogram: &self.duration,
            started: Instant::now(),
        }
    }
}

/// Observes the time since its creation into a histogram when dropped.
#[must_use = "the duration is recorded when the timer drops"]
pub struct Timer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed());
    }
}

#[derive(Debug, Clone)]
enum Series {
    Counter(Counter),
    Histogram(Histogram),
}

type LabelSet = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: Kind,
    series: BTreeMap<LabelSet, Series>,
}

/// The registered counters and histograms, by name then labels.
#[derive(Debug, Default)]
pub struct Registry {
    families: RwLock<BTreeMap<&'static str, Family>>,
}

/// The registry of this process.
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::default)
}

impl Registry {
    /// The counter `name{labels}`, registered on first use; later calls
    /// with the same name and labels return the same counter.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        match self.series(name, help, Kind::Counter, labels, || {
            Series::Counter(Counter::default())
        }) {
            Some(Series::Counter(c)) => c,
            _ => Counter::default(),
        }
    }

    /// The duration histogram `name{labels}` with [`DURATION_BUCKETS`],
    /// registered on first use.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Histogram {
        match self.series(name, help, Kind::Histogram, labels, || {
            Series::Histogram(Histogram::new(DURATION_BUCKETS))
        }) {
            Some(Series::Histogram(h)) => h,
            _ => Histogram::new(DURATION_BUCKETS),
        }
    }

    /// Declares family `name` before any of its series exists (series
    /// registered on demand, such as error counters by status code), so its
    /// `# TYPE` line is written from the first scrape on.
    pub fn declare(&self, name: &'static str, help: &'static str, kind: Kind) {
        debug_assert!(valid_name(name, true), "metric name {name:?}");
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        let f = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: BTreeMap::new(),
        });
        if f.kind != kind {
            tracing::warn!(metric = name, "metric registered twice with two kinds");
        }
    }

    /// A [`RequestMetrics`]: a counter and a duration histogram, each
    /// given as (name, help), with the same `labels`.
    pub fn requests(
        &self,
        counter: (&'static str, &'static str),
        duration: (&'static str, &'static str),
        labels: &[(&'static str, &str)],
    ) -> RequestMetrics {
        RequestMetrics {
            count: self.counter(counter.0, counter.1, labels),
            duration: self.histogram(duration.0, duration.1, labels),
        }
    }

    /// Looks a series up under the read lock, registering it under the
    /// write lock when missing. None (and a warning) when `name` is already
    /// registered with another kind: the caller gets a detached handle, so
    /// a naming bug loses that series rather than corrupting the output.
    fn series(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&'static str, &str)],
        make: impl FnOnce() -> Series,
    ) -> Option<Series> {
        debug_assert!(valid_name(name, true), "metric name {name:?}");
        debug_assert!(
            labels
                .iter()
                .all(|(k, _)| valid_name(k, false) && *k != "le"),
            "label names of {name}"
        );
        let key: LabelSet = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        {
            let families = self.families.read().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = families.get(name) {
                if f.kind != kind {
                    tracing::warn!(metric = name, "metric registered twice with two kinds");
                    return None;
                }
                if let Some(s) = f.series.get(&key) {
                    return Some(s.clone());
                }
            }
        }
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        let f = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: BTreeMap::new(),
        });
        if f.kind != kind {
            tracing::warn!(metric = name, "metric registered twice with two kinds");
            return None;
        }
        Some(f.series.entry(key).or_insert_with(make).clone())
    }

    /// Writes every registered family, sorted by name then labels.
    pub fn render(&self, out: &mut TextEncoder) {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        for (name, f) in families.iter() {
            out.family(name, f.help, f.kind);
            for (labels, s) in f.series.iter() {
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                match s {
                    Series::Counter(c) => out.sample(name, &labels, c.get()),
                    Series::Histogram(h) => out.histogram(name, &labels, &h.snapshot()),
                }
            }
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names, without `:` for labels.
fn valid_name(s: &str, metric: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (metric && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let mut chars = s.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

/// A sample value: integers are written exactly, floats as Prometheus
/// spells them (`NaN`, `+Inf`, `-Inf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An integer.
    Int(u64),
    /// A float.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Self::Int(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Self::Int(v as u64)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Int(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Builds a text-format (0.0.4) exposition. Every sample of a family must
/// be written right after its [`TextEncoder::family`] line, and a family
/// declared once.
#[derive(Debug, Default)]
pub struct TextEncoder {
    out: String,
}

impl TextEncoder {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the `# HELP` and `# TYPE` lines of family `name`.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// Writes one sample line `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => write_float(&mut self.out, v),
        }
        self.out.push('\n');
    }

    /// A gauge family with a single sample.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: impl Into<Value>,
    ) {
        self.family(name, help, Kind::Gauge);
        self.sample(name, labels, value);
    }

    /// Writes the `_bucket` (with `le`), `_sum` and `_count` samples of one
    /// histogram series.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (bound, count) in h
            .buckets
            .iter()
            .copied()
            .chain(std::iter::once((f64::INFINITY, h.count)))
        {
            let mut le = String::new();
            write_float(&mut le, bound);
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", le.as_str()));
            self.sample(&bucket, &with_le, count);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count);
    }

    /// The exposition text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_help_are_escaped() {
        let mut e = TextEncoder::new();
        e.gauge(
            "x",
            "a \\ help\nline",
            &[("a", "q\"uo\\te\nnl"), ("b", "é")],
            1u64,
        );
        assert_eq!(
            e.finish(),
            "# HELP x a \\\\ help\\nline\n# TYPE x gauge\nx{a=\"q\\\"uo\\\\te\\nnl\",b=\"é\"} 1\n"
        );
    }

    #[test]
    fn values_are_spelled_as_prometheus_does() {
        let mut e = TextEncoder::new();
        e.sample("a", &[], f64::NAN);
        e.sample("b", &[], f64::INFINITY);
        e.sample("c", &[], f64::NEG_INFINITY);
        e.sample("d", &[], 0.25);
        e.sample("e", &[], u64::MAX);
        e.sample("f", &[], true);
        assert_eq!(
            e.finish(),
            "a NaN\nb +Inf\nc -Inf\nd 0.25\ne 18446744073709551615\nf 1\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        static B: &[f64] = &[0.01, 0.1, 1.0];
        let h = Histogram::new(B);
        for ms in [1, 5, 10, 50, 500, 2000, 3000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(0.01, 3), (0.1, 4), (1.0, 5)]);
        assert_eq!(s.count, 7);
        assert!((s.sum - 5.566).abs() < 1e-9, "{}", s.sum);

        let mut e = TextEncoder::new();
        e.histogram("d", &[("t", "x")], &s);
        assert_eq!(
            e.finish(),
            "d_bucket{t=\"x\",le=\"0.01\"} 3\n\
             d_bucket{t=\"x\",le=\"0.1\"} 4\n\
             d_bucket{t=\"x\",le=\"1\"} 5\n\
             d_bucket{t=\"x\",le=\"+Inf\"} 7\n\
             d_sum{t=\"x\"} 5.566\n\
             d_count{t=\"x\"} 7\n"
        );
    }

    #[test]
    fn registry_hands_out_shared_handles_and_renders_sorted() {
        let r = Registry::default();
        let a = r.counter("req_counter", "Requests", &[("ep", "b")]);
        let b = r.counter("req_counter", "Requests", &[("ep", "a")]);
        a.add(2);
        r.counter("req_counter", "Requests", &[("ep", "b")]).inc();
        b.inc();
        assert_eq!(a.get(), 3);
        let m = r.requests(("op_counter", "Ops"), ("op_duration", "Op durations"), &[]);
        drop(m.start());
        // Same name, other kind: a detached handle, nothing registered.
        let stray = r.histogram("req_counter", "oops", &[]);
        stray.observe(Duration::from_secs(1));
        r.declare("err_counter", "Errors", Kind::Counter);

        let mut e = TextEncoder::new();
        r.render(&mut e);
        let text = e.finish();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("_bucket")).collect();
        assert_eq!(
            lines,
            vec![
                "# HELP err_counter Errors",
                "# TYPE err_counter counter",
                "# HELP op_counter Ops",
                "# TYPE op_counter counter",
                "op_counter 1",
                "# HELP op_duration Op durations",
                "# TYPE op_duration histogram",
                lines[7],
                "op_duration_count 1",
                "# HELP req_counter Requests",
                "# TYPE req_counter counter",
                "req_counter{ep=\"a\"} 1",
                "req_counter{ep=\"b\"} 3",
            ]
        );
        assert!(lines[7].starts_with("op_duration_sum "), "{}", lines[7]);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("op_duration_bucket"))
                .count(),
            DURATION_BUCKETS.len() + 1
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("api_k2v_request_counter", true));
        assert!(valid_name("a:b", true));
        assert!(!valid_name("a:b", false));
        assert!(!valid_name("1a", true));
        assert!(!valid_name("", true));
        assert!(!valid_name("a-b", false));
    }
}
