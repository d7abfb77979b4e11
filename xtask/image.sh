#!/usr/bin/env bash
# `cargo xtask image [--binary PATH] [--tag TAG] [--all] [--suffix S]`: builds container images
# from local files only (deploy/docker/Dockerfile, FROM scratch by default; no registry needed).
#
# paddock:local (or --tag, or paddock:S with --suffix S): the node. Without --binary the
# release binary is built first.
# With --all, also the two images deploy/compose.yaml runs beside the nodes, made the same way
# from the Debian packages the test command installs (xtask/packages.sh, xtask/promtool.sh):
#   paddock-haproxy:local      /usr/sbin/haproxy and deploy/haproxy/haproxy.cfg (:S with --suffix)
#   paddock-prometheus:local   prometheus and deploy/prometheus/paddock-alerts.yml (:S likewise)
#
# Each image is staged in target/image/<name>:
#   rootfs/<binary path>                the program, and /entrypoint a link to it
#   rootfs/<lib paths>                  every shared library ldd names, and the loader
#   rootfs/etc/passwd, rootfs/etc/group the user (10001), no shell, no password
#   rootfs/etc/ssl/certs/...            the host's CA bundle
#   rootfs/<config files>               what the program reads
#   data/                               its writable directory, owned by 10001 in the image
# then built with `docker build --build-arg DATA=...`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary=""
tag=""
suffix="local"
all=false
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        --all) all=true; shift ;;
        --suffix) suffix="$2"; shift 2 ;;
        *) echo "usage: cargo xtask image [--binary PATH] [--tag TAG] [--all] [--suffix S]" >&2; exit 2 ;;
    esac
done
tag="${tag:-paddock:$suffix}"
if [ -z "$binary" ]; then
    (cd "$root" && cargo build --release --locked -p paddock-cli)
    binary="$root/target/release/paddock"
fi
[ -x "$binary" ] || { echo "image: no executable at $binary" >&2; exit 1; }
command -v docker >/dev/null || { echo "image: docker is not installed" >&2; exit 1; }

# stage NAME PROGRAM_SOURCE PROGRAM_PATH DATA_DIR [SOURCE=PATH ...]: stages target/image/NAME.
stage() {
    local name="$1" source="$2" program="$3" data="$4"
    shift 4
    local dir="$root/target/image/$name"
    rm -rf "$dir"
    mkdir -p "$dir/rootfs$(dirname "$program")" "$dir/rootfs/etc" "$dir/data"
    cp -L "$source" "$dir/rootfs$program"
    ln -s "$program" "$dir/rootfs/entrypoint"
    # Every library the program links, at the path the loader looks for it, and the loader.
    ldd "$source" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]+ \(/ { print $1 }' | sort -u | while read -r lib; do
        mkdir -p "$dir/rootfs$(dirname "$lib")"
        cp -L "$lib" "$dir/rootfs$lib"
    done
    printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:10001:10001:%s:%s:/sbin/nologin\n' "$name" "$name" "$data" \
        >"$dir/rootfs/etc/passwd"
    printf 'root:x:0:\n%s:x:10001:\n' "$name" >"$dir/rootfs/etc/group"
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        mkdir -p "$dir/rootfs/etc/ssl/certs"
        cp /etc/ssl/certs/ca-certificates.crt "$dir/rootfs/etc/ssl/certs/"
    fi
    local extra
    for extra in "$@"; do
        mkdir -p "$dir/rootfs$(dirname "${extra#*=}")"
        cp "${extra%%=*}" "$dir/rootfs${extra#*=}"
    done
}

# build NAME TAG DATA
build() {
    docker build --quiet -f "$root/deploy/docker/Dockerfile" \
        --build-arg "DATA=$3" -t "$2" "$root/target/image/$1" >/dev/null
    local size
    size=$(docker image inspect "$2" --format '{{.Size}}')
    echo "image $2: $(docker image inspect "$2" --format '{{.Id}}'), $((size / 1024 / 1024)) MiB"
}

stage paddock "$binary" /usr/local/bin/paddock /var/lib/paddock
build paddock "$tag" /var/lib/paddock
if $all; then
    haproxy="$(command -v haproxy || true)"
    [ -n "$haproxy" ] || bash "$root/xtask/packages.sh"
    haproxy="$(command -v haproxy)"
    # The Debian package, unpacked, not installed (as for promtool).
    # shellcheck source=unpack.sh
    source "$root/xtask/unpack.sh"
    unpack prometheus prometheus
    prometheus="$root/target/tools/prometheus/usr/bin/prometheus"
    stage paddock-haproxy "$haproxy" /usr/sbin/haproxy /var/lib/haproxy \
        "$root/deploy/haproxy/haproxy.cfg=/etc/haproxy/haproxy.cfg"
    build paddock-haproxy "paddock-haproxy:$suffix" /var/lib/haproxy
    stage paddock-prometheus "$prometheus" /usr/bin/prometheus /prometheus \
        "$root/deploy/prometheus/paddock-alerts.yml=/etc/prometheus/paddock-alerts.yml"
    build paddock-prometheus "paddock-prometheus:$suffix" /prometheus
fi
