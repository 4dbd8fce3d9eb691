#!/usr/bin/env bash
# Starts a throw-away single-node store on free loopback ports and runs
# s3_test.py (boto3) against its S3 API. Run from the repository root:
#
#     bash script/s3_test.sh
#
# boto3 is installed from PyPI into a virtualenv under the cargo target dir
# (${CARGO_TARGET_DIR:-target}/s3-venv) on first use. Builds the debug
# binary first when it is missing (S3_TEST_BUILD=1 always builds). Extra
# arguments go to s3_test.py (e.g. --big-mib 10). Exits with the test's
# status; the node and its temp dir are removed on exit (S3_TEST_KEEP=1
# keeps the temp dir and its node log).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/debug/garage"
PYTHON="${PYTHON:-python3}"
VENV="$TARGET/s3-venv"

if [[ ! -x "$BIN" || "${S3_TEST_BUILD:-0}" == 1 ]]; then
    echo "# building the debug binary (cargo build -p garage)"
    cargo build -p garage
fi

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    echo "# installing boto3 into $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check boto3
fi
VPY="$VENV/bin/python"

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
    if [[ "${S3_TEST_KEEP:-0}" == 1 ]]; then
        echo "# kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
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
SECRET_HEX="$("$PYTHON" -c 'import os; print(os.urandom(32).hex())')"

CFG="$TMP/garage.toml"
cat >"$CFG" <<CFGEOF
metadata_dir = "$TMP/meta"
data_dir = "$TMP/data"
db_engine = "redb"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$SECRET_HEX"

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

# The default key may create buckets; a second key may only read `default`.
"$BIN" -c "$CFG" key allow --create-bucket "$KEY_ID" >/dev/null
RO_OUT="$("$BIN" -c "$CFG" key create s3-test-read-only)"
RO_ID="$(sed -n 's/^Key ID: //p' <<<"$RO_OUT" | head -n1)"
RO_SECRET="$(sed -n 's/^Secret key: //p' <<<"$RO_OUT" | head -n1)"
"$BIN" -c "$CFG" bucket allow --read default --key "$RO_ID" >/dev/null
echo "# node ready: S3 on 127.0.0.1:$S3_PORT, key $KEY_ID, read-only key $RO_ID"

set +e
"$VPY" "$ROOT/s3_test.py" \
    --endpoint "http://127.0.0.1:$S3_PORT" \
    --region garage \
    --key-id "$KEY_ID" \
    --secret "$SECRET" \
    --ro-key-id "$RO_ID" \
    --ro-secret "$RO_SECRET" \
    --bucket default \
    "$@"
STATUS=$?
set -e
if [[ $STATUS -eq 0 ]]; then
    # The test leaves three objects of 2,005,010 bytes in all: `garage
    # bucket info` counts them and `garage bucket delete` refuses the bucket.
    INFO="$("$BIN" -c "$CFG" bucket info default)"
    if grep -q '^Objects: 3$' <<<"$INFO" && grep -q '(2005010 B)' <<<"$INFO"; then
        echo "ok   garage bucket info: 3 objects, 2005010 B"
    else
        echo "FAIL garage bucket info after the test:"; echo "$INFO"; STATUS=1
    fi
    if "$BIN" -c "$CFG" bucket delete default --yes >"$TMP/delete.out" 2>&1; then
        echo "FAIL garage bucket delete accepted a non-empty bucket"; STATUS=1
    elif grep -q 'not empty' "$TMP/delete.out"; then
        echo "ok   garage bucket delete refuses a non-empty bucket"
    else
        echo "FAIL garage bucket delete: unexpected answer"; cat "$TMP/delete.out"; STATUS=1
    fi
fi
if [[ $STATUS -ne 0 ]]; then
    echo "# last lines of the node log ($LOG):"
    tail -n 30 "$LOG" | sed 's/^/#   /'
fi
exit "$STATUS"
