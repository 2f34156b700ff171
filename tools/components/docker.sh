#!/usr/bin/env bash
# Installs what the Docker backend's tests need: dockerd and containerd (Debian's
# docker.io) and debootstrap, which builds burla's base image locally (no registry is
# reachable). Installs only what is missing; the tests start dockerd themselves.
set -euo pipefail

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "docker.sh: ${missing[*]} missing; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
        echo "docker.sh: could not install ${missing[*]} with apt-get; install them by hand" >&2
        exit 1
    }
fi
