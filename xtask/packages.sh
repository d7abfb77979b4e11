#!/usr/bin/env bash
# The Debian packages the test suite drives as real components, made available when missing
# (and only then); idempotent, run by `cargo xtask ci` before the tests.
# - haproxy (crates/cli/tests/load_balancer.rs) and prometheus-alertmanager
#   (crates/cli/tests/alerting.rs; Debian's build reads its templates from
#   /usr/share/prometheus/alertmanager, so it must be installed, not unpacked): installed with
#   apt-get (needs root, as on CI and this project's machines; anyone else installs them by
#   hand). The package scripts start no service where policy-rc.d forbids it, as in containers.
# - chromium (crates/cli/tests/console.rs: the live console in a real headless browser):
#   installed with apt-get like the two above.
# - iproute2 and iptables (crates/cli/tests/three_sites_netns.rs: sites in network namespaces
#   of the test's own, cut by their packet filters): installed with apt-get when missing.
# - prometheus (crates/cli/tests/alerting.rs): its binaries are unpacked into
#   target/tools/prometheus with `apt-get download` and `dpkg -x` (as xtask/promtool.sh does):
#   nothing installed system-wide, no service started.
# - s3s-fs (crates/cli/tests/backup_s3.rs: backups to a real S3-compatible server): no Debian
#   package serves S3 without a Ceph cluster, so the pure-Rust server from crates.io is built
#   into target/tools/s3s-fs with `cargo install --locked` (its own build directory; pinned to
#   the last version this toolchain builds).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
need=()
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# ip and iptables: crates/cli/tests/three_sites_netns.rs makes its own network namespaces.
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need+=(iptables)
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi
# shellcheck source=unpack.sh
source "$root/xtask/unpack.sh"
unpack prometheus prometheus
if [ ! -x "$root/target/tools/s3s-fs/bin/s3s-fs" ]; then
    echo "building s3s-fs (an S3-compatible server) into target/tools/s3s-fs"
    cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet --root "$root/target/tools/s3s-fs"
fi
