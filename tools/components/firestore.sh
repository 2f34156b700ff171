#!/usr/bin/env bash
# The official Firestore emulator that tests/contract/test_firestore.py starts:
# gcloud's cloud-firestore-emulator component and a Java runtime to run it.
# Installs only what is missing; safe to run again.
set -euo pipefail

EMULATOR_PACKAGE=google-cloud-cli-firestore-emulator
JAVA_PACKAGE=default-jre-headless

fail() {
    echo "firestore.sh: $*" >&2
    exit 1
}

emulator_jar() {
    # gcloud lives in <sdk root>/bin; the emulator, in <sdk root>/platform.
    local gcloud_path
    gcloud_path="$(command -v gcloud)" || return 1
    echo "$(dirname "$(dirname "$(readlink -f "$gcloud_path")")")/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
}

have_emulator() {
    local jar
    jar="$(emulator_jar)" && [ -f "$jar" ]
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    [ "$(id -u)" = 0 ] || return 1
    apt-cache show "$1" >/dev/null 2>&1 || apt-get update -qq >/dev/null || return 1
    apt-cache show "$1" >/dev/null 2>&1 || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

if ! command -v java >/dev/null 2>&1; then
    apt_install "$JAVA_PACKAGE" ||
        fail "the Firestore emulator needs Java 11 or newer, and '$JAVA_PACKAGE' could not be installed with apt-get: install a Java runtime and put 'java' on PATH"
fi

if ! have_emulator; then
    if ! apt_install "$EMULATOR_PACKAGE"; then
        if command -v gcloud >/dev/null 2>&1; then
            CLOUDSDK_CORE_DISABLE_PROMPTS=1 gcloud components install cloud-firestore-emulator --quiet >/dev/null 2>&1 || true
        fi
    fi
    have_emulator ||
        fail "the Firestore emulator is missing: add Google Cloud's apt repository (see https://cloud.google.com/sdk/docs/install#deb) and run 'apt-get install $EMULATOR_PACKAGE', or run 'gcloud components install cloud-firestore-emulator'"
fi
