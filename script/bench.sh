#!/usr/bin/env bash
# Benchmarks a fresh single-node K2V store with k2v-bench and writes doc/benchmarks.md.
#
#   script/bench.sh            the standard matrix (insert, read, read-batch, insert-batch at
#                              16 and 64 clients, 100 B and 4 KiB values; poll at 16)
#   script/bench.sh --memory   a 5-minute mixed run (50 % read / 50 % insert, 64 clients)
#                              with the server's RSS sampled every second, and the peak
#                              RSS per million items stored at the end
#   script/bench.sh --tools    both load tools in one run: k2v-bench and the independent
#                              k2v-load (../shared/tools/k2v-load, built here), each first
#                              against k2v-load's null-server (the HTTP ceiling), then
#                              InsertItem and ReadItem at 64 clients against the node
#                              (and k2v-load's InsertBatch / ReadBatch of 100 items);
#                              prints ops/s, the ratio to each tool's own ceiling, p99,
#                              client and server CPU (does not touch the Markdown file)
#
# Environment:
#   BENCH_DURATION         measured seconds per run (default 10)
#   BENCH_WARMUP           warm-up seconds per run (default 2)
#   BENCH_MEMORY_DURATION  measured seconds of the memory run (default 300)
#   BENCH_OUT              the Markdown file to update (default doc/benchmarks.md)
#   BENCH_KEEP             if set, keep the node's temp dir
#
# Each mode rewrites only its own section of the Markdown file (between the
# `<!-- BEGIN x -->` / `<!-- END x -->` markers); the rest of the file is kept.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=matrix
case "${1:-}" in
  "") ;;
  --memory) MODE=memory ;;
  --tools) MODE=tools ;;
  -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--memory|--tools]" >&2; exit 2 ;;
esac

DUR=${BENCH_DURATION:-10}
WARM=${BENCH_WARMUP:-2}
MEMDUR=${BENCH_MEMORY_DURATION:-300}
OUT=${BENCH_OUT:-doc/benchmarks.md}

echo "== building (release)" >&2
cargo build --release -p garage --bins
GARAGE="$ROOT/target/release/garage"
BENCH="$ROOT/target/release/k2v-bench"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -z "${BENCH_KEEP:-}" ]]; then rm -rf "$TMP"; else echo "kept $TMP" >&2; fi
}
trap cleanup EXIT

RPC_PORT=$(free_port); K2V_PORT=$(free_port); ADMIN_PORT=$(free_port)
CFG="$TMP/garage.toml"
cat > "$CFG" <<EOF
metadata_dir = "$TMP/meta"
data_dir = "$TMP/data"
db_engine = "redb"
metadata_fsync = false
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"

[k2v_api]
api_bind_addr = "127.0.0.1:$K2V_PORT"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
EOF

echo "== starting a single node in $TMP" >&2
RUST_LOG=${RUST_LOG:-warn} "$GARAGE" -c "$CFG" server --single-node > "$TMP/stdout.txt" 2> "$TMP/log.txt" &
SERVER_PID=$!
for _ in $(seq 1 300); do
  grep -q '^Secret key: ' "$TMP/stdout.txt" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/log.txt" >&2; echo "garage exited" >&2; exit 1; }
  sleep 0.1
done
KEY_ID=$(sed -n 's/^Key ID: //p' "$TMP/stdout.txt")
SECRET=$(sed -n 's/^Secret key: //p' "$TMP/stdout.txt")
[[ -n "$KEY_ID" && -n "$SECRET" ]] || { cat "$TMP/stdout.txt" "$TMP/log.txt" >&2; echo "no credentials" >&2; exit 1; }
ENDPOINT="http://127.0.0.1:$K2V_PORT"
echo "== node pid $SERVER_PID, endpoint $ENDPOINT" >&2

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS="$TMP/results.jsonl"
: > "$RESULTS"
bench() {
  echo "-- k2v-bench $*" >&2
  K2V_KEY_ID="$KEY_ID" K2V_SECRET="$SECRET" "$BENCH" --endpoint "$ENDPOINT" --region garage \
    --bucket default --server-pid "$SERVER_PID" "$@" | tee -a "$RESULTS"
}

# ---- --tools: both load tools, same run ---------------------------------------------------
if [[ $MODE == tools ]]; then
  LOAD_SRC="$ROOT/../shared/tools/k2v-load"
  [[ -d "$LOAD_SRC" ]] || { echo "no $LOAD_SRC" >&2; exit 1; }
  CARGO_TARGET_DIR="$ROOT/target/k2v-load" cargo build --release --manifest-path "$LOAD_SRC/Cargo.toml" >&2
  LOAD="$ROOT/target/k2v-load/release/k2v-load"
  NULL="$ROOT/target/k2v-load/release/null-server"
  # tool ENDPOINT PID OP [extra args]: one JSON line, normalised to
  # {tool, op, ops, p99, client_cpu, server_cpu, partitions}
  run_tool() {
    local tool=$1 ep=$2 pid=$3 op=$4; shift 4
    if [[ $tool == k2v-load ]]; then
      K2V_ENDPOINT="$ep" K2V_KEY_ID="$KEY_ID" K2V_SECRET="$SECRET" K2V_BUCKET=default \
        "$LOAD" --op "$op" --concurrency 64 --duration "$DUR" --warmup "$WARM" \
        --server-pid "$pid" --wait-idle 60 "$@" 2> /dev/null
    else
      K2V_KEY_ID="$KEY_ID" K2V_SECRET="$SECRET" "$BENCH" --endpoint "$ep" --region garage \
        --bucket default --server-pid "$pid" --quiet --op "$op" --concurrency 64 \
        --duration "$DUR" --warmup "$WARM" "$@" 2> /dev/null
    fi | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print(json.dumps({"tool": sys.argv[1], "target": sys.argv[2], "op": sys.argv[3], "args": sys.argv[4],
  "ops": r.get("ops_per_s", r.get("ops_per_sec")), "p99": r["p99_ms"],
  "items": r.get("items_per_s", r.get("items_per_sec")),
  "client_cpu": r.get("client_cpu_pct"), "server_cpu": r.get("server_cpu_pct"),
  "errors": r.get("errors")}))' "$tool" "$TARGET" "$op" "$*"
  }
  NPORT=$(free_port)
  "$NULL" "127.0.0.1:$NPORT" 100 2> /dev/null & NPID=$!
  sleep 0.5
  TARGET=null-server
  for tool in k2v-load k2v-bench; do
    run_tool "$tool" "http://127.0.0.1:$NPORT" "$NPID" insert | tee -a "$RESULTS"
  done
  kill "$NPID"; wait "$NPID" 2> /dev/null || true
  TARGET=node
  for tool in k2v-load k2v-bench; do
    run_tool "$tool" "$ENDPOINT" "$SERVER_PID" insert | tee -a "$RESULTS"
    run_tool "$tool" "$ENDPOINT" "$SERVER_PID" read | tee -a "$RESULTS"
  done
  # Batches of 100 items (items/s against the per-item rates above).
  run_tool k2v-load "$ENDPOINT" "$SERVER_PID" insert-batch --batch 100 | tee -a "$RESULTS"
  run_tool k2v-load "$ENDPOINT" "$SERVER_PID" read-batch --batch 100 | tee -a "$RESULTS"
  # The tools spread inserts differently (k2v-load over 64 partition keys,
  # k2v-bench over 10 by default): k2v-bench again with k2v-load's spread.
  run_tool k2v-bench "$ENDPOINT" "$SERVER_PID" insert --partitions 64 | tee -a "$RESULTS"
  python3 - "$RESULTS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ceil = {r["tool"]: r["ops"] for r in rows if r["target"] == "null-server"}
print()
print("| tool | target | op | extra args | ops/s | items/s | ratio to the tool's ceiling | p99 ms | client CPU | server CPU | errors |")
print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    ratio = r["ops"] / ceil[r["tool"]] if ceil.get(r["tool"]) else float("nan")
    print(f"| {r['tool']} | {r['target']} | {r['op']} | {r['args'] or '-'} | {r['ops']:,.0f} | {r['items'] or r['ops']:,.0f} | {ratio:.2f} | {r['p99']:.1f} | {r['client_cpu']} % | {r['server_cpu']} % | {r['errors'] or 0} |")
PYEOF
  exit 0
fi

if [[ $MODE == matrix ]]; then
  for op in insert read read-batch insert-batch; do
    for c in 16 64; do
      for v in 100 4096; do
        bench --op "$op" --concurrency "$c" --value-size "$v" --duration "$DUR" --warmup "$WARM"
      done
    done
  done
  bench --op poll --concurrency 16 --value-size 100 --duration "$DUR" --warmup "$WARM"
else
  bench --op mixed --read-pct 50 --concurrency 64 --value-size 100 --duration "$MEMDUR" --warmup "$WARM"
  # Items stored at the end (prefill and inserts), for the RSS per million items.
  ITEMS_STORED=$("$GARAGE" -c "$CFG" debug entries k2v_item | sed -n 's/^entries: //p')
fi

# ---- the Markdown section -------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
NPROC=$(nproc)
MEM=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
KERNEL=$(uname -srm)
RUSTC=$(rustc --version)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)

SECTION="$TMP/section.md"
export DATE NPROC CPU MEM KERNEL RUSTC DUR WARM LOAD_BEFORE LOAD_AFTER ITEMS_STORED
python3 - "$MODE" "$RESULTS" "$SECTION" <<'PY'
import json, os, sys
mode, results, out = sys.argv[1:4]
E = os.environ
rows = [json.loads(l) for l in open(results) if l.strip().startswith("{")]
def pct(x):
    return "n/a" if x is None else f"{x:.0f} %"
def errs(r):
    e = r.get("errors") or {}
    return ", ".join(f"{k}: {v}" for k, v in e.items()) or "0"
L = []
L.append(f"Measured {E['DATE']} on: {E['NPROC']} vCPU ({E['CPU']}), {E['MEM']} RAM, {E['KERNEL']}, {E['RUSTC']}.")
L.append("Client and server share the same cores (loopback), so every figure includes the")
L.append("client's own CPU cost (column *client CPU*); *other CPU* is what every other process")
L.append(f"used meanwhile (100 % = one core, {E['NPROC']} cores in all): a high figure means a disturbed run.")
L.append("Load average before the runs: "
         f"{E['LOAD_BEFORE']}, after: {E['LOAD_AFTER']} (other processes may have shared the cores).")
L.append("")
if mode == "matrix":
    L.append(f"Each run: {E['WARM']} s warm-up then {E['DUR']} s measured; one keep-alive HTTP/1.1")
    L.append("connection per client; batch ops carry 100 items; latencies are per request.")
    L.append("")
    L.append("| op | clients | value | ops/s | items/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU | client CPU | other CPU | server RSS peak |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        v = r["value_size"]
        vs = f"{v // 1024} KiB" if v >= 1024 and v % 1024 == 0 else f"{v} B"
        L.append(f"| {r['op']} | {r['concurrency']} | {vs} | {r['ops_per_sec']:,.0f} | {r['items_per_sec']:,.0f} | "
                 f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {errs(r)} | "
                 f"{r.get('server_cpu_pct', 0):.0f} % | {r.get('client_cpu_pct') or 0:.0f} % | {pct(r.get('other_cpu_pct'))} | {r.get('rss_peak_mib', 0):.0f} MiB |")
    L.append("")
    L.append("poll: ops/s is wake-ups per second (each poller waits 50 ms between its poll and the")
    L.append("insert that wakes it); the latency is from the start of the insert to the poll's answer.")
else:
    for r in rows:
        L.append(f"Mixed run, {r['concurrency']} clients, {r['value_size']} B values, 50 % ReadItem / 50 % InsertItem of fresh keys,")
        L.append(f"{r['duration_s']:.0f} s measured after {r['warmup_s']:.0f} s warm-up:")
        L.append("")
        L.append(f"- throughput {r['ops_per_sec']:,.0f} ops/s; p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms; errors: {errs(r)}")
        L.append(f"- server CPU {r.get('server_cpu_pct', 0):.0f} %, client CPU {r.get('client_cpu_pct') or 0:.0f} %, other processes {pct(r.get('other_cpu_pct'))}")
        L.append(f"- server RSS (VmRSS, sampled every second): start {r.get('rss_start_mib', 0):.1f} MiB, "
                 f"peak {r.get('rss_peak_mib', 0):.1f} MiB, last {r.get('rss_last_mib', 0):.1f} MiB")
        items = int(E.get("ITEMS_STORED") or 0)
        if items:
            per_m = r.get("rss_peak_mib", 0) / (items / 1e6)
            L.append(f"- items stored at the end (`garage debug entries k2v_item`): {items:,}; "
                     f"peak RSS per million items stored: {per_m:.1f} MiB")
        series = r.get("rss_series_s_mib") or []
        if series:
            L.append("")
            L.append("| t (s) | " + " | ".join(f"{t:.0f}" for t, _ in series) + " |")
            L.append("|---|" + "---:|" * len(series))
            L.append("| RSS MiB | " + " | ".join(f"{m:.0f}" for _, m in series) + " |")
L.append("")
L.append("<details><summary>raw JSON lines</summary>")
L.append("")
L.append("```")
for r in rows:
    L.append(json.dumps(r))
L.append("```")
L.append("</details>")
open(out, "w").write("\n".join(L) + "\n")
PY

if [[ ! -f "$OUT" ]]; then
  cat > "$OUT" <<'EOF'
# K2V benchmarks

Produced by `script/bench.sh` with the `k2v-bench` tool (`src/garage/src/bin/k2v-bench.rs`).

## Standard matrix

<!-- BEGIN matrix -->
<!-- END matrix -->

## Memory (long mixed run)

<!-- BEGIN memory -->
<!-- END memory -->
EOF
fi
python3 - "$OUT" "$MODE" "$SECTION" <<'PY'
import sys, re
path, mode, section = sys.argv[1:4]
text = open(path).read()
new = open(section).read()
begin, end = f"<!-- BEGIN {mode} -->", f"<!-- END {mode} -->"
if begin in text and end in text:
    a = text.index(begin) + len(begin)
    b = text.index(end)
    text = text[:a] + "\n" + new + text[b:]
else:
    text += f"\n{begin}\n{new}{end}\n"
open(path, "w").write(text)
PY
echo "== wrote $OUT ($MODE)" >&2
