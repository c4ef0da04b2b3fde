#!/usr/bin/env bash
# Seconds per training iteration of the core sweep (issue: N = 4096 and 65536, chi = 2
# and 4, 1 and 2 ranks), with and without the multiscale pair terms, then seconds of
# `cmera eval` at the default R = N/2 (exact model C(r) for every r, data C(r), KL, flow)
# on the chi = 4 models, at 1 and 2 ranks (its cost does not depend on the tables'
# values). Writes bench-results/timing-core.md and timing-eval.md.
# Usage: jobs/timing-core.sh [iterations]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export PMIX_MCA_pcompress_base_silence_warning=1
iters=${1:-20}
out=bench-results/timing-core; mkdir -p "$out"
cmera=build/bin/cmera
table=bench-results/timing-core.md
echo "| N | chi | ranks | pairs | s/iter |" > "$table"; echo "|---|---|---|---|---|" >> "$table"
for n in 4096 65536; do
  samples=$(( n == 4096 ? 20000 : 2000 ))
  data="$out/ising_$n.h5"
  [ -f "$data" ] || mpirun --oversubscribe -n 2 $cmera generate ising1d --sites $n --samples $samples --corr 0.6 --output "$data" >/dev/null
  depth=$(( n == 4096 ? 10 : 14 ))
  for chi in 2 4; do
    for np in 1 2; do
      for pairs in false true; do
        log="$out/train_${n}_${chi}_${np}_${pairs}.log"
        # Pair cones at chi = 4 cost ~10 ms each: time them over fewer iterations.
        n_iters=$iters; [ "$pairs" = true ] && [ "$chi" = 4 ] && n_iters=3
        rm -rf "$out/run_${n}_${chi}_${np}_${pairs}"  # a new measurement, not a continuation
        mpirun --oversubscribe -n $np $cmera train inputs/ising1d.toml -P data.path="$data" \
          -P "model.chi=[2,$chi]" -P model.depth=$depth -P train.iterations=$n_iters \
          -P train.checkpoint_every=0 \
          -P train.restarts=1 -P train.restart_iterations=0 -P objective.pairs=$pairs \
          -P output.dir="$out/run_${n}_${chi}_${np}_${pairs}" > "$log"
        s=$(grep -o '[0-9.]* s/iter)' "$log" | tail -1 | cut -d' ' -f1)
        echo "| $n | $chi | $np | $pairs | $s |" | tee -a "$table"
      done
    done
  done
done
eval_table=bench-results/timing-eval.md
echo "| N | samples | R | ranks | eval seconds |" > "$eval_table"; echo "|---|---|---|---|---|" >> "$eval_table"
for n in 4096 65536; do
  for np in 1 2; do
    start=$(date +%s%N)
    mpirun --oversubscribe -n $np $cmera eval "$out/run_${n}_4_2_true/model.h5" --data "$out/ising_$n.h5" \
      --json > "$out/eval_${n}_$np.json"
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    samples=$(( n == 4096 ? 20000 : 2000 ))
    awk -v n=$n -v s=$samples -v np=$np -v ms=$ms \
      'BEGIN { printf "| %d | %d | %d | %d | %.1f |\n", n, s, n / 2, np, ms / 1000 }' | tee -a "$eval_table"
  done
done
echo "tables: $table $eval_table"
