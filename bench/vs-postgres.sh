#!/usr/bin/env bash
# vs-postgres.sh — bets/s of Paddock (3 nodes, fsync on) against PostgreSQL with one
# synchronous standby, on this machine, in one run.
#
#   bash bench/vs-postgres.sh            # as root (PostgreSQL runs as user postgres)
#   env: DURATION=30 CLIENTS=16 PG_SCRIPT=/path/to/pg_sync_bets.sh BASE_PORT=7400
#
# PostgreSQL side: ../shared/bench/pg_sync_bets.sh (the team's reference set-up) in mode
# `sync`, pgbench with CLIENTS clients, each transaction a place-bet (debit if funds allow,
# insert the bet with a unique idempotency key).
# Paddock side: a release build, 3 nodes on loopback, `paddock load` with the same number of
# requests in flight (CLIENTS) placing single bets as fast as they are answered; then a
# second run at half that rate for the latency at half load.
# Prints bets/s and p50/p99 for both, then `ratio: <Paddock bets/s ÷ PostgreSQL bets/s>`.
# Everything binds to 127.0.0.1; every load run is bounded by DURATION; nodes are stopped by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-30}"
CLIENTS="${CLIENTS:-16}"
BASE_PORT="${BASE_PORT:-7400}"
PG_SCRIPT="${PG_SCRIPT:-$ROOT/../shared/bench/pg_sync_bets.sh}"
WORK="$(mktemp -d /tmp/paddock-vs-pg.XXXXXX)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${PIDS[@]:-}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

command -v pgbench >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || {
  echo "installing postgresql (Debian package)"; apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
[ -f "$PG_SCRIPT" ] || { echo "PostgreSQL reference script not found at $PG_SCRIPT (set PG_SCRIPT)" >&2; exit 2; }

echo "== building paddock (release)"
(cd "$ROOT" && cargo build --release -q -p paddock-cli)
BIN="$ROOT/target/release/paddock"

echo "== PostgreSQL: primary + 1 synchronous standby, pgbench -c $CLIENTS -T $DURATION"
PG_OUT="$WORK/pg"
OUT="$PG_OUT" MODES=sync REPEATS=1 DURATION="$DURATION" CLIENTS="$CLIENTS" QUIET_WAIT_S=0 \
  bash "$PG_SCRIPT" all > "$WORK/pg.log" 2>&1 || { tail -30 "$WORK/pg.log"; exit 1; }
PG_TXT="$(ls "$PG_OUT"/pg_sync_*_r1.txt | head -1)"
PG_TPS="$(grep -m1 -E '^tps = ' "$PG_TXT" | awk '{print $3}')"
PG_LAT="$(ls "$PG_OUT"/pg_sync_*_r1.lat.json | head -1)"
PG_P50="$(python3 -c "import json;print(json.load(open('$PG_LAT'))['p50_ms'])")"
PG_P99="$(python3 -c "import json;print(json.load(open('$PG_LAT'))['p99_ms'])")"

echo "== Paddock: 3 nodes (fsync on every commit)"
# An operator key for the load generator, as a static key of every node.
"$BIN" keys new --principal bench --role operator > "$WORK/key.json"
export PADDOCK_KEY="$(python3 -c "import json;print(json.load(open('$WORK/key.json'))['key'])")"
python3 -c "import json;print(json.load(open('$WORK/key.json'))['static_keys_line'])" > "$WORK/static-keys"
BOOT=""
for i in 1 2 3; do BOOT="$BOOT${BOOT:+,}$i=127.0.0.1:$((BASE_PORT + 100 + i))"; done
for i in 1 2 3; do
  "$BIN" start --node-id "$i" --data-dir "$WORK/node-$i" --http "127.0.0.1:$((BASE_PORT + i))" \
    --peer "127.0.0.1:$((BASE_PORT + 100 + i))" --bootstrap "$BOOT" --concurrency-limit 4096 --static-keys "$WORK/static-keys" \
    > "$WORK/node-$i.log" 2>&1 &
  PIDS+=("$!")
done
for _ in $(seq 1 100); do
  ready=0
  for i in 1 2 3; do curl -sf "http://127.0.0.1:$((BASE_PORT + i))/health/ready" >/dev/null && ready=$((ready + 1)); done
  [ "$ready" = 3 ] && break
  sleep 0.2
done
[ "$ready" = 3 ] || { echo "cluster not ready" >&2; tail -20 "$WORK"/node-*.log; exit 1; }
NODES="http://127.0.0.1:$((BASE_PORT + 1)),http://127.0.0.1:$((BASE_PORT + 2)),http://127.0.0.1:$((BASE_PORT + 3))"
# Saturation: schedule far more than can be served, with CLIENTS requests in flight.
"$BIN" load --nodes "$NODES" --mix single=100 --rate 200000 --concurrency "$CLIENTS" --duration-s "$DURATION" \
  --accounts 10000 --markets 500 --quiet --report "$WORK/paddock-max.json" > "$WORK/paddock-max.txt"
P_TPS="$(python3 -c "import json;print(round(json.load(open('$WORK/paddock-max.json'))['bets_accepted_per_s'],1))")"
P_P50="$(python3 -c "import json;print(json.load(open('$WORK/paddock-max.json'))['bet_latency_ms']['p50'])")"
P_P99="$(python3 -c "import json;print(json.load(open('$WORK/paddock-max.json'))['bet_latency_ms']['p99'])")"
HALF="$(python3 -c "print(max(1,int($P_TPS/2)))")"
"$BIN" load --nodes "$NODES" --mix single=100 --rate "$HALF" --concurrency 256 --duration-s "$DURATION" \
  --accounts 10000 --markets 500 --quiet --report "$WORK/paddock-half.json" > "$WORK/paddock-half.txt"
H_P50="$(python3 -c "import json;print(json.load(open('$WORK/paddock-half.json'))['bet_latency_ms']['p50'])")"
H_P99="$(python3 -c "import json;print(json.load(open('$WORK/paddock-half.json'))['bet_latency_ms']['p99'])")"
H_ERR="$(python3 -c "import json;print(json.load(open('$WORK/paddock-half.json'))['errors'])")"

echo
echo "PostgreSQL (sync standby, $CLIENTS clients): $PG_TPS bets/s  p50 ${PG_P50} ms  p99 ${PG_P99} ms"
echo "Paddock (3 nodes, $CLIENTS in flight):        $P_TPS bets/s  p50 ${P_P50} ms  p99 ${P_P99} ms"
echo "Paddock at half that rate ($HALF/s):         p50 ${H_P50} ms  p99 ${H_P99} ms  errors $H_ERR"
echo "ratio: $(python3 -c "print(round($P_TPS/$PG_TPS, 2))")"
echo "(work dir: $WORK)"
