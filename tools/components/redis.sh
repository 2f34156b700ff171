#!/usr/bin/env bash
# Installs redis-server (Debian's package) for the Redis store's contract tests.
#
# The tests start their own redis-server on a free loopback port and stop it by PID, so the
# package must not leave a system service running: while installing, a policy-rc.d that
# refuses every service start is put in place (unless the machine already has one), and a
# service that systemd started anyway is stopped and disabled. Safe to run again: it does
# nothing when redis-server is already on PATH.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi

fail() {
    echo "tools/components/redis.sh: $*" >&2
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    fail "redis-server is not installed and installing it needs root: run 'sudo apt-get install redis-server' (then 'sudo systemctl disable --now redis-server'), or run this script as root"
fi
command -v apt-get >/dev/null 2>&1 ||
    fail "redis-server is not installed and this machine has no apt-get: install redis-server 7 with your package manager and put it on PATH"

export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Left by tools/components/redis.sh while it installs redis-server.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

# Refresh the package lists only when they do not know the package yet.
if ! apt-cache show redis-server >/dev/null 2>&1; then
    apt-get update -qq -o DPkg::Lock::Timeout=600 || fail "apt-get update failed; check the network and /etc/apt/sources.list"
fi
# Another install may hold dpkg's lock (make test runs installers one after another, but
# an engineer may be running apt too): wait for it rather than fail.
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 redis-server >/dev/null ||
    fail "apt-get install redis-server failed; see the apt output above"

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now redis-server >/dev/null 2>&1 || true
fi

command -v redis-server >/dev/null 2>&1 ||
    fail "redis-server was installed but is not on PATH; check that /usr/bin is on PATH"
