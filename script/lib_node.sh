# Shared by script/k2v_test.sh and script/s3_test.sh: one throw-away
# single-node store on free loopback ports. Source it, then call
#
#     node_start KEEP_VAR [extra top-level config lines]
#
# It builds target/debug/garage when missing (or when $BUILD_VAR is 1, see
# node_build), writes $TMP/garage.toml with the K2V, S3 and admin APIs, starts
# `garage server --single-node` and waits for its `Key ID:` / `Secret key:`
# lines. It sets ROOT, BIN, PYTHON, TMP, CFG, LOG, NODE_PID, KEY_ID, SECRET,
# RPC_PORT, S3_PORT, K2V_PORT and ADMIN_PORT. On exit the node is stopped and
# $TMP removed, unless the variable named by KEEP_VAR is 1.
# node_finish STATUS prints the end of the node log when STATUS is not 0,
# then exits with STATUS.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/debug/garage"
PYTHON="${PYTHON:-python3}"

# node_build FORCE: builds the debug binary when it is missing or FORCE is 1.
node_build() {
    if [[ ! -x "$BIN" || "${1:-0}" == 1 ]]; then
        echo "# building the debug binary (cargo build -p garage)"
        cargo build -p garage
    fi
}

NODE_PID=""
NODE_KEEP_VAR=""
node_cleanup() {
    local status=$?
    if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill "$NODE_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$NODE_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [[ -n "${TMP:-}" ]]; then
        if [[ -n "$NODE_KEEP_VAR" && "${!NODE_KEEP_VAR:-0}" == 1 ]]; then
            echo "# kept $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$status"
}

node_start() {
    NODE_KEEP_VAR="$1"
    local extra="${2:-}"
    TMP="$(mktemp -d)"
    trap node_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # Four free loopback ports (bound to port 0, then released).
    read -r RPC_PORT S3_PORT K2V_PORT ADMIN_PORT < <("$PYTHON" - <<'PYEOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PYEOF
)
    local secret_hex
    secret_hex="$("$PYTHON" -c 'import os; print(os.urandom(32).hex())')"

    CFG="$TMP/garage.toml"
    cat >"$CFG" <<CFGEOF
metadata_dir = "$TMP/meta"
data_dir = "$TMP/data"
db_engine = "redb"
replication_factor = 1
$extra

rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$secret_hex"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"

[k2v_api]
api_bind_addr = "127.0.0.1:$K2V_PORT"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
CFGEOF
    chmod 600 "$CFG"

    LOG="$TMP/node.log"
    "$BIN" -c "$CFG" server --single-node >"$LOG" 2>&1 &
    NODE_PID=$!

    KEY_ID=""
    SECRET=""
    for _ in $(seq 1 600); do
        if ! kill -0 "$NODE_PID" 2>/dev/null; then
            echo "error: the node exited before it was ready; its log:" >&2
            cat "$LOG" >&2
            exit 1
        fi
        if grep -q '^Secret key: ' "$LOG"; then
            KEY_ID="$(sed -n 's/^Key ID: //p' "$LOG" | head -n1)"
            SECRET="$(sed -n 's/^Secret key: //p' "$LOG" | head -n1)"
            break
        fi
        sleep 0.1
    done
    if [[ -z "$SECRET" || -z "$KEY_ID" ]]; then
        echo "error: no 'Secret key:' line from the node after 60 s; its log:" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

node_finish() {
    local status=$1
    if [[ "$status" -ne 0 ]]; then
        echo "# last lines of the node log ($LOG):"
        tail -n 30 "$LOG" | sed 's/^/#   /'
    fi
    exit "$status"
}
