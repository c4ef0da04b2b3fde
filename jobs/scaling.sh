#!/usr/bin/env bash
# Strong and weak scaling sweep as Slurm jobs, one command:
#   jobs/scaling.sh [--sites N] [--iterations K] [--samples S] [--out DIR] RANKS...
# submits, for every rank count P, a strong-scaling job (N sites) and a weak-scaling job
# (N*P sites), each generating its dataset and training a tied chi = 2 MERA whose depth
# leaves 4 top sites. Logs land in DIR/strong-P.log and DIR/weak-P.log; turn them into a
# table and plot with `/usr/bin/python3 postprocess/scaling.py DIR`. Prints the job ids.
# Trade-off: each job generates its own data (a few seconds) so that jobs are independent
# and the sweep needs no shared preparation step; the timing read is training's s/iter,
# which excludes generation, the statistics pass and checkpoint writes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmera="${CMERA:-$here/build/bin/cmera}"

if [ "${1:-}" = "--run" ]; then  # inside the job: --run MODE P N K S DIR
  mode=$2 p=$3 n=$4 k=$5 s=$6 out=$7
  sites=$n; [ "$mode" = weak ] && sites=$((n * p))
  depth=$(/usr/bin/python3 -c "import math; print(int(math.log2($sites // 4)))")
  launch=(srun --mpi=pmix)
  [ "${CMERA_LAUNCHER:-srun}" = mpirun ] && launch=(mpirun --oversubscribe -n "$p")
  run="$out/$mode-$p"
  echo "scaling: mode $mode ranks $p sites $sites depth $depth iterations $k"
  "${launch[@]}" "$cmera" generate ising1d --sites "$sites" --samples "$s" --corr 0.6 --seed 1 \
    --output "$run.h5"
  printf '[data]\npath = "%s.h5"\n[model]\nchi = [2, 2]\ndepth = %s\n[train]\niterations = %s\nrestarts = 1\nrestart_iterations = 0\ncheckpoint_every = 0\nlog_seconds = 1e9\n[output]\ndir = "%s"\n' \
    "$run" "$depth" "$k" "$run.out" > "$run.toml"
  OMP_NUM_THREADS=1 "${launch[@]}" "$cmera" train "$run.toml"
  rm -f "$run.h5"
  exit 0
fi

sites=256 iterations=40 samples=20000 out=scaling-out
while [ $# -gt 0 ]; do
  case "$1" in
    --sites) sites=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--sites N] [--iterations K] [--samples S] [--out DIR] RANKS..." >&2; exit 2; }
mkdir -p "$out"; out="$(cd "$out" && pwd)"
for p in "$@"; do
  for mode in strong weak; do
    sbatch --parsable --job-name="cmera-$mode-$p" --ntasks="$p" --output="$out/$mode-$p.log" \
      --export=ALL,CMERA="$cmera" "$here/jobs/scaling.sh" --run "$mode" "$p" "$sites" \
      "$iterations" "$samples" "$out"
  done
done
