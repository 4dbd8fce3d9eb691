#!/usr/bin/env bash
# Cluster figures on loopback (127.0.0.1), release build, rf 3:
#
#   script/cluster_bench.sh throughput   InsertItem and ReadItem at 64 clients
#                                        through node 1 of 3 nodes, next to 1 node
#   script/cluster_bench.sh catchup      node 3 stopped, ITEMS items written, node 3
#                                        restarted: time until its Merkle roots
#                                        equal the others' for every partition
#   script/cluster_bench.sh transition   ITEMS items on 3 nodes, a 4th joins and
#                                        the first is removed: time until one
#                                        layout version is live, and until the
#                                        removed node is empty
#   script/cluster_bench.sh ratios       the independent load tool
#                                        (../shared/tools/k2v-load, built here)
#                                        against its null-server (the HTTP
#                                        ceiling of this machine), 1 node and
#                                        3 nodes rf 3, in one run: InsertItem
#                                        and ReadItem at 64 clients as ratios
#                                        to the ceiling
#   script/cluster_bench.sh layout       one node; 250 nodes in 10 zones (rf 3)
#                                        staged through the CLI, then the wall
#                                        time of `garage layout apply` (the
#                                        whole CLI call: compute, store, print)
#   script/cluster_bench.sh s3           S3 (boto3, script/s3_load.py): Put and
#                                        GetObject MiB/s of 1 MiB and 64 MiB
#                                        objects on 1 node and through node 1 of
#                                        3 nodes rf 3, and the server's peak RSS
#                                        over a streamed 1 GiB PutObject
#   script/cluster_bench.sh profile      InsertItem (k2v-load, 64 clients) on 1
#                                        node and on 3 nodes rf 3 under
#                                        `perf record -a -e cpu-clock`: the
#                                        share of the machine's CPU per
#                                        process and the top symbols
#
# Environment: ITEMS (default 100000), BENCH_DURATION (default 10 s per run),
# BENCH_KEEP (keep the temp dir). Prints its figures; changes nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=${1:-}
case "$MODE" in
  throughput|catchup|transition|ratios|layout|s3|profile) ;;
  *) sed -n '2,32p' "$0"; exit 2 ;;
esac
ITEMS=${ITEMS:-100000}
DUR=${BENCH_DURATION:-10}

cargo build --release -p garage --bins >&2
GARAGE="$ROOT/target/release/garage"
BENCH="$ROOT/target/release/k2v-bench"
TMP=$(mktemp -d)
SECRET_HEX=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -z "${BENCH_KEEP:-}" ]]; then rm -rf "$TMP"; else echo "kept $TMP" >&2; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
since3() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$(now)"; }

# node_config I RF: writes $TMP/nI/garage.toml
node_config() {
  local i=$1 rf=$2 d="$TMP/n$1"
  mkdir -p "$d"
  echo "$(free_port) $(free_port) $(free_port)" > "$d/ports"
  read -r rpc k2v s3 < "$d/ports"
  cat > "$d/garage.toml" <<EOF
metadata_dir = "$d/meta"
data_dir = "$d/data"
replication_factor = $rf
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$SECRET_HEX"
bootstrap_peers = [${BOOT:-}]

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"

[k2v_api]
api_bind_addr = "127.0.0.1:$k2v"
EOF
}
start_node() {
  local d="$TMP/n$1"
  RUST_LOG=${RUST_LOG:-warn} "$GARAGE" -c "$d/garage.toml" server >> "$d/log.txt" 2>&1 &
  echo $! > "$d/pid"
  PIDS+=("$!")
  read -r _ k2v _ < "$d/ports"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$k2v") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "node $1 did not start" >&2; cat "$d/log.txt" >&2; exit 1
}
stop_node() { kill "$(cat "$TMP/n$1/pid")"; sleep 0.5; }
cli() { local i=$1; shift; "$GARAGE" -c "$TMP/n$i/garage.toml" "$@"; }
node_id() { cli "$1" node id -q 2>/dev/null | cut -d@ -f1; }
endpoint() { read -r _ k2v _ < "$TMP/n$1/ports"; echo "http://127.0.0.1:$k2v"; }
s3_endpoint() { read -r _ _ s3 < "$TMP/n$1/ports"; echo "http://127.0.0.1:$s3"; }
s3_bench() {
  local venv="$ROOT/target/s3-venv"
  [[ -x "$venv/bin/python" ]] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet boto3; } >&2
  "$venv/bin/python" "$ROOT/script/s3_load.py" "$(s3_endpoint 1)" "$KEY_ID" "$SECRET" bench --tmp "$TMP" \
    --pid "$(cat "$TMP/n1/pid")" "$@"
}

# cluster N RF: starts N nodes, lays them out (zone dcI each), makes a key and bucket
cluster() {
  local n=$1 rf=$2
  node_config 1 "$rf"; start_node 1
  read -r rpc1 _ _ < "$TMP/n1/ports"
  BOOT="\"$(node_id 1)@127.0.0.1:$rpc1\""
  for i in $(seq 2 "$n"); do node_config "$i" "$rf"; start_node "$i"; done
  for i in $(seq 1 "$n"); do
    local id; id=$(node_id "$i")
    until cli 1 status | grep -q "${id:0:16}"; do sleep 0.2; done
    cli 1 layout assign "${id:0:16}" -z "dc$i" -c 1G > /dev/null
  done
  cli 1 layout apply --version 1 > /dev/null
  local out; out=$(cli 1 key create bench-key)
  KEY_ID=$(sed -n 's/^Key ID: //p' <<< "$out"); SECRET=$(sed -n 's/^Secret key: //p' <<< "$out")
  cli 1 bucket create bench > /dev/null
  cli 1 bucket allow --read --write --owner bench --key "$KEY_ID" > /dev/null
  sleep 2
}
bench() {
  local node=$1; shift
  K2V_KEY_ID="$KEY_ID" K2V_SECRET="$SECRET" "$BENCH" --endpoint "$(endpoint "$node")" \
    --bucket bench --quiet "$@"
}
# load N: writes N items (100 B) through node 1 (k2v-bench's prefill of a read run)
load() { bench 1 --op read --keys "$1" --partitions 100 --concurrency 16 --duration 0.2 --warmup 0 > /dev/null; }
roots() { for t in k2v_item k2v_index_counter; do cli "$1" debug merkle-roots "$t"; done | md5sum; }
summary() {
  python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
e = r.get("errors") or 0
print("%7s %d clients: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, errors %s"
      % (r["op"], r["concurrency"], r["ops_per_sec"], r["p50_ms"], r["p99_ms"], e))'
}

# ---- the independent load tool and its null server
LOAD_SRC="$ROOT/../shared/tools/k2v-load"
load_tool() {
  [[ -d "$LOAD_SRC" ]] || { echo "no $LOAD_SRC" >&2; exit 1; }
  CARGO_TARGET_DIR="$TMP/k2v-load-target" cargo build --release --manifest-path "$LOAD_SRC/Cargo.toml" >&2
  LOAD="$TMP/k2v-load-target/release/k2v-load"
  NULL="$TMP/k2v-load-target/release/null-server"
}
# k2v_load ENDPOINT PID OP: one JSON line
k2v_load() {
  local ep=$1 pid=$2 op=$3
  K2V_ENDPOINT="$ep" K2V_KEY_ID="${KEY_ID:-x}" K2V_SECRET="${SECRET:-x}" K2V_BUCKET=bench \
    "$LOAD" --op "$op" --concurrency 64 --duration "$DUR" --server-pid "$pid" --wait-idle 60 2>/dev/null
}
ops() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["ops_per_s"])'; }
p99() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["p99_ms"])'; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

case "$MODE" in
profile)
  command -v perf > /dev/null || { echo "perf is needed (Debian: linux-perf)" >&2; exit 1; }
  load_tool
  for setup in "1 1" "3 3"; do
    read -r n rf <<< "$setup"
    rm -rf "${TMP:?}"/n*; BOOT=""
    cluster "$n" "$rf"
    pid=$(cat "$TMP/n1/pid")
    perf record -q -a -e cpu-clock -F 499 -o "$TMP/perf.data" -- \
      bash -c "$(declare -f k2v_load); LOAD='$LOAD' DUR='$DUR' KEY_ID='$KEY_ID' SECRET='$SECRET' k2v_load '$(endpoint 1)' '$pid' insert" \
      > "$TMP/ins.json" 2> /dev/null
    echo "== $n node(s), rf $rf: InsertItem $(ops < "$TMP/ins.json")/s; CPU samples by process (whole run), then top symbols"
    for sort in comm comm,dso,sym; do
      perf report -i "$TMP/perf.data" --no-children --sort "$sort" --stdio 2> /dev/null \
        | grep -v -e '^#' -e '^$' > "$TMP/report.txt" || true
      head -n "$([[ $sort == comm ]] && echo 8 || echo 25)" "$TMP/report.txt"
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=()
  done
  ;;
s3)
  echo "== 1 node"
  cluster 1 1
  s3_bench
  stop_node 1; rm -rf "$TMP"/n*; PIDS=(); BOOT=""
  echo "== 3 nodes rf 3, through node 1"
  cluster 3 3
  s3_bench
  ;;
layout)
  node_config 1 3; start_node 1
  cli 1 layout assign "$(node_id 1)" -z z0 -c 1T > /dev/null
  for z in $(seq 0 9); do
    ids=()
    for _ in $(seq 1 25); do ids+=("$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"); done
    [[ $z == 0 ]] && ids=("${ids[@]:1}")
    cli 1 layout assign "${ids[@]}" -z "z$z" -c "$((1 + RANDOM % 4))T" > /dev/null
  done
  t0=$(now)
  cli 1 layout apply --version 1 > "$TMP/apply.txt"
  echo "layout apply, 250 nodes, 10 zones, rf 3: $(since3 "$t0") s"
  grep -i "optimal\|usable\|size" "$TMP/apply.txt" | head -5
  ;;
ratios)
  load_tool
  NPORT=$(free_port)
  "$NULL" "127.0.0.1:$NPORT" 100 2>/dev/null & NPID=$!; PIDS+=("$NPID"); sleep 0.5
  # One ceiling for both ops (the null server answers a PUT and a GET alike;
  # its ReadBatch answers nothing, so a read run cannot prefill against it).
  CEIL_INS=$(k2v_load "http://127.0.0.1:$NPORT" "$NPID" insert | ops)
  CEIL_READ=$CEIL_INS
  kill "$NPID"; PIDS=()
  echo "null-server ceiling (k2v-load, 64 clients, InsertItem): $CEIL_INS/s"
  for setup in "1 1" "3 3"; do
    read -r n rf <<< "$setup"
    rm -rf "${TMP:?}"/n*; BOOT=""
    cluster "$n" "$rf"
    pid=$(cat "$TMP/n1/pid")
    ins=$(k2v_load "$(endpoint 1)" "$pid" insert); rd=$(k2v_load "$(endpoint 1)" "$pid" read)
    echo "$n node(s), rf $rf: InsertItem $(ops <<< "$ins")/s (ratio $(ratio "$(ops <<< "$ins")" "$CEIL_INS"), p99 $(p99 <<< "$ins") ms);" \
         "ReadItem $(ops <<< "$rd")/s (ratio $(ratio "$(ops <<< "$rd")" "$CEIL_READ"), p99 $(p99 <<< "$rd") ms)"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=()
  done
  ;;
throughput)
  cluster 3 3
  echo "3 nodes, rf 3, consistent, requests through node 1:"
  bench 1 --op insert --concurrency 64 --duration "$DUR" | summary
  bench 1 --op read --concurrency 64 --duration "$DUR" | summary
  for p in "${PIDS[@]}"; do kill "$p"; done; wait 2>/dev/null || true; PIDS=()
  rm -rf "${TMP:?}"/n*; BOOT=""
  cluster 1 1
  echo "1 node, rf 1:"
  bench 1 --op insert --concurrency 64 --duration "$DUR" | summary
  bench 1 --op read --concurrency 64 --duration "$DUR" | summary
  ;;
catchup)
  cluster 3 3
  stop_node 3
  t0=$(now); load "$ITEMS"; echo "wrote $ITEMS items with node 3 down in $(since "$t0") s"
  start_node 3
  t0=$(now)
  until [[ "$(roots 1)" == "$(roots 3)" && "$(roots 2)" == "$(roots 3)" ]]; do sleep 0.5; done
  echo "node 3 caught up (Merkle roots equal on all 3 nodes) $(since "$t0") s after restart"
  cli 3 debug entries k2v_item
  ;;
transition)
  cluster 3 3
  t0=$(now); load "$ITEMS"; echo "wrote $ITEMS items in $(since "$t0") s"
  node_config 4 3; start_node 4
  id1=$(node_id 1); id4=$(node_id 4)
  until cli 2 status | grep -q "${id4:0:16}"; do sleep 0.2; done
  cli 2 layout assign "${id4:0:16}" -z dc1 -c 1G > /dev/null
  cli 2 layout remove "${id1:0:16}" > /dev/null
  t0=$(now)
  cli 2 layout apply --version 2 > /dev/null
  until [[ $(cli 2 layout history | grep -cE '^#[0-9]+ +(current|draining)') == 1 ]]; do sleep 0.5; done
  echo "transition 1 -> 2 (4th node in, 1st out): one live version after $(since "$t0") s"
  until cli 1 debug entries k2v_item | grep -q '^entries: 0$'; do sleep 0.5; done
  echo "removed node empty after $(since "$t0") s"
  cli 4 debug entries k2v_item
  ;;
esac
