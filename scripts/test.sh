#!/usr/bin/env bash
# README command 2 (and .ci/run): install what is missing, build, run every test.
# MPI tests run at 1, 2, 3 and 4 ranks (oversubscribed on small machines).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_pcompress_base_silence_warning=1
cd "$here/build"
ctest --output-on-failure --timeout 1500 "$@"
