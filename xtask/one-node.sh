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
# new_key PRINCIPAL ROLE: appends the key's line to the static keys file, prints the key.
new_key() {
    "$paddock" keys new --principal "$1" --role "$2" | python3 -c '
import json, sys
made = json.load(sys.stdin)
with open(sys.argv[1], "a") as keys:
    print(made["static_keys_line"], file=keys)
print(made["key"])' "$dir/static-keys"
}
key=$(new_key "$principal" operator)
service_key=$(new_key "$principal-service" service)
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
