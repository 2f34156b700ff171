#!/usr/bin/env bash
# Installs headless Chromium and its driver (Debian's chromium and chromium-driver) for the
# dashboard's browser tests, which drive /usr/bin/chromium with Python's playwright (the
# dev extra) and never download a browser of their own. Installs only what is missing.
set -euo pipefail

fail() {
    echo "tools/components/chromium.sh: $*" >&2
    exit 1
}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    fail "${missing[*]} missing; run as root or: sudo apt-get install -y ${missing[*]}"
fi
command -v apt-get >/dev/null 2>&1 ||
    fail "${missing[*]} missing and this machine has no apt-get: install Chromium at /usr/bin/chromium"

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they do not know the packages yet.
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq -o DPkg::Lock::Timeout=600 || fail "apt-get update failed"
fi
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null ||
    fail "apt-get install ${missing[*]} failed"
[ -x /usr/bin/chromium ] || fail "chromium was installed but /usr/bin/chromium is missing"
