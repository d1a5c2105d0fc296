#!/usr/bin/env bash
# What the tests need beyond npm, from Debian's packages: chromium (the browser tests drive it
# through playwright-core; no tool downloads its own browser) and redis-server (the studio tests
# start their own on a free loopback port). Installs only what is missing; needs root or sudo then.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "Installing from Debian's packages: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
