#!/usr/bin/env bash
# vs-postgres.sh — bets/s of Paddock (3 nodes, fsync on) against PostgreSQL with one
# synchronous standby, on this machine, in one run, single bets and batches.
#
#   bash bench/vs-postgres.sh            # as root (PostgreSQL runs as user postgres)
#   env: DURATION=20 CLIENTS=16 BATCH=200 BATCH_CLIENTS=8 BASE_PORT=7400
#        PG_SCRIPT=/path/to/pg_sync_bets.sh
#
# PostgreSQL side: ../shared/bench/pg_sync_bets.sh (the team's reference set-up) creates the
# primary and its synchronous standby and runs its place-bet transaction (debit if funds allow,
# insert the bet with a unique idempotency key) under pgbench with CLIENTS clients. Then the
# same servers run BATCH bets per transaction, written the way a PostgreSQL user would write
# them: one statement that debits BATCH distinct wallets and inserts their bets (pgbench with
# BATCH_CLIENTS clients).
# Paddock side: a release build, 3 nodes on loopback, `paddock load` in a closed loop as
# pgbench runs (--rate 0: each of CLIENTS workers sends its next bet when its last is
# answered), one single bet per request; then an open loop at half that rate for the latency
# at half load; then BATCH_CLIENTS workers sending BATCH singles per `POST /v1/bets/batch`;
# then CLIENTS callers placing single bets through paddock-client's bet batcher (a gateway's
# auto-batching, `--auto-batch 1`: one batch request in flight per node, bets that find it
# taken leave together).
# CPU: server-side CPU seconds during each measured run, from /proc — the three nodes for
# Paddock (`paddock load --cpu-pids`), every postgres process of both servers (including
# backends that exit, through the postmasters' reaped-children times) for PostgreSQL; the
# load generators (pgbench, paddock load) are not counted on either side.
# Prints bets/s, p50/p99 and CPU µs per bet for each, then on their own lines:
#   single ratio: <Paddock single bets/s ÷ PostgreSQL single bets/s>
#   batch ratio: <Paddock batched bets/s ÷ PostgreSQL single bets/s>
#   same-batch ratio: <Paddock batched bets/s ÷ PostgreSQL batched bets/s>
#   auto-batch ratio: <Paddock single bets through the client's batcher ÷ PostgreSQL single>
# Everything binds to 127.0.0.1; every load run is bounded by DURATION; processes are stopped
# by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-20}"
CLIENTS="${CLIENTS:-16}"
BATCH="${BATCH:-200}"
BATCH_CLIENTS="${BATCH_CLIENTS:-8}"
BASE_PORT="${BASE_PORT:-7400}"
PG_SCRIPT="${PG_SCRIPT:-$ROOT/../shared/bench/pg_sync_bets.sh}"
WORK="$(mktemp -d /tmp/paddock-vs-pg.XXXXXX)"
# PostgreSQL runs as user postgres: its data directories live under here.
chmod 755 "$WORK"
PG_BASE="$WORK/pg"
PIDS=()

# shellcheck source=cluster.sh
source "$ROOT/bench/cluster.sh"
cleanup() {
  stop_cluster 2
  BASE="$PG_BASE" bash "$PG_SCRIPT" teardown >/dev/null 2>&1 || true
}
trap cleanup EXIT

command -v pgbench >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || {
  echo "installing postgresql (Debian package)"; apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
[ -f "$PG_SCRIPT" ] || { echo "PostgreSQL reference script not found at $PG_SCRIPT (set PG_SCRIPT)" >&2; exit 2; }
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PG_HELPERS="$(cd "$(dirname "$PG_SCRIPT")" && pwd)"

echo "== building paddock (release)"
(cd "$ROOT" && cargo build --release -q -p paddock-cli)
BIN="$ROOT/target/release/paddock"

# CPU seconds (user + system) of every postgres process now, plus what the postmasters have
# reaped from exited children (backends of finished connections).
pg_cpu_s() {
  local ticks=0 pid f
  for pid in $(pgrep -u postgres || true); do
    # Fields after the command name: state is [0], utime [11], stime [12], cutime [13], cstime [14].
    f=($(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null || echo))
    [ "${#f[@]}" -gt 14 ] || continue
    ticks=$((ticks + f[11] + f[12]))
    if grep -qx "$pid" "$WORK/postmasters"; then ticks=$((ticks + f[13] + f[14])); fi
  done
  echo "$ticks" | awk '{printf "%.2f", $1 / 100}'
}

# pgbench with CPU accounting: $1 = name, $2 = script, $3 = clients; the rest go to pgbench.
pg_run() {
  local name="$1" script="$2" clients="$3"
  local before after
  local logs="$WORK/pglog-$name"
  mkdir -p "$logs"
  before="$(pg_cpu_s)"
  timeout $((DURATION + 60)) "$PGBIN/pgbench" -h 127.0.0.1 -p 55432 -U postgres -n -M prepared \
    -c "$clients" -j 2 -T "$DURATION" -f "$script" --log --log-prefix="$logs/tx" bench > "$WORK/$name.txt" 2>&1 ||
    { echo "pgbench failed ($name):" >&2; head -20 "$WORK/$name.txt" >&2; exit 1; }
  sleep 1
  after="$(pg_cpu_s)"
  python3 "$PG_HELPERS/pg_latency_from_log.py" "$logs/tx" --json "$WORK/$name.lat.json" > /dev/null
  rm -rf "$logs"
  echo "$before $after" > "$WORK/$name.cpu"
}

echo "== PostgreSQL: primary + 1 synchronous standby"
BASE="$PG_BASE" OUT="$WORK/pg-out" bash "$PG_SCRIPT" setup > "$WORK/pg-setup.log" 2>&1 || { tail -30 "$WORK/pg-setup.log"; exit 1; }
for d in "$PG_BASE/primary" "$PG_BASE/standby"; do head -1 "$d/postmaster.pid"; done > "$WORK/postmasters"
cat > "$WORK/batch.sql" <<EOF
\\set base random(1, $((100000 - BATCH)))
\\set m random(1, 5000)
\\set k random(1, 9000000000000000000)
WITH req AS (SELECT :base::bigint + i AS w, :m::bigint AS m, 1 + i % 3 AS s, 100::bigint AS stake, 4000 AS odds,
                    :client_id::text || '-' || :k::text || '-' || i AS key
             FROM generate_series(0, $((BATCH - 1))) AS i),
     debited AS (UPDATE wallets SET balance = wallets.balance - req.stake FROM req
                 WHERE wallets.id = req.w AND wallets.balance >= req.stake RETURNING req.*)
INSERT INTO bets (wallet_id, market_id, selection_id, stake, odds_milli, idempotency_key)
SELECT w, m, s, stake, odds, key FROM debited;
EOF
echo "   single: pgbench -c $CLIENTS -T $DURATION (the reference place-bet transaction)"
pg_run pg-single "$PG_BASE/bets.sql" "$CLIENTS"
echo "   batch: $BATCH bets per transaction, pgbench -c $BATCH_CLIENTS -T $DURATION"
pg_run pg-batch "$WORK/batch.sql" "$BATCH_CLIENTS"
BASE="$PG_BASE" bash "$PG_SCRIPT" teardown > /dev/null 2>&1 || true

echo "== Paddock: 3 nodes (fsync on every commit)"
start_cluster
CPU_PIDS="$(IFS=,; echo "${PIDS[*]}")"
load() { # name, then paddock load flags
  local name="$1"; shift
  "$BIN" load --nodes "$NODES" --mix single=100 --duration-s "$DURATION" --accounts 10000 --markets 500 --quiet \
    --cpu-pids "$CPU_PIDS" --report "$WORK/$name.json" "$@" > "$WORK/$name.txt"
}
load paddock-single --rate 0 --concurrency "$CLIENTS"
P_TPS="$(python3 -c "import json;print(round(json.load(open('$WORK/paddock-single.json'))['bets_accepted_per_s'],1))")"
HALF="$(python3 -c "print(max(1,int($P_TPS/2)))")"
load paddock-half --rate "$HALF" --concurrency 256
load paddock-batch --rate 0 --concurrency "$BATCH_CLIENTS" --batch "$BATCH"
load paddock-auto --rate 0 --concurrency "$CLIENTS" --auto-batch 1

python3 - "$WORK" "$CLIENTS" "$BATCH" "$BATCH_CLIENTS" "$HALF" <<'EOF'
import json, re, sys
work, clients, batch, batch_clients, half = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]

def pg(name, bets_per_tx):
    text = open(f"{work}/{name}.txt").read()
    tps = float(re.search(r"^tps = ([0-9.]+)", text, re.M).group(1))
    lat = json.load(open(f"{work}/{name}.lat.json"))
    before, after = map(float, open(f"{work}/{name}.cpu").read().split())
    seconds = float(re.search(r"duration: ([0-9]+) s", text).group(1))
    bets = tps * bets_per_tx
    return bets, lat["p50_ms"], lat["p99_ms"], (after - before) * 1e6 / max(bets * seconds, 1)

def paddock(name):
    r = json.load(open(f"{work}/{name}.json"))
    l = r["bet_latency_ms"]
    return r["bets_accepted_per_s"], l["p50"], l["p99"], r.get("cpu_us_per_bet", 0.0), r["errors"]

rows = []
pg_single = pg("pg-single", 1)
pg_batch = pg("pg-batch", batch)
p_single = paddock("paddock-single")
p_half = paddock("paddock-half")
p_batch = paddock("paddock-batch")
p_auto = paddock("paddock-auto")
print()
print(f"{'':48} {'bets/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/bet':>11}")
def line(label, v):
    print(f"{label:48} {v[0]:9.0f} {v[1]:8.2f} {v[2]:8.2f} {v[3]:11.0f}")
line(f"PostgreSQL sync, single, {clients} clients", pg_single)
line(f"Paddock 3 nodes, single, {clients} in flight", p_single)
line(f"Paddock at half that rate ({half}/s)", p_half)
line(f"PostgreSQL sync, {batch}/tx, {batch_clients} clients", pg_batch)
line(f"Paddock, {batch}/request, {batch_clients} in flight", p_batch)
line(f"Paddock, {clients} single-bet callers, client batcher", p_auto)
for name, v in [("single", p_single), ("half", p_half), ("batch", p_batch), ("auto-batch", p_auto)]:
    if v[4]:
        print(f"paddock {name} errors: {v[4]}")
print()
print(f"single ratio: {p_single[0] / pg_single[0]:.2f}")
print(f"batch ratio: {p_batch[0] / pg_single[0]:.2f}")
print(f"same-batch ratio: {p_batch[0] / pg_batch[0]:.2f}")
print(f"auto-batch ratio: {p_auto[0] / pg_single[0]:.2f}")
EOF
echo "(work dir: $WORK)"
