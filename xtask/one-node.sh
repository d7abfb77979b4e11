#!/usr/bin/env bash
# Sourced by the CI scripts that drive a real node (schemathesis.sh, promtool.sh): starts one
# node of "$paddock" on free loopback ports with an operator key of principal "$principal",
# waits until it is ready, and stops it (by PID) and removes its files when the script exits.
# Sets: dir (its temporary directory), key (the operator's API key), service_key (a service
# principal's, "$principal-service": the role that moves players' money), http (its HTTP
# port), pid.
dir=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
"$paddock" keys new --principal "$principal" --role operator > "$dir/key.json"
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$dir/key.json")
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["static_keys_line"])' "$dir/key.json" > "$dir/static-keys"
"$paddock" keys new --principal "$principal-service" --role service > "$dir/service-key.json"
service_key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$dir/service-key.json")
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["static_keys_line"])' "$dir/service-key.json" >> "$dir/static-keys"
read -r http peer < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
"$paddock" start --node-id 1 --data-dir "$dir/data" --http "127.0.0.1:$http" --peer "127.0.0.1:$peer" \
    --bootstrap "1=127.0.0.1:$peer" --static-keys "$dir/static-keys" > "$dir/node.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$http/health/ready" >/dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$http/health/ready" >/dev/null || { cat "$dir/node.log"; echo "the node did not become ready"; exit 1; }
