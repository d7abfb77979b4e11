# cluster.sh — sourced by the bench scripts: a 3-node Paddock cluster of the release build on
# loopback, with a fresh operator key as every node's static key.
#
#   start_cluster [extra `paddock start` flags...]
#   stop_cluster [grace seconds, default 1]
# Needs BIN, WORK, BASE_PORT and the array PIDS; stop_cluster sends SIGTERM to those PIDs, waits
# the grace, SIGKILLs what is left and empties PIDS (so a trap may call it again). Node i serves
# HTTP on BASE_PORT+i and peers on BASE_PORT+100+i, logs to $WORK/node-i.log. Exports
# PADDOCK_KEY (for `paddock load`) and sets NODES (the three URLs, comma-separated). Waits at
# most 20 s for all three to be ready, else prints their logs' tails and exits.
start_cluster() {
  "$BIN" keys new --principal bench --role operator > "$WORK/key.json"
  PADDOCK_KEY="$(python3 -c "import json;print(json.load(open('$WORK/key.json'))['key'])")"
  export PADDOCK_KEY
  python3 -c "import json;print(json.load(open('$WORK/key.json'))['static_keys_line'])" > "$WORK/static-keys"
  local boot="" i ready=0
  for i in 1 2 3; do boot="$boot${boot:+,}$i=127.0.0.1:$((BASE_PORT + 100 + i))"; done
  for i in 1 2 3; do
    "$BIN" start --node-id "$i" --data-dir "$WORK/node-$i" --http "127.0.0.1:$((BASE_PORT + i))" \
      --peer "127.0.0.1:$((BASE_PORT + 100 + i))" --bootstrap "$boot" --concurrency-limit 4096 \
      --static-keys "$WORK/static-keys" "$@" > "$WORK/node-$i.log" 2>&1 &
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
}

stop_cluster() {
  local pid
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true; done
  sleep "${1:-1}"
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true; done
  PIDS=()
}
