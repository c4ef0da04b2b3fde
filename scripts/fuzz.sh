#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan, coverage on
# cmera_core) in build-fuzz/ and runs each for SECONDS (default 60) from its seed corpus
# (tests/fuzz/corpus_*; new inputs go to build-fuzz/corpus-<target>, so the committed seeds
# stay small). A crash, sanitizer report, leak or timeout fails the script and leaves the
# reproducer in build-fuzz/artifacts/. Trade-off: one process per target (no -jobs), so a
# 2-core CI machine can still run the rest of the suite next to it.
# Usage: scripts/fuzz.sh [SECONDS] [target...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
seconds="${1:-60}"; shift || true
targets=("$@"); ((${#targets[@]})) || targets=(fuzz_config fuzz_dataset fuzz_model)
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz: installing clang and libclang-rt-dev"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends clang libclang-rt-dev
fi
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# Open MPI's wrappers are not used: CMake's FindMPI gives clang the flags directly.
mkdir -p build-fuzz
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMERA_FUZZ=ON \
  -DBUILD_TESTING=OFF -DCMERA_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_CXX_FLAGS="$flags" >build-fuzz/configure.log 2>&1 ||
  { cat build-fuzz/configure.log; exit 1; }
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self
export PMIX_MCA_pcompress_base_silence_warning=1
# As in scripts/sanitize.sh: Open MPI components stay loaded, malloc stacks are unwound
# fully (Open MPI leaks name their library for tests/sanitizers/lsan.supp), and the
# dynamic-TLS interceptor that crashes the leak tracer is off.
export OMPI_MCA_mca_base_component_disable_dlclose=1
# allocator_may_return_null: a huge request returns NULL as glibc's malloc would (HDF5
# checks for it when a damaged header claims terabytes); cmera's own std::vector would
# still throw bad_alloc, which escapes the target and is reported.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:fast_unwind_on_malloc=0:allocator_may_return_null=1:intercept_tls_get_addr=0"
export LSAN_OPTIONS="suppressions=$here/tests/sanitizers/lsan.supp:print_suppressions=0"
mkdir -p build-fuzz/artifacts
for t in "${targets[@]}"; do
  corpus="build-fuzz/corpus-$t"
  mkdir -p "$corpus"
  echo "fuzz: $t for $seconds s"
  # -rss_limit_mb also bounds single allocations (malloc_limit_mb defaults to it): a file
  # that makes a reader allocate far beyond its own size is a bug, reported like a crash.
  rc=0
  build-fuzz/bin/"$t" "$corpus" "tests/fuzz/corpus_${t#fuzz_}" -max_total_time="$seconds" \
    -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/"$t"- > "build-fuzz/$t.log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb)' \
    "build-fuzz/$t.log" || true
  [ "$rc" -eq 0 ] || { tail -n 60 "build-fuzz/$t.log"; echo "fuzz: $t FAILED"; exit 1; }
done
echo "fuzz: all targets ran $seconds s without a finding"
