#!/usr/bin/env bash
# failover.sh — client-visible write unavailability after kill -9 of the leader: Paddock
# (3 nodes) and etcd (3 members, ../shared/bench/etcd_failover.sh) side by side, the same
# client load (16 workers x 50 writes/s, round-robin over all nodes) and the same 1 s client
# timeout, plus the timeout-independent time to a new leader.
#
#   bash bench/failover.sh                  # TRIALS=5; needs etcd-server, etcd-client, wrk
#   env: TRIALS=5 ETCD_SCRIPT=/path/to/etcd_failover.sh
# Everything binds to 127.0.0.0/8; every trial is bounded; processes are stopped by PID.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TRIALS="${TRIALS:-5}"
ETCD_SCRIPT="${ETCD_SCRIPT:-$ROOT/../shared/bench/etcd_failover.sh}"
WORK="$(mktemp -d /tmp/paddock-failover.XXXXXX)"

echo "== building paddock (release)"
(cd "$ROOT" && cargo build --release -q -p paddock-cli)
echo "== Paddock: $TRIALS kills of the leader"
"$ROOT/target/release/paddock" drill failover --trials "$TRIALS" --report "$WORK/paddock.json" | tee "$WORK/paddock.txt"

if [ -f "$ETCD_SCRIPT" ]; then
  command -v etcd >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq etcd-server etcd-client wrk >/dev/null; }
  echo "== etcd: $TRIALS kills of the leader (same load, same timeout)"
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
