#!/usr/bin/env bash
# Accuracy of default training on the periodic 1D Ising chain: for t in {0.3, 0.6, 0.8}
# generate 200000 exact samples of N sites, train a tied chi = 2 MERA with default
# settings on 2 ranks, and report KL per window and max_{r<=16} |C_model(r) - t^r|.
# Usage: jobs/ising1d-accuracy.sh [N]   (default 128). Table: bench-results/ising1d-accuracy.md
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export PMIX_MCA_pcompress_base_silence_warning=1
n=${1:-128}
out=bench-results/ising1d-accuracy; mkdir -p "$out"
depth=0; while (( (n >> (depth + 1)) >= 4 )); do depth=$((depth + 1)); done
table=bench-results/ising1d-accuracy.md
echo "| N | t | KL/window | max r<=16 abs(C(r)-t^r) | train s |" > "$table"
echo "|---|---|---|---|---|" >> "$table"
for t in 0.3 0.6 0.8; do
  mpirun --oversubscribe -n 2 build/bin/cmera generate ising1d --sites $n --samples 200000 \
    --corr $t --seed 5 --output "$out/d_$t.h5" > /dev/null
  start=$(date +%s%N)
  rm -rf "$out/run_$t"  # a new measurement, not a continuation
  mpirun --oversubscribe -n 2 build/bin/cmera train inputs/ising1d.toml -P data.path="$out/d_$t.h5" \
    -P "model.chi=[2,2]" -P model.depth=$depth -P output.dir="$out/run_$t" > "$out/train_$t.log"
  secs=$(( ($(date +%s%N) - start) / 1000000 ))  # milliseconds
  mpirun --oversubscribe -n 2 build/bin/cmera eval "$out/run_$t/model.h5" --data "$out/d_$t.h5" \
    --max-distance 16 --json > "$out/eval_$t.json"
  /usr/bin/python3 - "$out/eval_$t.json" "$t" "$n" "$secs" >> "$table" <<'PY'
import json, sys
e = json.load(open(sys.argv[1])); t = float(sys.argv[2])
err = max(abs(c - t ** r) for r, c in zip(e["corr"]["r"], e["corr"]["model"]))
print(f"| {sys.argv[3]} | {t} | {e['kl_per_window']:.3e} | {err:.3e} | {float(sys.argv[4]) / 1000:.1f} |")
PY
done
cat "$table"
