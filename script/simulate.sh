#!/usr/bin/env bash
# Runs more seeds of the cluster simulation (src/model/tests/simulation.rs)
# in a release build and prints the summary: seeds, faults injected by
# kind, writes checked, lost writes. Failing seeds are printed with the
# command that replays them.
#
#   script/simulate.sh N [START]   run seeds START..START+N (START default 1000)
#
# Environment:
#   SIM_THREADS   seeds run at once (default: the available cores, at most 4)
#   CARGO_TARGET_DIR is honoured as usual.
set -euo pipefail

cd "$(dirname "$0")/.."

case "${1:-}" in
  ""|-h|--help) sed -n '2,12p' "$0"; exit 2 ;;
esac
N=$1
START=${2:-1000}
[[ "$N" =~ ^[0-9]+$ && "$START" =~ ^[0-9]+$ ]] || { echo "N and START are seed counts" >&2; exit 2; }

SIM_SEEDS=$N SIM_START=$START exec cargo test --release -q -p garage_model --test simulation \
  -- --nocapture --exact simulate_seeds
