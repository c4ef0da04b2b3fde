#!/usr/bin/env bash
# Seconds of `cmera eval` (every r up to N/2, flow, scaling spectrum) at N = 65536,
# chi = 4, 2000 samples, on 2 ranks and on 1 rank (docs/design.md §6), and of a grid's eval
# (window figures, C(r) along x, y and the diagonal up to 128, flow, spectrum) at 256 x 256,
# tied chi = 2, depth 6, 2000 critical 2D Ising configurations, on 2 ranks
# (docs/design-grid.md §5-6; about a minute on 2 cores). The models are trained for a
# few window-only iterations: eval's cost does not depend on the tables' values, only on
# the geometry, so a short training is enough to time it. Writes <outdir>/eval.json
# {eval_seconds, eval_seconds_1rank, cpu seconds, grid: {...}} and keeps the data, the
# models and the eval outputs in <outdir>.
# Usage: jobs/bench-eval.sh <cmera> <outdir>
set -euo pipefail
cmera=$(realpath "$1")
out=$2
mkdir -p "$out"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export PMIX_MCA_pcompress_base_silence_warning=1
n=65536 samples=2000 depth=14
data="$out/ising_$n.h5"
[ -f "$data" ] || mpirun --oversubscribe -n 2 "$cmera" generate ising1d --sites $n \
  --samples $samples --corr 0.6 --seed 1 --output "$data" >/dev/null
model="$out/run/model.h5"
if [ ! -f "$model" ]; then
  rm -rf "$out/run"
  mpirun --oversubscribe -n 2 "$cmera" train "$here/inputs/ising1d.toml" -P data.path="$data" \
    -P "model.chi=[2,4]" -P model.depth=$depth -P model.tied=true -P train.iterations=3 \
    -P train.checkpoint_every=0 -P train.restarts=1 -P train.restart_iterations=0 \
    -P objective.pairs=false -P output.dir="$out/run" >"$out/train.log"
fi
# One eval run (start-up and reading included), JSON kept: "wall cpu" seconds, cpu being
# user + system time of all ranks (on a shared machine wall-clock includes waiting for a
# core; cpu / ranks is what the run costs when it has the cores to itself).
time_eval() {  # ranks model data tag
  /usr/bin/time -o "$out/time_$4.txt" -f "%e %U %S" \
    mpirun --oversubscribe -n "$1" "$cmera" eval "$2" --data "$3" --json >"$out/eval_$4.json"
  awk '{ printf "%.3f %.3f", $1, $2 + $3 }' "$out/time_$4.txt"
}
read -r s2 c2 <<<"$(time_eval 2 "$model" "$data" 2)"
read -r s1 c1 <<<"$(time_eval 1 "$model" "$data" 1)"

size=256 grid_depth=6
grid_data="$out/ising2d_$size.h5"
[ -f "$grid_data" ] || mpirun --oversubscribe -n 2 "$cmera" generate ising2d --size $size \
  --beta critical --samples $samples --seed 1 --output "$grid_data" >/dev/null
grid_model="$out/grid_run/model.h5"
# chi = 2 everywhere, the intermediate grid included (the input file widens it for quality).
# Windows only, as for the chain (-P objective.pairs=false drops the input file's pair
# distances): the eval's cost does not depend on how the model was trained.
if [ ! -f "$grid_model" ]; then
  rm -rf "$out/grid_run"
  mpirun --oversubscribe -n 2 "$cmera" train "$here/inputs/critical2d.toml" -P data.path="$grid_data" \
    -P "model.chi=[$(printf '2,%.0s' $(seq $grid_depth))2]" -P "model.intermediate_chi=[2]" \
    -P train.iterations=3 -P objective.pairs=false \
    -P train.checkpoint_every=0 -P train.restarts=1 -P train.restart_iterations=0 \
    -P output.dir="$out/grid_run" >"$out/grid_train.log"
fi
read -r sg cg <<<"$(time_eval 2 "$grid_model" "$grid_data" grid_2)"

load=$(cut -d' ' -f1-3 /proc/loadavg)
cat >"$out/eval.json" <<EOF
{"sites": $n, "samples": $samples, "chi": 4, "depth": $depth, "max_distance": $((n / 2)),
 "eval_seconds": $s2, "ranks": 2, "eval_seconds_1rank": $s1,
 "eval_cpu_seconds": $c2, "eval_cpu_seconds_1rank": $c1,
 "grid": {"lx": $size, "ly": $size, "samples": $samples, "chi": 2, "depth": $grid_depth,
          "max_distance": $((size / 2)), "ranks": 2, "eval_seconds": $sg, "eval_cpu_seconds": $cg},
 "cores": $(getconf _NPROCESSORS_ONLN), "load_average": "$load"}
EOF
cat "$out/eval.json"
