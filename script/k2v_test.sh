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
source "$(dirname "${BASH_SOURCE[0]}")/lib_node.sh"

node_build "${K2V_TEST_BUILD:-0}"
node_start K2V_TEST_KEEP "metadata_fsync = false"
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
node_finish "$STATUS"
