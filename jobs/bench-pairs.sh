#!/usr/bin/env bash
# Cost of the multiscale pair terms (docs/design.md §3) against the windows alone: for each
# case, the same data and model trained with objective.pairs = false and = true, one rank,
# and the ratio of their seconds per iteration. `cmera train` reports s/iter with four
# decimals ("wrote ..., X s/iter)", main phase only), too coarse for the small
# windows-only cases (0.0002): there s/iter is the difference of the wall times of two
# runs, 2 and 2 + n iterations, over n (start-up, statistics pass and model write
# cancel). The runs of a case go back to back, so machine load shifts both alike; the
# ratio is the figure, not the seconds. Cases: chains of N = 4096 and 65536 with chi = 4
# (4 top sites), and chi = 2 chains whose top holds 4, 8, 16 and 24 sites (the largest top
# the config accepts: 2^24 entries), tied and untied; tied chi = 2 grids of critical 2D
# Ising configurations at L = 64 (depth 4) and L = 256 (depth 6), both with a 4 x 4 top
# (docs/design-grid.md §7; the L = 256 runs take about 3 minutes); then the OpenMP speedup 1 -> 2
# threads of an iteration with pairs on (N = 4096, chi = 4). Writes <outdir>/pairs.json;
# about 5 minutes on 2 cores. The 24-site tops run only with CMERA_BENCH_TOP24=1 (about 6
# minutes more: each run writes checkpoints of 671 MB, the 2^24 top with its Adam state,
# which costs more than the timed iterations themselves).
# Usage: jobs/bench-pairs.sh <cmera> <outdir>
set -euo pipefail
cmera=$(realpath "$1")
out=$2
mkdir -p "$out/data" "$out/logs"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PMIX_MCA_pcompress_base_silence_warning=1
cat >"$out/data/base.toml" <<'EOF'
[data]
path = "unset"
[model]
chi = [2, 2]
[train]
optimizer = "adam"
restarts = 1
restart_iterations = 1
checkpoint_every = 0
log_seconds = 1000
seed = 1
[output]
dir = "unset"
EOF

gen() {  # sites file
  [ -f "$2" ] || mpirun --oversubscribe -n 1 "$cmera" generate ising1d --sites "$1" --samples 500 \
    --corr 0.6 --seed 1 --output "$2" >/dev/null
}
# Wall seconds of one training run (its log keeps the trainer's s/iter): name threads data
# iterations -P overrides...
wall() {
  local name=$1 nt=$2 data=$3 iters=$4; shift 4
  local sets=()
  for o in "$@"; do sets+=(-P "$o"); done
  rm -rf "$out/data/$name"
  local t0 t1
  t0=$(date +%s.%N)
  OMP_NUM_THREADS=$nt mpirun --oversubscribe --bind-to none -n 1 "$cmera" train "$out/data/base.toml" \
    -P data.path="$data" -P output.dir="$out/data/$name" -P train.iterations="$iters" "${sets[@]}" \
    >"$out/logs/$name.log"
  t1=$(date +%s.%N)
  rm -rf "$out/data/$name"
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
# Seconds per iteration: name threads data n -P overrides.... The trainer's figure from a
# run of 2 + n iterations when it is at least 0.01 s (four decimals are then within 1%);
# below that the wall-time difference to a run of 2 iterations. (Large tops take the
# first branch: their 671 MB checkpoints make wall times too noisy to subtract.) The
# difference carries the spread of two process start-ups (a few tenths of a second), so
# the small cases run a thousand iterations or more: with 100, the 4- and 8-site tops'
# pair figure of about 1.5 ms moved by 2 ms between runs.
siter() {
  local name=$1 nt=$2 data=$3 n=$4; shift 4
  local a b reported
  b=$(wall "${name}_long" "$nt" "$data" $((2 + n)) "$@")
  reported=$(sed -n 's/^wrote .*, \([0-9.]*\) s\/iter)$/\1/p' "$out/logs/${name}_long.log")
  if awk -v r="$reported" 'BEGIN { exit !(r >= 0.01) }'; then
    echo "$reported"
    return
  fi
  a=$(wall "${name}_short" "$nt" "$data" 2 "$@")
  awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN { printf "%.6f", (b - a) / n }'
}

gen2d() {  # size file: critical 2D Ising configurations [200, size, size]
  [ -f "$2" ] || mpirun --oversubscribe -n 1 "$cmera" generate ising2d --size "$1" --samples 200 \
    --beta critical --seed 1 --output "$2" >/dev/null
}
cases=()
# name data windows-iterations pairs-iterations overrides
run_case() {
  local name=$1 data=$2 wi=$3 pi=$4; shift 4
  local w p
  w=$(siter "${name}_windows" 1 "$data" "$wi" objective.pairs=false "$@")
  p=$(siter "${name}_pairs" 1 "$data" "$pi" objective.pairs=true "$@")
  local ratio
  ratio=$(awk -v p="$p" -v w="$w" 'BEGIN { printf "%.3f", p / w }')
  echo "$name: windows $w s/iter, pairs $p s/iter, ratio $ratio"
  cases+=("\"$name\": {\"windows_s_per_iter\": $w, \"pairs_s_per_iter\": $p, \"pairs_over_windows\": $ratio}")
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for n in 128 192 4096 65536; do gen "$n" "$out/data/ising_$n.h5"; done
run_case chain_n4096_chi4 "$out/data/ising_4096.h5" 100 10 "model.chi=[2,4]" model.depth=10
run_case chain_n65536_chi4 "$out/data/ising_65536.h5" 3 3 "model.chi=[2,4]" model.depth=14
for tied in true false; do
  kind=$([ $tied = true ] && echo tied || echo untied)
  for top in 4 8 16; do  # depth 5, 4, 3 on N = 128
    run_case "top${top}_n128_chi2_$kind" "$out/data/ising_128.h5" $([ $top = 16 ] && echo 40 40 || echo 2000 1000) \
      "model.chi=[2,2]" model.depth=$((top == 4 ? 5 : top == 8 ? 4 : 3)) model.tied=$tied
  done
  # 24 top sites need N = 24 * 2^depth: N = 192, depth 3 (2^24 top entries).
  if [ "${CMERA_BENCH_TOP24:-0}" = 1 ]; then
    run_case "top24_n192_chi2_$kind" "$out/data/ising_192.h5" 2 2 "model.chi=[2,2]" model.depth=3 model.tied=$tied
  fi
done
gen2d 64 "$out/data/ising2d_64.h5"
gen2d 256 "$out/data/ising2d_256.h5"
run_case grid_L64_chi2_tied "$out/data/ising2d_64.h5" 3 3 "model.chi=[2,2]" model.depth=4
run_case grid_L256_chi2_tied "$out/data/ising2d_256.h5" 1 1 "model.chi=[2,2]" model.depth=6

data="$out/data/ising_4096.h5"
# 40 iterations (3 s at one thread): with 10, two runs on one machine and day gave 1.47 and 1.80.
t1=$(siter omp1 1 "$data" 40 "model.chi=[2,4]" model.depth=10)
t2=$(siter omp2 2 "$data" 40 "model.chi=[2,4]" model.depth=10)
speedup=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", a / b }')
echo "OpenMP 1 -> 2 threads, pairs on, N = 4096 chi = 4: $t1 -> $t2 s/iter, speedup $speedup"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
rm -f "$out"/data/ising_*.h5 "$out"/data/ising2d_*.h5

{
  echo "{"
  echo "  \"cases\": {"
  for ((k = 0; k < ${#cases[@]}; ++k)); do
    sep=$([ $k -lt $((${#cases[@]} - 1)) ] && echo , || echo)
    echo "    ${cases[$k]}$sep"
  done
  echo "  },"
  echo "  \"openmp_1_thread_s_per_iter\": $t1,"
  echo "  \"openmp_2_threads_s_per_iter\": $t2,"
  echo "  \"openmp_speedup_2_threads_pairs\": $speedup,"
  echo "  \"load_average_before\": \"$load_before\","
  echo "  \"load_average_after\": \"$load_after\""
  echo "}"
} >"$out/pairs.json"
echo "wrote $out/pairs.json"
