#!/usr/bin/env bash
# README command 2 (and .ci/run): install what is missing, build, run every test.
# MPI tests run at 1, 2, 3 and 4 ranks (oversubscribed on small machines); then the
# ASan + UBSan suite (scripts/sanitize.sh) and 60 s per fuzz target (scripts/fuzz.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMERA_EXTRA_PACKAGES="python3-torch ${CMERA_EXTRA_PACKAGES:-}" "$here/scripts/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_pcompress_base_silence_warning=1
cd "$here/build"
ctest --output-on-failure --timeout 1500 "$@"
# Then the sanitizer build of the suite and the fuzzers (README "Bad input, faults and
# robustness"); CMERA_SANITIZE=0 or CMERA_FUZZ_SECONDS=0 skips them.
[ "${CMERA_SANITIZE:-1}" = 0 ] || bash "$here/scripts/sanitize.sh"
[ "${CMERA_FUZZ_SECONDS:-60}" = 0 ] || bash "$here/scripts/fuzz.sh" "${CMERA_FUZZ_SECONDS:-60}"
