#!/usr/bin/env bash
# Schemathesis (a property-based API tester from PyPI, installed here when missing) against a
# real node with authentication configured: every operation of /v1/openapi.json with all of
# its checks — no 5xx, every response within the documented schema, no request the document
# allows refused, no request it forbids accepted — from positive and negative data, the
# coverage phase and the stateful links between operations. Two passes: as an operator (every
# operation), then as a service principal (the player routes, which move money and which an
# operator may not call). Run by `cargo xtask ci` with the debug binary the tests built:
# `bash xtask/schemathesis.sh target/debug/paddock`.
set -euo pipefail
paddock="$1"
version="4.32.5"
examples="${SCHEMATHESIS_EXAMPLES:-25}"
config="$(cd "$(dirname "$0")" && pwd)/schemathesis.toml"
if ! command -v schemathesis >/dev/null 2>&1 || ! schemathesis --version 2>/dev/null | grep -q "$version"; then
    echo "installing schemathesis $version from PyPI"
    python3 -m pip install --quiet "schemathesis==$version"
    hash -r
fi
principal=schemathesis
# shellcheck source=one-node.sh
source "$(dirname "$0")/one-node.sh"
# Left out: the streams never end by design (the process tests read them); adding a member
# makes the leader dial the address in the request, and a fuzzer must not make a node dial
# hosts it invents (api_contract.rs covers it, on loopback).
run() {
    local who="$1" bearer="$2"
    shift 2
    echo "== schemathesis as $who"
    schemathesis --config-file "$config" run "http://127.0.0.1:$http/v1/openapi.json" \
        --header "Authorization: Bearer $bearer" \
        --checks all \
        --max-examples "$examples" --seed 20261202 --request-timeout 10 \
        --exclude-path-regex '^/v1/stream/' --exclude-name 'POST /v1/cluster/members' "$@"
}
status=0
# An operator may not move a player's money: those routes are the service pass's.
run operator "$key" \
    --exclude-name 'POST /v1/accounts/{account_id}/deposits' \
    --exclude-name 'POST /v1/accounts/{account_id}/withdrawals' \
    --exclude-name 'POST /v1/bets' --exclude-name 'POST /v1/bets/{bet_id}/cash-out' || status=$?
if [ "$status" -eq 0 ]; then
    run service "$service_key" --include-tag player || status=$?
fi
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
echo "schemathesis: all checks passed, both passes, the node alive"
