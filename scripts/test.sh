#!/usr/bin/env bash
# README command 2 (and .ci/run): install what is missing, build, run every test.
# MPI tests run at 1, 2, 3 and 4 ranks (oversubscribed on small machines); then the
# ASan + UBSan suite (scripts/sanitize.sh) and 60 s per fuzz target (scripts/fuzz.sh).
# CTest runs one test per core (-j nproc): an MPI test at P ranks declares PROCESSORS P,
# so it runs alone on a 2-core machine, and the scenarios that time signals against their
# logs (Slurm, stop, kill and crash tests) are RUN_SERIAL (tests/CMakeLists.txt gives the
# reasons); the other tests share the cores. Trade-off: a test's own wall time stretches
# when it shares a core, for the suite's finishing sooner. On 2 cores the tests that
# overlap are the 1-rank GoogleTest runs, the CLI scenarios and the Python tests;
# cli_bad_inputs (a third of the serial suite) is started first (its COST).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMERA_EXTRA_PACKAGES="python3-torch ${CMERA_EXTRA_PACKAGES:-}" "$here/scripts/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_pcompress_base_silence_warning=1
cd "$here/build"
ctest --output-on-failure --timeout 1500 -j "$(nproc)" "$@"
# Then the sanitizer build of the suite and the fuzzers (README "Bad input, faults and
# robustness"); CMERA_SANITIZE=0 or CMERA_FUZZ_SECONDS=0 skips them.
[ "${CMERA_SANITIZE:-1}" = 0 ] || bash "$here/scripts/sanitize.sh"
[ "${CMERA_FUZZ_SECONDS:-60}" = 0 ] || bash "$here/scripts/fuzz.sh" "${CMERA_FUZZ_SECONDS:-60}"
