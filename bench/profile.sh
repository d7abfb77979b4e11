#!/usr/bin/env bash
# profile.sh — where a bet's CPU goes: a 3-node cluster of the release build on loopback under
# `paddock load`, with `perf record` on the three node processes in the middle of the run, then
# each node-CPU sample counted once under the first of a list of frames on its stack
# (bench/perf_shares.py).
#
#   bash bench/profile.sh [paddock load flags...]      # as root (perf needs it)
#   e.g. bash bench/profile.sh --rate 0 --concurrency 8 --batch 200
#        bash bench/profile.sh --rate 0 --concurrency 16
#   env: DURATION=16 (the load's length, s) PERF_S=6 (the recording, s, from second 5; 0: none,
#        the load's line alone, for A/B runs of two builds)
#        BASE_PORT=7600 BIN=<a paddock binary, default the release build> KEEP=1 (keep the work dir)
#
# Prints each node's peak resident memory (VmHWM), the load's bets/s, p50/p99 ms, CPU µs per
# bet of the three nodes and errors, then the shares. Everything binds to 127.0.0.1; the load is
# bounded by DURATION and the recording by PERF_S; the nodes are stopped by PID. Reading the
# stacks back (`perf script` with DWARF unwinding) takes about two minutes for 6 s of recording.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-16}"
PERF_S="${PERF_S:-6}"
BASE_PORT="${BASE_PORT:-7600}"
WORK="$(mktemp -d /tmp/paddock-profile.XXXXXX)"
PIDS=()
[ "$PERF_S" = 0 ] || command -v perf >/dev/null 2>&1 || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 2; }
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p paddock-cli)
  BIN="$ROOT/target/release/paddock"
fi

# shellcheck source=cluster.sh
source "$ROOT/bench/cluster.sh"
cleanup() {
  stop_cluster 2
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
start_cluster
CPU_PIDS="$(IFS=,; echo "${PIDS[*]}")"
"$BIN" load --nodes "$NODES" --mix single=100 --duration-s "$DURATION" --accounts 10000 --markets 500 \
  --quiet --cpu-pids "$CPU_PIDS" --report "$WORK/load.json" "$@" > "$WORK/load.txt" &
LOAD_PID=$!
if [ "$PERF_S" != 0 ]; then
  sleep 5
  perf record -F 499 --call-graph dwarf,16384 -o "$WORK/perf.data" -p "$CPU_PIDS" -- sleep "$PERF_S" \
    > "$WORK/perf.log" 2>&1
fi
wait "$LOAD_PID"
# Each node's peak resident memory (the allocator's footprint under this load).
for pid in "${PIDS[@]}"; do
  printf 'node pid %s: %s\n' "$pid" "$(grep VmHWM "/proc/$pid/status" | tr -s ' \t' ' ')"
done
python3 - "$WORK/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["bet_latency_ms"]
print(f"bets/s {r['bets_accepted_per_s']:.0f}  p50 {l['p50']:.2f} ms  p99 {l['p99']:.2f} ms  "
      f"CPU {r.get('cpu_us_per_bet', 0.0):.1f} µs/bet  errors {r['errors']}")
PY
if [ "$PERF_S" != 0 ]; then
  perf script -i "$WORK/perf.data" -F comm,tid,ip,sym 2>/dev/null > "$WORK/stacks.txt"
  python3 "$ROOT/bench/perf_shares.py" "$WORK/stacks.txt"
fi
[ -z "${KEEP:-}" ] || echo "(work dir: $WORK)"
