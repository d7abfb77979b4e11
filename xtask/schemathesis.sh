#!/usr/bin/env bash
# Schemathesis (a property-based API tester from PyPI, installed here when missing) against a
# real node with authentication configured: every operation of /v1/openapi.json, positive and
# negative data and the stateful links, as an operator. It fails on any 5xx, any response
# outside the documented schema, or a node that died under it. Run by `cargo xtask ci` with
# the debug binary the tests built: `bash xtask/schemathesis.sh target/debug/paddock`.
set -euo pipefail
paddock="$1"
version="4.32.5"
examples="${SCHEMATHESIS_EXAMPLES:-25}"
if ! command -v schemathesis >/dev/null 2>&1 || ! schemathesis --version 2>/dev/null | grep -q "$version"; then
    echo "installing schemathesis $version from PyPI"
    python3 -m pip install --quiet "schemathesis==$version"
    hash -r
fi
dir=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
"$paddock" keys new --principal schemathesis --role operator > "$dir/key.json"
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$dir/key.json")
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["static_keys_line"])' "$dir/key.json" > "$dir/static-keys"
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
status=0
# Streams never end by design: they are exercised by the process tests instead.
schemathesis run "http://127.0.0.1:$http/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$examples" --seed 20261202 --request-timeout 10 \
    --exclude-path-regex '^/v1/stream/' || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
    tail -50 "$dir/node.log"
    echo "schemathesis: the node died under test"
    exit 1
fi
if [ "$status" -ne 0 ]; then
    tail -30 "$dir/node.log"
    echo "schemathesis: failures above (exit $status)"
    exit "$status"
fi
echo "schemathesis: no 5xx, every response within the documented schema, the node alive"
