#!/usr/bin/env bash
# failover.sh — client-visible write unavailability after kill -9 and after SIGSTOP of the
# leader: Paddock (3 nodes) and etcd (3 members, ../shared/bench/etcd_failover.sh; kill -9
# only, the script has no SIGSTOP mode) side by side, the same client load (16 workers x 50
# writes/s, round-robin over all nodes) and the same 1 s client timeout, plus the
# timeout-independent time to a new leader. Then the other half of the bargain: shorter
# timeouts must not make a busy cluster flap, so a fresh 3-node cluster takes STEADY_S seconds
# of closed-loop single bets (64 in flight) and the script counts elections (the highest
# `paddock_raft_term` before and after; any increase is a spurious leader change).
#
#   bash bench/failover.sh                  # TRIALS=20; needs etcd-server, etcd-client, wrk
#   env: TRIALS=20 STEADY_S=60 BASE_PORT=7700 ETCD_SCRIPT=/path/to/etcd_failover.sh
#        NODE_ARGS="--election-timeout-min-ms 150 --election-timeout-max-ms 200"
# Everything binds to 127.0.0.0/8; every trial and load run is bounded; processes are stopped
# by PID.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TRIALS="${TRIALS:-20}"
STEADY_S="${STEADY_S:-60}"
BASE_PORT="${BASE_PORT:-7700}"
NODE_ARGS="${NODE_ARGS:-}"
ETCD_SCRIPT="${ETCD_SCRIPT:-$ROOT/../shared/bench/etcd_failover.sh}"
WORK="$(mktemp -d /tmp/paddock-failover.XXXXXX)"
BIN="$ROOT/target/release/paddock"
PIDS=()
# shellcheck source=cluster.sh
source "$ROOT/bench/cluster.sh"
trap 'stop_cluster 1' EXIT

echo "== building paddock (release)"
(cd "$ROOT" && cargo build --release -q -p paddock-cli)
for fault in kill stop; do
  echo "== Paddock: $TRIALS × $fault of the leader"
  "$BIN" drill failover --fault "$fault" --trials "$TRIALS" --node-args "$NODE_ARGS" \
    --report "$WORK/paddock-$fault.json" | tee "$WORK/paddock-$fault.txt"
done

echo "== Paddock: ${STEADY_S} s of closed-loop single bets, 64 in flight; elections counted"
# shellcheck disable=SC2086 # NODE_ARGS is a list of flags
start_cluster $NODE_ARGS
max_term() {
  for i in 1 2 3; do curl -s "http://127.0.0.1:$((BASE_PORT + i))/metrics" | awk '$1 == "paddock_raft_term" {print $2}'; done \
    | sort -g | tail -1
}
TERM_BEFORE="$(max_term)"
"$BIN" load --nodes "$NODES" --mix single=100 --duration-s "$STEADY_S" --accounts 10000 --markets 500 --quiet \
  --rate 0 --concurrency 64 --cpu-pids "$(IFS=,; echo "${PIDS[*]}")" --report "$WORK/steady.json" > "$WORK/steady.txt"
TERM_AFTER="$(max_term)"
head -3 "$WORK/steady.txt"
echo "elections during ${STEADY_S} s at full load: $((${TERM_AFTER%.*} - ${TERM_BEFORE%.*})) (term ${TERM_BEFORE} -> ${TERM_AFTER})"
stop_cluster

if [ -f "$ETCD_SCRIPT" ]; then
  command -v etcd >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq etcd-server etcd-client wrk >/dev/null; }
  echo "== etcd: $TRIALS kills of the leader (same load, same timeout; etcd's script has no SIGSTOP mode)"
  OUT="$WORK/etcd" TRIALS="$TRIALS" REPEATS=1 CONNS="" QUIET_WAIT_S=0 bash "$ETCD_SCRIPT" all > "$WORK/etcd.log" 2>&1 || tail -20 "$WORK/etcd.log"
  python3 - "$WORK" <<'PY'
import glob, json, sys
rows = []
for f in glob.glob(sys.argv[1] + "/etcd/**/*.json", recursive=True):
    try:
        data = json.load(open(f))
    except Exception:
        continue
    for r in data if isinstance(data, list) else [data]:
        if isinstance(r, dict) and "unavail_ms" in r:
            rows.append(r)
u = sorted(r["unavail_ms"] for r in rows if r.get("unavail_ms") is not None)
l = sorted(r["new_leader_ms"] for r in rows if r.get("new_leader_ms") is not None)
if u:
    print(f"etcd over {len(u)} trials: unavailability p50 {u[len(u)//2]:.0f} ms, max {u[-1]:.0f} ms; new leader p50 {l[len(l)//2] if l else float('nan'):.0f} ms")
else:
    print("etcd: no trial results found (see etcd.log)")
PY
else
  echo "etcd reference script not found at $ETCD_SCRIPT; skipping etcd"
fi
echo "(work dir: $WORK)"
