//! `k2v-bench`: a load generator for any Garage-compatible K2V endpoint.
//!
//! Every client task owns one keep-alive HTTP/1.1 connection and signs its own requests
//! (SigV4, service `k2v`, with `garage_api`'s signer). After a warm-up, it measures for a
//! fixed duration and prints one JSON line on stdout (for scripts) and a table on stderr.
//!
//! Operations (`--op`):
//! - `insert`: InsertItem (`PUT /{b}/{pk}?sort_key=`) of a fresh key each time, so items do
//!   not pile up concurrent values;
//! - `read`: ReadItem of random keys among `--keys` keys the tool prefills itself;
//! - `read-batch`: ReadBatch (`POST /{b}?search`), one range search of `--batch-size` items
//!   starting at a random prefilled key;
//! - `insert-batch`: InsertBatch (`POST /{b}`) of `--batch-size` fresh keys;
//! - `poll`: wake-up latency of PollItem: each of the `--concurrency` pollers polls its own
//!   key with the current token on one connection while a second connection overwrites the
//!   item; the latency is from the start of the insert to the return of the poll;
//! - `mixed`: `--read-pct` % reads of prefilled keys, the rest inserts of fresh keys.
//!
//! With `--server-pid`, the server's CPU time (utime+stime from `/proc/PID/stat`) over the
//! measured window and its RSS (VmRSS, sampled every second) are reported.

#![deny(clippy::unwrap_used)]

#[path = "k2v_bench/conn.rs"]
mod conn;
#[path = "k2v_bench/hist.rs"]
mod hist;
#[path = "k2v_bench/procstat.rs"]
mod procstat;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::header::{HeaderName, HeaderValue, ACCEPT};
use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use conn::{enc, Conn, Resp, Target, TransportError};
use hist::Histogram;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    Insert,
    Read,
    ReadBatch,
    InsertBatch,
    Poll,
    Mixed,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Read => "read",
            Op::ReadBatch => "read-batch",
            Op::InsertBatch => "insert-batch",
            Op::Poll => "poll",
            Op::Mixed => "mixed",
        }
    }
    fn needs_prefill(self) -> bool {
        matches!(self, Op::Read | Op::ReadBatch | Op::Mixed)
    }
}

/// Load generator for Garage-compatible K2V endpoints.
#[derive(Parser, Debug, Clone)]
#[command(name = "k2v-bench", version)]
struct Opt {
    /// K2V endpoint (`http://host:port`).
    #[arg(long, default_value = "http://127.0.0.1:3904")]
    endpoint: String,
    /// Region of the signatures (the server's `s3_region`).
    #[arg(long, default_value = "garage")]
    region: String,
    /// Access key id.
    #[arg(long, env = "K2V_KEY_ID")]
    key_id: String,
    /// Secret key.
    #[arg(long, env = "K2V_SECRET", hide_env_values = true)]
    secret: String,
    /// Bucket (needs read and write permissions).
    #[arg(long, default_value = "default")]
    bucket: String,
    /// Operation to measure.
    #[arg(long, value_enum, default_value = "insert")]
    op: Op,
    /// Concurrent client tasks, one connection each (poll: pollers, two connections each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured time, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up before measuring, seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Value size, bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Prefilled keys (read, read-batch, mixed).
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Partition keys the keys are spread over.
    #[arg(long, default_value_t = 10)]
    partitions: usize,
    /// Items per batch operation.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Mixed: share of reads, percent.
    #[arg(long, default_value_t = 50)]
    read_pct: u32,
    /// Poll: delay between sending the poll and the insert that wakes it, ms.
    #[arg(long, default_value_t = 50)]
    poll_delay_ms: u64,
    /// Per-request timeout, ms.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Sample this process's CPU and RSS during the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Send `UNSIGNED-PAYLOAD` instead of the body's SHA-256.
    #[arg(long)]
    unsigned_payload: bool,
    /// Do not print the table on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Everything the client tasks share.
struct Ctx {
    opt: Opt,
    target: Arc<Target>,
    /// Percent-encoded bucket.
    b: String,
    /// Distinguishes this run's keys from any earlier run's.
    run: String,
    measure_start: Instant,
    end: Instant,
}

impl Ctx {
    fn read_pk(&self, p: usize) -> String {
        format!("r{}-{p}", self.run)
    }
    fn read_key(&self, i: usize) -> (String, String) {
        (self.read_pk(i % self.opt.partitions), format!("k{i:08}"))
    }
}

/// What one task measured.
#[derive(Default)]
struct Stats {
    hist: Histogram,
    ops: u64,
    items: u64,
    errors: BTreeMap<String, u64>,
    samples: Vec<String>,
}

impl Stats {
    fn in_window(ctx: &Ctx, started: Instant, finished: Instant) -> bool {
        started >= ctx.measure_start && finished <= ctx.end
    }

    fn ok(&mut self, ctx: &Ctx, started: Instant, finished: Instant, items: u64) {
        if Self::in_window(ctx, started, finished) {
            self.hist
                .record(finished.duration_since(started).as_micros() as u64);
            self.ops += 1;
            self.items += items;
        }
    }

    fn err(&mut self, ctx: &Ctx, started: Instant, finished: Instant, key: String, msg: String) {
        if self.samples.len() < 3 {
            self.samples.push(format!("{key}: {msg}"));
        }
        if Self::in_window(ctx, started, finished) {
            *self.errors.entry(key).or_default() += 1;
        }
    }

    /// Classifies an answer: `Ok(resp)` if 2xx, else records the error.
    fn check(
        &mut self,
        ctx: &Ctx,
        started: Instant,
        res: Result<Resp, TransportError>,
    ) -> Option<Resp> {
        let finished = Instant::now();
        match res {
            Ok(r) if (200..300).contains(&r.status) => Some(r),
            Ok(r) => {
                let msg = String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into_owned();
                self.err(ctx, started, finished, r.status.to_string(), msg);
                None
            }
            Err(TransportError(k, m)) => {
                self.err(ctx, started, finished, k.to_string(), m);
                None
            }
        }
    }

    fn merge(&mut self, o: Stats) {
        self.hist.merge(&o.hist);
        self.ops += o.ops;
        self.items += o.items;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for s in o.samples {
            if self.samples.len() < 5 && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
    }
}

fn random_value(rng: &mut StdRng, size: usize) -> Bytes {
    let mut v = vec![0u8; size];
    rng.fill_bytes(&mut v);
    Bytes::from(v)
}

/// The body of an InsertBatch of `keys` with the same (base64) value.
fn batch_body(keys: impl Iterator<Item = (String, String)>, b64: &str) -> Bytes {
    let mut s = String::from("[");
    for (n, (pk, sk)) in keys.enumerate() {
        if n > 0 {
            s.push(',');
        }
        s.push_str("{\"pk\":\"");
        s.push_str(&pk);
        s.push_str("\",\"sk\":\"");
        s.push_str(&sk);
        s.push_str("\",\"ct\":null,\"v\":\"");
        s.push_str(b64);
        s.push_str("\"}");
    }
    s.push(']');
    Bytes::from(s)
}

fn count_items(body: &[u8]) -> u64 {
    body.windows(4).filter(|w| w == b"\"sk\"").count() as u64
}

/// Writes the read keys with InsertBatch, 100 per request, on a few connections.
async fn prefill(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let chunk = 100;
    let chunks = ctx.opt.keys.div_ceil(chunk);
    let next = Arc::new(AtomicUsize::new(0));
    let mut rng = StdRng::from_entropy();
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(random_value(&mut rng, ctx.opt.value_size));
    let b64 = Arc::new(b64);
    let mut tasks = vec![];
    for _ in 0..ctx.opt.concurrency.clamp(1, 8) {
        let (ctx, next, b64) = (ctx.clone(), next.clone(), b64.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(ctx.target.clone());
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= chunks {
                    return Ok(());
                }
                let lo = c * chunk;
                let hi = (lo + chunk).min(ctx.opt.keys);
                let body = batch_body((lo..hi).map(|i| ctx.read_key(i)), &b64);
                let r = conn
                    .request(Method::POST, &format!("/{}", ctx.b), &[], body)
                    .await
                    .map_err(|e| anyhow::anyhow!("prefill: {}: {}", e.0, e.1))?;
                if !(200..300).contains(&r.status) {
                    anyhow::bail!(
                        "prefill: InsertBatch answered {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// One client task of every operation but poll.
async fn client(ctx: Arc<Ctx>, id: usize) -> Stats {
    let opt = &ctx.opt;
    let mut rng = StdRng::from_entropy();
    let value = random_value(&mut rng, opt.value_size);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&value);
    let accept = [(
        ACCEPT,
        HeaderValue::from_static("application/octet-stream, application/json"),
    )];
    let mut conn = Conn::new(ctx.target.clone());
    let mut st = Stats::default();
    let mut seq: u64 = 0;
    let p = opt.partitions;
    while Instant::now() < ctx.end {
        seq += 1;
        let op = match opt.op {
            Op::Mixed if rng.gen_range(0..100) < opt.read_pct => Op::Read,
            Op::Mixed => Op::Insert,
            o => o,
        };
        let started = Instant::now();
        match op {
            Op::Insert => {
                let pk = format!("w{}-{}", ctx.run, (id + seq as usize) % p);
                let path = format!("/{}/{}?sort_key=t{id}-{seq}", ctx.b, pk);
                let r = conn.request(Method::PUT, &path, &[], value.clone()).await;
                if st.check(&ctx, started, r).is_some() {
                    st.ok(&ctx, started, Instant::now(), 1);
                }
            }
            Op::Read => {
                let (pk, sk) = ctx.read_key(rng.gen_range(0..opt.keys));
                let path = format!("/{}/{}?sort_key={}", ctx.b, pk, sk);
                let r = conn
                    .request(Method::GET, &path, &accept, Bytes::new())
                    .await;
                if let Some(r) = st.check(&ctx, started, r) {
                    let raw = r.header("content-type") == Some("application/octet-stream");
                    if raw && r.body.len() != opt.value_size {
                        let msg = format!("{} bytes instead of {}", r.body.len(), opt.value_size);
                        st.err(&ctx, started, Instant::now(), "bad_body".into(), msg);
                    } else {
                        st.ok(&ctx, started, Instant::now(), 1);
                    }
                }
            }
            Op::ReadBatch => {
                let part = rng.gen_range(0..p.min(opt.keys).max(1));
                let in_part = (opt.keys + p - 1 - part) / p;
                let j = rng.gen_range(0..=in_part.saturating_sub(opt.batch_size));
                let start = format!("k{:08}", part + j * p);
                let body = format!(
                    "[{{\"partitionKey\":\"{}\",\"start\":\"{start}\",\"limit\":{}}}]",
                    ctx.read_pk(part),
                    opt.batch_size
                );
                let path = format!("/{}?search", ctx.b);
                let r = conn
                    .request(Method::POST, &path, &[], Bytes::from(body))
                    .await;
                if let Some(r) = st.check(&ctx, started, r) {
                    st.ok(&ctx, started, Instant::now(), count_items(&r.body));
                }
            }
            Op::InsertBatch => {
                let n = opt.batch_size;
                let keys = (0..n).map(|k| {
                    (
                        format!("w{}-{}", ctx.run, (id + k) % p),
                        format!("t{id}-{seq}-{k}"),
                    )
                });
                let body = batch_body(keys, &b64);
                let path = format!("/{}", ctx.b);
                let r = conn.request(Method::POST, &path, &[], body).await;
                if st.check(&ctx, started, r).is_some() {
                    st.ok(&ctx, started, Instant::now(), n as u64);
                }
            }
            Op::Poll | Op::Mixed => unreachable!("handled elsewhere"),
        }
    }
    st
}

/// One poller: PollItem on its own key, woken by an insert on a second connection.
async fn poller(ctx: Arc<Ctx>, id: usize) -> Stats {
    let opt = &ctx.opt;
    let mut rng = StdRng::from_entropy();
    let value = random_value(&mut rng, opt.value_size);
    let mut st = Stats::default();
    let mut pc = Conn::new(ctx.target.clone());
    let mut ic = Conn::new(ctx.target.clone());
    let path = format!("/{}/poll-{}?sort_key=s{id}", ctx.b, ctx.run);
    let token_header = HeaderName::from_static("x-garage-causality-token");
    let accept = [(
        ACCEPT,
        HeaderValue::from_static("application/octet-stream, application/json"),
    )];

    // Create the item and learn its token.
    let mut token: Option<String> = None;
    while token.is_none() && Instant::now() < ctx.end {
        let t0 = Instant::now();
        let r = ic.request(Method::PUT, &path, &[], value.clone()).await;
        if st.check(&ctx, t0, r).is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let r = ic.request(Method::GET, &path, &accept, Bytes::new()).await;
        if let Some(r) = st.check(&ctx, t0, r) {
            token = r.header("x-garage-causality-token").map(String::from);
        }
    }
    let delay = Duration::from_millis(opt.poll_delay_ms);
    while let Some(ct) = token.clone() {
        if Instant::now() >= ctx.end {
            break;
        }
        let poll_path = format!("{path}&causality_token={ct}&timeout=30");
        let poll = async {
            let r = pc
                .request(Method::GET, &poll_path, &accept, Bytes::new())
                .await;
            (r, Instant::now())
        };
        tokio::pin!(poll);
        let early = tokio::select! {
            r = &mut poll => Some(r),
            _ = tokio::time::sleep(delay) => None,
        };
        if let Some((r, at)) = early {
            // Returned before anything was written: count it and go on with its token.
            if let Some(r) = st.check(&ctx, at, r) {
                st.err(
                    &ctx,
                    at,
                    at,
                    "early_wakeup".into(),
                    format!("status {}", r.status),
                );
                token = r
                    .header("x-garage-causality-token")
                    .map(String::from)
                    .or(token);
            }
            continue;
        }
        let started = Instant::now();
        let hv = match HeaderValue::from_str(&ct) {
            Ok(v) => v,
            Err(_) => break,
        };
        let hdrs = [(token_header.clone(), hv)];
        let insert = ic.request(Method::PUT, &path, &hdrs, value.clone());
        let ((pr, woke), ir) = tokio::join!(poll, insert);
        let ins_ok = st.check(&ctx, started, ir).is_some();
        if let Some(r) = st.check(&ctx, started, pr) {
            if let Some(t) = r.header("x-garage-causality-token") {
                token = Some(t.to_string());
            }
            if ins_ok {
                st.ok(&ctx, started, woke, 1);
            }
        } else {
            // Re-read the token before the next round.
            let t0 = Instant::now();
            let r = ic.request(Method::GET, &path, &accept, Bytes::new()).await;
            if let Some(r) = st.check(&ctx, t0, r) {
                token = r
                    .header("x-garage-causality-token")
                    .map(String::from)
                    .or(token);
            }
        }
    }
    st
}

fn ms(micros: u64) -> f64 {
    (micros as f64 / 10.0).round() / 100.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn run(opt: Opt) -> anyhow::Result<()> {
    anyhow::ensure!(opt.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(opt.partitions > 0, "--partitions must be at least 1");
    anyhow::ensure!(
        opt.keys > 0 || !opt.op.needs_prefill(),
        "--keys must be at least 1"
    );
    anyhow::ensure!(opt.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(
        opt.duration > 0.0 && opt.warmup >= 0.0,
        "bad --duration/--warmup"
    );
    let authority = opt
        .endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--endpoint must start with http://"))?
        .trim_end_matches('/')
        .to_string();
    let host_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let addr = tokio::net::lookup_host(&host_port)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host_port} does not resolve"))?;
    let target = Arc::new(Target {
        addr,
        authority,
        region: opt.region.clone(),
        key_id: opt.key_id.clone(),
        secret: opt.secret.clone(),
        timeout: Duration::from_millis(opt.timeout_ms),
        sign_body: !opt.unsigned_payload,
    });
    let run_id = format!("{:06x}", rand::thread_rng().gen::<u32>() & 0xff_ffff);
    let mut ctx = Ctx {
        b: enc(&opt.bucket),
        opt: opt.clone(),
        target,
        run: run_id,
        measure_start: Instant::now(),
        end: Instant::now(),
    };

    if opt.op.needs_prefill() {
        let t = Instant::now();
        if !opt.quiet {
            eprintln!("prefilling {} keys of {} bytes…", opt.keys, opt.value_size);
        }
        let c = Arc::new(Ctx {
            opt: opt.clone(),
            target: ctx.target.clone(),
            b: ctx.b.clone(),
            run: ctx.run.clone(),
            measure_start: ctx.measure_start,
            end: ctx.end,
        });
        prefill(c).await?;
        if !opt.quiet {
            eprintln!("prefilled in {:.1}s", t.elapsed().as_secs_f64());
        }
    }

    let t_start = Instant::now();
    ctx.measure_start = t_start + Duration::from_secs_f64(opt.warmup);
    ctx.end = ctx.measure_start + Duration::from_secs_f64(opt.duration);
    let ctx = Arc::new(ctx);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pid = opt.server_pid.map(|p| p.to_string());
    let sampler = pid
        .clone()
        .map(|p| tokio::spawn(procstat::sample_rss(p, stop_rx)));
    let tck = procstat::clk_tck();

    let mut tasks = Vec::with_capacity(opt.concurrency);
    for id in 0..opt.concurrency {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            if ctx.opt.op == Op::Poll {
                poller(ctx, id).await
            } else {
                client(ctx, id).await
            }
        }));
    }

    tokio::time::sleep_until(ctx.measure_start.into()).await;
    let srv0 = pid.as_deref().and_then(|p| procstat::cpu_secs(p, tck));
    let me0 = procstat::cpu_secs("self", tck);
    let all0 = procstat::machine_busy_secs(tck);
    tokio::time::sleep_until(ctx.end.into()).await;
    let srv1 = pid.as_deref().and_then(|p| procstat::cpu_secs(p, tck));
    let me1 = procstat::cpu_secs("self", tck);
    let all1 = procstat::machine_busy_secs(tck);

    let mut total = Stats::default();
    for t in tasks {
        total.merge(t.await?);
    }
    let _ = stop_tx.send(true);
    let rss = match sampler {
        Some(s) => Some(s.await?),
        None => None,
    };

    let d = opt.duration;
    let h = &total.hist;
    let mut out = serde_json::json!({
        "op": opt.op.name(),
        "concurrency": opt.concurrency,
        "value_size": opt.value_size,
        "batch_size": if matches!(opt.op, Op::ReadBatch | Op::InsertBatch) { Some(opt.batch_size) } else { None },
        "ops": total.ops,
        "items": total.items,
        "ops_per_sec": round2(total.ops as f64 / d),
        "items_per_sec": round2(total.items as f64 / d),
        "mean_ms": ms(h.mean() as u64),
        "p50_ms": ms(h.quantile(0.50)),
        "p90_ms": ms(h.quantile(0.90)),
        "p99_ms": ms(h.quantile(0.99)),
        "max_ms": ms(h.max()),
        "errors": total.errors,
        "duration_s": d,
        "warmup_s": opt.warmup,
        "client_cpu_pct": match (me0, me1) { (Some(a), Some(b)) => Some(round2((b - a) / d * 100.0)), _ => None },
    });
    if let (Some(a), Some(b)) = (srv0, srv1) {
        out["server_cpu_pct"] = serde_json::json!(round2((b - a) / d * 100.0));
    }
    // CPU used by everything else on the machine: tells whether the run was disturbed.
    if let (Some(a), Some(b), Some(c0), Some(c1)) = (all0, all1, me0, me1) {
        let srv = match (srv0, srv1) {
            (Some(x), Some(y)) => y - x,
            _ => 0.0,
        };
        let other = ((b - a) - (c1 - c0) - srv).max(0.0);
        out["machine_cores"] = serde_json::json!(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1));
        out["other_cpu_pct"] = serde_json::json!(round2(other / d * 100.0));
    }
    if let Some(r) = &rss {
        out["rss_start_mib"] = serde_json::json!(round2(r.first() as f64 / 1024.0));
        out["rss_peak_mib"] = serde_json::json!(round2(r.peak() as f64 / 1024.0));
        out["rss_last_mib"] = serde_json::json!(round2(r.last() as f64 / 1024.0));
        let series: Vec<(f64, f64)> = r
            .downsample(21)
            .into_iter()
            .map(|(t, k)| (t.round(), round2(k as f64 / 1024.0)))
            .collect();
        out["rss_series_s_mib"] = serde_json::json!(series);
    }
    println!("{out}");

    if !opt.quiet {
        let errs = if total.errors.is_empty() {
            "none".to_string()
        } else {
            total
                .errors
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        eprintln!(
            "{:<13} {:>5} {:>6} {:>11} {:>12} {:>8} {:>8} {:>8} {:>8}  errors",
            "op", "conc", "value", "ops/s", "items/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        eprintln!(
            "{:<13} {:>5} {:>6} {:>11.0} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
            opt.op.name(),
            opt.concurrency,
            opt.value_size,
            total.ops as f64 / d,
            total.items as f64 / d,
            ms(h.quantile(0.5)),
            ms(h.quantile(0.9)),
            ms(h.quantile(0.99)),
            ms(h.max()),
            errs
        );
        if let Some(v) = out.get("server_cpu_pct") {
            eprint!("server CPU {v}% ");
        }
        if let Some(r) = &rss {
            eprint!(
                "server RSS start {:.1} MiB, peak {:.1} MiB, last {:.1} MiB ",
                r.first() as f64 / 1024.0,
                r.peak() as f64 / 1024.0,
                r.last() as f64 / 1024.0
            );
        }
        if let Some(v) = out.get("client_cpu_pct").filter(|v| !v.is_null()) {
            eprint!("client CPU {v}% ");
        }
        if let Some(v) = out.get("other_cpu_pct") {
            eprint!("other processes CPU {v}%");
        }
        eprintln!();
        for s in &total.samples {
            eprintln!("sample error: {s}");
        }
    }
    Ok(())
}

fn main() {
    let opt = Opt::parse();
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if opt.threads > 0 {
        b.worker_threads(opt.threads);
    }
    let rt = match b.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(opt)) {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
