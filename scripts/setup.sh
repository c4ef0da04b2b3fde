#!/usr/bin/env bash
# Installs what cmera needs from Debian's archive (only what is missing), then configures
# and builds into build/ (program at build/bin/cmera). Safe to run repeatedly.
# Usage: scripts/setup.sh [extra cmake args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

packages=(build-essential cmake git pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev zlib1g-dev
          libeigen3-dev libtomlplusplus-dev libcli11-dev libfmt-dev nlohmann-json3-dev
          libgtest-dev libbenchmark-dev python3-numpy python3-h5py python3-matplotlib)
# Callers that need more (the tests: PyTorch for the neural peer; the benchmarks: the
# peers' libraries) name it here, so that one place installs everything.
read -r -a extra <<<"${CMERA_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >build-configure.log 2>&1 ||
  { cat build-configure.log; exit 1; }
cmake --build build -j "$(nproc)"
echo "setup: built $here/build/bin/cmera"
