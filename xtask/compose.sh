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
#
# `bash xtask/compose.sh upgrade --image TAG [--binary PATH] [--expect-version V] [--project NAME]`:
# a rolling upgrade of the running Compose cluster to the image TAG with no failed request
# (`paddock upgrade`, docs/deployment.md "Rolling upgrade"): followers first, the leader last
# after a leadership transfer, each node recreated on TAG with `docker-compose up -d --no-deps
# --force-recreate`, which stops it (it drains) and starts the new build on its volume, and
# waited for until it is back and caught up. The same environment as `up` (PADDOCK_SECRETS,
# PADDOCK_LB_PORT, ...); afterwards keep PADDOCK_IMAGE=TAG, or the next `up` rolls back.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
usage="usage: bash xtask/compose.sh setup [--binary PATH] [--out DIR]
       bash xtask/compose.sh upgrade --image TAG [--binary PATH] [--expect-version V] [--project NAME]"

find_paddock() {
    if [ -z "$paddock" ]; then
        for candidate in "$root/target/release/paddock" "$root/target/debug/paddock"; do
            if [ -x "$candidate" ]; then paddock="$candidate"; break; fi
        done
    fi
    [ -n "$paddock" ] && [ -x "$paddock" ] || { echo "compose: no paddock binary: build one (cargo build --release -p paddock-cli) or pass --binary" >&2; exit 1; }
}

if [ "${1:-}" = upgrade ]; then
    shift
    paddock="" image="" expect="" project=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --binary) paddock="$2"; shift 2 ;;
            --image) image="$2"; shift 2 ;;
            --expect-version) expect="$2"; shift 2 ;;
            --project) project=(-p "$2"); shift 2 ;;
            *) echo "$usage" >&2; exit 2 ;;
        esac
    done
    [ -n "$image" ] || { echo "compose upgrade: name the new image with --image (built by cargo xtask image --tag)" >&2; exit 2; }
    docker image inspect "$image" >/dev/null 2>&1 || { echo "compose upgrade: no image $image here: build it first (cargo xtask image --binary <new build> --tag $image)" >&2; exit 1; }
    find_paddock
    secrets="${PADDOCK_SECRETS:-$root/deploy/compose/secrets}"
    # Compose v1 where it is installed, else the Compose plugin of current Docker.
    if command -v docker-compose >/dev/null 2>&1; then compose=docker-compose; else compose="docker compose"; fi
    compose="$compose ${project[*]} -f $root/deploy/compose.yaml"
    args=(upgrade --node "https://127.0.0.1:${PADDOCK_LB_PORT:-8443}" --ca-cert "$secrets/ca.pem"
        --replace "PADDOCK_IMAGE=$image $compose up -d --no-deps --force-recreate node{id}")
    [ -z "$expect" ] || args+=(--expect-version "$expect")
    PADDOCK_KEY="$(cat "$secrets/operator.key")" "$paddock" "${args[@]}"
    echo "compose: every node runs $image; keep PADDOCK_IMAGE=$image for the next docker-compose up"
    exit 0
fi
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
find_paddock

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
