#!/usr/bin/env bash
# `cargo xtask image [--binary PATH] [--tag TAG]`: builds the node's container image from local
# files only (deploy/docker/Dockerfile, FROM scratch by default). Without --binary it builds the
# release binary first. Stages in target/image:
#   rootfs/usr/local/bin/paddock        the binary
#   rootfs/<lib paths>                  every shared library ldd names, and the loader
#   rootfs/etc/passwd, rootfs/etc/group the user paddock (10001), no shell, no password
#   rootfs/etc/ssl/certs/...            the host's CA bundle (S3 backups over HTTPS)
#   data/                               the empty data directory, owned by 10001 in the image
# then `docker build`. Prints the image's id and size.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary=""
tag="paddock:local"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        *) echo "usage: cargo xtask image [--binary PATH] [--tag TAG]" >&2; exit 2 ;;
    esac
done
if [ -z "$binary" ]; then
    (cd "$root" && cargo build --release --locked -p paddock-cli)
    binary="$root/target/release/paddock"
fi
[ -x "$binary" ] || { echo "image: no executable at $binary" >&2; exit 1; }
command -v docker >/dev/null || { echo "image: docker is not installed" >&2; exit 1; }

stage="$root/target/image"
rm -rf "$stage"
mkdir -p "$stage/rootfs/usr/local/bin" "$stage/rootfs/etc" "$stage/data"
cp "$binary" "$stage/rootfs/usr/local/bin/paddock"
# Every library the binary links, at the path the loader looks for it, and the loader itself.
ldd "$binary" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]+ \(/ { print $1 }' | sort -u | while read -r lib; do
    mkdir -p "$stage/rootfs$(dirname "$lib")"
    cp -L "$lib" "$stage/rootfs$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\npaddock:x:10001:10001:paddock:/var/lib/paddock:/sbin/nologin\n' \
    >"$stage/rootfs/etc/passwd"
printf 'root:x:0:\npaddock:x:10001:\n' >"$stage/rootfs/etc/group"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$stage/rootfs/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$stage/rootfs/etc/ssl/certs/"
fi
docker build --quiet -f "$root/deploy/docker/Dockerfile" -t "$tag" "$stage" >/dev/null
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "image $tag: $(docker image inspect "$tag" --format '{{.Id}}'), $((size / 1024 / 1024)) MiB, from $binary"
