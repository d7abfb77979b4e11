#!/usr/bin/env bash
# The Debian packages the test suite drives as real components, installed when missing (and
# only then): haproxy, for crates/cli/tests/load_balancer.rs. Idempotent; run by `cargo xtask
# ci` before the tests. Installing needs root (as on CI and this project's machines); anyone
# else installs the packages by hand.
set -euo pipefail
need=()
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi
