#!/usr/bin/env bash
# Sourced by packages.sh, promtool.sh and image.sh: `unpack PACKAGE BINARY` makes a Debian
# package's files available under target/tools/PACKAGE without installing it system-wide
# (`apt-get download`, then `dpkg -x`), unless target/tools/PACKAGE/usr/bin/BINARY is already
# there. Needs `root` set to the workspace root.
unpack() { # package, binary it must provide
    local dir="$root/target/tools/$1"
    [ -x "$dir/usr/bin/$2" ] && return 0
    echo "unpacking the Debian package $1 into $dir"
    mkdir -p "$dir/deb"
    if ! (cd "$dir/deb" && apt-get download "$1" >/dev/null 2>&1); then
        apt-get update -qq >/dev/null
        (cd "$dir/deb" && apt-get download "$1" >/dev/null 2>&1)
    fi
    dpkg -x "$dir"/deb/"$1"_*.deb "$dir"
}
