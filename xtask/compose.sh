#!/usr/bin/env bash
# `bash xtask/compose.sh setup [--binary PATH] [--out DIR]`: what deploy/compose.yaml needs beside
# the images, in deploy/compose/secrets/ (never committed: .gitignore) or DIR (then run compose
# with PADDOCK_SECRETS=DIR):
#   ca.pem, ca.key                  the cluster's CA (`paddock certs`; keep ca.key safe)
#   node-1..3.pem/.key              each node's certificate, naming node1..3, lb, localhost, 127.0.0.1
#   lb.pem                          HAProxy's certificate and key in one file (the CA's node-9 pair)
#   static-keys                     the first operator's key digest (`paddock keys new`)
#   operator.key                    that key itself, for you
# Run again: the CA and the operator key are kept, the certificates renewed. Readable by the
# containers' user (10001): owned by it when run as root, world-readable otherwise (a local
# cluster; use your platform's secrets elsewhere, docs/deployment.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
usage="usage: bash xtask/compose.sh setup [--binary PATH] [--out DIR]"
[ "${1:-}" = setup ] || { echo "$usage" >&2; exit 2; }
shift
paddock=""
secrets="$root/deploy/compose/secrets"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) paddock="$2"; shift 2 ;;
        --out) secrets="$2"; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
if [ -z "$paddock" ]; then
    for candidate in "$root/target/release/paddock" "$root/target/debug/paddock"; do
        if [ -x "$candidate" ]; then paddock="$candidate"; break; fi
    done
fi
[ -n "$paddock" ] && [ -x "$paddock" ] || { echo "compose: no paddock binary: build one (cargo build --release -p paddock-cli) or pass --binary" >&2; exit 1; }

mkdir -p "$secrets"
"$paddock" certs --cluster-id paddock --nodes 1,2,3,9 \
    --host node1 --host node2 --host node3 --host lb --host localhost --host 127.0.0.1 \
    --out "$secrets" >/dev/null
cat "$secrets/node-9.pem" "$secrets/node-9.key" >"$secrets/lb.pem"
rm -f "$secrets/node-9.pem" "$secrets/node-9.key"
if [ ! -s "$secrets/operator.key" ]; then
    made="$("$paddock" keys new --principal root --role operator)"
    python3 -c 'import json,sys; d=json.load(sys.stdin); open(sys.argv[1],"w").write(d["key"]+"\n"); open(sys.argv[2],"w").write(d["static_keys_line"]+"\n")' \
        "$secrets/operator.key" "$secrets/static-keys" <<<"$made"
fi
chmod 0755 "$secrets"
if [ "$(id -u)" = 0 ]; then
    chown -R 10001:10001 "$secrets"
    chmod 0600 "$secrets"/*.key "$secrets/lb.pem"
    chmod 0644 "$secrets"/*.pem "$secrets/static-keys"
else
    chmod 0644 "$secrets"/*
fi
echo "compose: secrets in $secrets"
echo "  operator key: \$(cat $secrets/operator.key)"
echo "  then: docker-compose -f deploy/compose.yaml up -d"
echo "  and:  curl --cacert $secrets/ca.pem -H \"Authorization: Bearer \$(cat $secrets/operator.key)\" https://127.0.0.1:\${PADDOCK_LB_PORT:-8443}/v1/cluster"
