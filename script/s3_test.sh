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

source "$(dirname "${BASH_SOURCE[0]}")/lib_node.sh"
VENV="$TARGET/s3-venv"

node_build "${S3_TEST_BUILD:-0}"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    echo "# installing boto3 into $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check boto3
fi
VPY="$VENV/bin/python"

node_start S3_TEST_KEEP

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
node_finish "$STATUS"
