#!/usr/bin/env bash
# promtool (Prometheus's own linter) against a real node's /metrics: every metric has # HELP
# text, counters end in _total, names and labels follow the conventions. promtool comes from the
# Debian package `prometheus`, unpacked into target/tools when it is not on PATH: nothing is
# installed system-wide and no Prometheus server is started. Run by `cargo xtask ci` with the
# debug binary the tests built: `bash xtask/promtool.sh target/debug/paddock`.
set -euo pipefail
paddock="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/target/tools/prometheus"
promtool="$(command -v promtool || true)"
if [ -z "$promtool" ]; then
    promtool="$tools/usr/bin/promtool"
    # shellcheck source=unpack.sh
    source "$root/xtask/unpack.sh"
    unpack prometheus promtool
fi
principal=promtool
# shellcheck source=one-node.sh
source "$(dirname "$0")/one-node.sh"
# A little traffic, so that labelled series (routes, statuses, refusals) exist too.
base="http://127.0.0.1:$http"
curl -s -o /dev/null -H "Authorization: Bearer $key" "$base/v1/cluster"
curl -s -o /dev/null -H "Authorization: Bearer $key" "$base/v1/markets"
curl -s -o /dev/null "$base/v1/markets"
curl -s -o /dev/null -H "Authorization: Bearer $key" -H 'Idempotency-Key: promtool-1' -H 'content-type: application/json' \
    -X POST "$base/v1/accounts" -d '{"account_id":1,"currency":"GBP"}'
curl -s "$base/metrics" > "$dir/scrape"
series=$(grep -vc '^#' "$dir/scrape" || true)
helps=$(grep -c '^# HELP' "$dir/scrape" || true)
if ! "$promtool" check metrics < "$dir/scrape"; then
    echo "promtool: the node's /metrics breaks the conventions above"
    exit 1
fi
echo "promtool: /metrics of a real node is clean ($series series, $helps with # HELP)"

# The alert and recording rules: valid, their unit tests pass, and every Paddock metric they
# name is one the node exports (METRICS in crates/node/src/metrics.rs).
rules="$root/deploy/prometheus/paddock-alerts.yml"
"$promtool" check rules "$rules"
(cd "$root/deploy/prometheus" && "$promtool" test rules paddock-alerts.test.yml)
unknown=""
for name in $(grep -o 'paddock_[a-z0-9_]*' "$rules" | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
    grep -q "(\"$name\"," "$root/crates/node/src/metrics.rs" || unknown="$unknown $name"
done
if [ -n "$unknown" ]; then
    echo "promtool: deploy/prometheus/paddock-alerts.yml names metrics the node does not export:$unknown"
    exit 1
fi
echo "promtool: alert rules valid, unit-tested, and every metric they name is exported"
