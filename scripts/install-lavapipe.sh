#!/usr/bin/env bash
# Installs Mesa's lavapipe, a Vulkan driver that runs on the CPU, so that `--features wgpu` (and
# scripts/gpu-tests.sh) runs Burn's GPU kernels on a machine without a GPU. Debian/Ubuntu, as
# root or with sudo; does nothing when the driver is already there.
set -euo pipefail
if ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
  echo "lavapipe: already installed"
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1
ls /usr/share/vulkan/icd.d/lvp_icd.*.json
