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
principal=schemathesis
# shellcheck source=one-node.sh
source "$(dirname "$0")/one-node.sh"
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
