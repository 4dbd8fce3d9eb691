#!/usr/bin/env bash
# Starts a throw-away single-node K2V store on free loopback ports and runs
# k2v_test.py against it. Run from the repository root:
#
#     bash script/k2v_test.sh
#
# Builds target/debug/garage first when it is missing (set K2V_TEST_BUILD=1
# to always run `cargo build -p garage`). Extra arguments go to k2v_test.py.
# Exits with the test's status; the node and its temp dir are removed on exit
# (set K2V_TEST_KEEP=1 to keep the temp dir and its node log).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/target/debug/garage"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$BIN" || "${K2V_TEST_BUILD:-0}" == 1 ]]; then
    echo "# building the debug binary (cargo build -p garage)"
    cargo build -p garage
fi

TMP="$(mktemp -d)"
NODE_PID=""
cleanup() {
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
    if [[ "${K2V_TEST_KEEP:-0}" == 1 ]]; then
        echo "# kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Three free loopback ports (bound to port 0, then released).
read -r RPC_PORT K2V_PORT ADMIN_PORT < <("$PYTHON" - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)
SECRET_HEX="$("$PYTHON" -c 'import os; print(os.urandom(32).hex())')"

CFG="$TMP/garage.toml"
cat >"$CFG" <<EOF
metadata_dir = "$TMP/meta"
data_dir = "$TMP/data"
db_engine = "redb"
metadata_fsync = false
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$SECRET_HEX"

[s3_api]
s3_region = "garage"

[k2v_api]
api_bind_addr = "127.0.0.1:$K2V_PORT"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
EOF
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
echo "# node ready: K2V on 127.0.0.1:$K2V_PORT, key $KEY_ID"

set +e
"$PYTHON" "$ROOT/k2v_test.py" \
    --endpoint "http://127.0.0.1:$K2V_PORT" \
    --region garage \
    --key-id "$KEY_ID" \
    --secret "$SECRET" \
    --bucket default \
    "$@"
STATUS=$?
set -e
if [[ $STATUS -ne 0 ]]; then
    echo "# last lines of the node log ($LOG):"
    tail -n 30 "$LOG" | sed 's/^/#   /'
fi
exit "$STATUS"
