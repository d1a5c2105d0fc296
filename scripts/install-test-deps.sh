#!/usr/bin/env bash
# What the tests need beyond npm, from Debian's packages: chromium (the browser tests drive it
# through playwright-core; no tool downloads its own browser; it also ships SwiftShader, the CPU
# Vulkan driver the WebGPU golden tests run on), libvulkan1 (the Vulkan loader onnxruntime's WebGPU
# provider needs on Linux) and redis-server (the studio tests start their own on a free loopback
# port). Installs only what is missing; needs root or sudo then.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libvulkan\.so\.1 ' || missing+=(libvulkan1)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "Installing from Debian's packages: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
