#!/usr/bin/env bash
# flood.sh — does one principal flooding at 5x its rate limit slow down another principal?
#
#   bash bench/flood.sh                 # env: LIMIT=200 VICTIM_RATE=100 DURATION=20 BASE_PORT=7600
#
# Three nodes on loopback with a per-principal rate limit of LIMIT requests/s. The victim, a
# service principal of its own, places single bets at VICTIM_RATE/s (under its limit) twice:
# alone, then while another principal floods at 5 x LIMIT with 64 requests in flight. Prints the
# victim's p50/p99 both times, the ratio of the p99s, and how many of the flood's requests were
# refused with 429. Everything binds to 127.0.0.1; every load run is bounded by DURATION; nodes
# are stopped by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LIMIT="${LIMIT:-200}"
VICTIM_RATE="${VICTIM_RATE:-100}"
DURATION="${DURATION:-20}"
BASE_PORT="${BASE_PORT:-7600}"
WORK="$(mktemp -d /tmp/paddock-flood.XXXXXX)"
PIDS=()
# shellcheck source=cluster.sh
source "$ROOT/bench/cluster.sh"
trap 'stop_cluster 2' EXIT

echo "== building paddock (release)"
(cd "$ROOT" && cargo build --release -q -p paddock-cli)
BIN="$ROOT/target/release/paddock"
start_cluster --rate-limit "$LIMIT"
# Set-up is done by the operator, also rate limited: keep the book small.
COMMON=(--nodes "$NODES" --mix single=100 --accounts 100 --markets 8 --quiet)

echo "== victim alone: $VICTIM_RATE bets/s for $DURATION s"
"$BIN" load "${COMMON[@]}" --principal victim --rate "$VICTIM_RATE" --concurrency 32 --duration-s "$DURATION" \
  --report "$WORK/alone.json" > /dev/null

FLOOD_RATE=$((5 * LIMIT))
echo "== victim while another principal floods at $FLOOD_RATE requests/s (5 x its limit)"
"$BIN" load "${COMMON[@]}" --principal flood --rate "$FLOOD_RATE" --concurrency 64 --duration-s $((DURATION + 15)) \
  --report "$WORK/flood.json" > /dev/null &
FLOOD=$!
sleep 10   # the flood's own set-up, then it is at full rate
"$BIN" load "${COMMON[@]}" --principal victim --rate "$VICTIM_RATE" --concurrency 32 --duration-s "$DURATION" \
  --report "$WORK/flooded.json" > /dev/null
wait "$FLOOD"

python3 - "$WORK" "$LIMIT" "$FLOOD_RATE" <<'PY'
import json, sys
work, limit, flood_rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
alone = json.load(open(f"{work}/alone.json"))
flooded = json.load(open(f"{work}/flooded.json"))
flood = json.load(open(f"{work}/flood.json"))
a, f = alone["bet_latency_ms"], flooded["bet_latency_ms"]
print(f"limit per principal: {limit}/s; flood scheduled {flood_rate}/s")
print(f"victim alone:   {alone['bets_accepted_per_s']:.1f} bets/s, p50 {a['p50']} ms, p99 {a['p99']} ms, errors {alone['errors']}")
print(f"victim flooded: {flooded['bets_accepted_per_s']:.1f} bets/s, p50 {f['p50']} ms, p99 {f['p99']} ms, errors {flooded['errors']}")
print(f"flood: {flood['bets_accepted_per_s']:.1f} bets/s accepted, errors {flood['errors']}")
print(f"victim p99 ratio (flooded / alone): {f['p99'] / max(a['p99'], 0.001):.2f}")
PY
