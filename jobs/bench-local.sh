#!/usr/bin/env bash
# One command for every performance number in the README: builds (scripts/setup.sh),
# runs the Google Benchmark programs (bench/), the real program at several data sizes,
# thread and rank counts, and the peers comparison (postprocess/peers.py), then
# postprocess/bench_report.py writes bench-results/summary.json, table.md and plots.
# Sized for a 2-core machine in about 45 minutes: the scaling lattice is N = 2^20 with
# few samples and 2 timed iterations (iteration cost does not depend on samples, item 3
# shows it), and peers get small grids. Everything lands in bench-results/ (git-ignored).
# Usage: jobs/bench-local.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
CMERA_EXTRA_PACKAGES="python3-pomegranate python3-sklearn python3-torch time" "$here/scripts/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PMIX_MCA_pcompress_base_silence_warning=1
out=bench-results
rm -rf "$out" && mkdir -p "$out/data" "$out/logs"
cmera=build/bin/cmera
start=$(date +%s)

echo "bench: 1-2 statistics pass and cone sweep (Google Benchmark)"
CMERA_BENCH_DIR="$out/data" OMP_NUM_THREADS=1 build/bin/bench_stats --benchmark_min_time=1 \
  --benchmark_out="$out/stats.json" --benchmark_out_format=json
rm -f "$out/data/bench_stats_data.h5" "$out/data/bench_stats_grid.h5"
build/bin/bench_sweep --benchmark_min_time=1 --benchmark_out="$out/sweep.json" \
  --benchmark_out_format=json

# One training run; appends "name ranks threads sites samples stats_s s_per_iter" to runs.tsv.
train() {  # name ranks threads data extra -P overrides...
  local name=$1 np=$2 nt=$3 data=$4; shift 4
  local sets=()
  for o in "$@"; do sets+=(-P "$o"); done
  # mpirun binds each rank to one core: threaded runs must be unbound to use a second one.
  local bind=()
  ((nt > 1)) && bind=(--bind-to none)
  OMP_NUM_THREADS=$nt mpirun --oversubscribe "${bind[@]}" -n "$np" $cmera train inputs/ising1d.toml \
    -P data.path="$data" -P output.dir="$out/data/$name" -P train.log_seconds=1000 -P train.checkpoint_every=0 "${sets[@]}" \
    >"$out/logs/$name.log"
  local stats sits n s
  stats=$(sed -n 's/^statistics pass: \([0-9]*\) samples x \([0-9]*\) sites.* in \([0-9.]*\) s on .*/\1 \2 \3/p' "$out/logs/$name.log")
  sits=$(sed -n 's/^wrote .*, \([0-9.]*\) s\/iter)$/\1/p' "$out/logs/$name.log")
  read -r s n stats <<<"$stats"
  echo "$name $np $nt $n $s $stats $sits" | tee -a "$out/runs.tsv"
}
gen() {  # sites samples file
  mpirun --oversubscribe -n 2 $cmera generate ising1d --sites "$1" --samples "$2" --corr 0.6 \
    --seed 1 --output "$3" >/dev/null
}
echo "name ranks threads sites samples stats_s s_per_iter" >"$out/runs.tsv"

echo "bench: 3 seconds per iteration vs samples (N = 128, chi = 2, pair terms on)"
for s in 1000 10000 100000 1000000; do
  gen 128 "$s" "$out/data/samples_$s.h5"
  train "samples_$s" 2 1 "$out/data/samples_$s.h5" train.iterations=60 train.restarts=1
  rm -f "$out/data/samples_$s.h5"
done

echo "bench: 4-5 threads and ranks (chi = 4, depth 18, windows only, 2 timed iterations)"
gen $((1 << 19)) 128 "$out/data/n19.h5"
gen $((1 << 20)) 128 "$out/data/n20.h5"
scale=(model.chi=[2,4] objective.pairs=false train.restarts=1 train.restart_iterations=1
       train.iterations=3)
train weak_np1 1 1 "$out/data/n19.h5" "${scale[@]}" model.depth=17
train strong_np1 1 1 "$out/data/n20.h5" "${scale[@]}" model.depth=18
train np2 2 1 "$out/data/n20.h5" "${scale[@]}" model.depth=18
train omp2_np1 1 2 "$out/data/n20.h5" "${scale[@]}" model.depth=18
rm -f "$out/data/n19.h5" "$out/data/n20.h5"

echo "bench: 6 pair terms over windows (chains, tops of 4-16 sites), OpenMP with pairs on"
bash jobs/bench-pairs.sh $cmera "$out/pairs" >"$out/logs/pairs.log"
echo "bench: 7 cmera eval at N = 65536, chi = 4, and on a 256 x 256 grid, 2000 samples (all r, flow, spectrum)"
bash jobs/bench-eval.sh $cmera "$out/eval" >"$out/logs/eval.log"
rm -f "$out"/eval/*.h5 "$out"/eval/run/*.h5 "$out"/eval/grid_run/*.h5
echo "bench: 8 grid window kernels (3 x 3 windows, 24 x 24 grid) against the chain's"
OMP_NUM_THREADS=1 build/bin/bench_grid --benchmark_min_time=1 --benchmark_out="$out/grid.json" \
  --benchmark_out_format=json >"$out/logs/grid.log"

echo "bench: 9 peers (HMM, RBM, autoregressive network) on the 1D Ising chain and critical 2D Ising rows"
OMP_NUM_THREADS=1 /usr/bin/python3 postprocess/peers.py --cmera $cmera \
  --config inputs/ising1d.toml --out "$out/peers"

/usr/bin/python3 postprocess/bench_report.py "$out" --seconds $(($(date +%s) - start))
