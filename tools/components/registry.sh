#!/usr/bin/env bash
# Installs docker-registry (Debian's package of the reference Distribution registry), which
# stands in for Artifact Registry in the cloud backend's image tests.
#
# The tests start their own registry on a free loopback port and stop it by PID, so the
# package must not leave a system service running: while installing, a policy-rc.d that
# refuses every service start is put in place (unless the machine already has one), and a
# service that systemd started anyway is stopped and disabled. Safe to run again.
set -euo pipefail

if command -v docker-registry >/dev/null 2>&1; then
    exit 0
fi

fail() {
    echo "tools/components/registry.sh: $*" >&2
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    fail "docker-registry is not installed and installing it needs root: run 'sudo apt-get install docker-registry' (then 'sudo systemctl disable --now docker-registry'), or run this script as root"
fi
command -v apt-get >/dev/null 2>&1 ||
    fail "docker-registry is not installed and this machine has no apt-get: install the Distribution registry (v2) and put docker-registry on PATH"

export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Left by tools/components/registry.sh while it installs docker-registry.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

if ! apt-cache show docker-registry >/dev/null 2>&1; then
    apt-get update -qq -o DPkg::Lock::Timeout=600 || fail "apt-get update failed; check the network and /etc/apt/sources.list"
fi
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 docker-registry >/dev/null ||
    fail "apt-get install docker-registry failed; see the apt output above"

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

command -v docker-registry >/dev/null 2>&1 ||
    fail "docker-registry was installed but is not on PATH; check that /usr/bin is on PATH"
