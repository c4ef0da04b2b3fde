#!/usr/bin/env bash
# Strong and weak scaling of training on one many-core node without Slurm (a workstation
# or a lent node): for every rank count P (default 1 2 4 8 16), a weak-scaling run of
# SITES_PER_RANK * P sites and a strong-scaling run of SITES_PER_RANK * max(P) sites, each
# with the pair terms off (windows only) and on (the default objective); tied chi = 2
# chains of critical-like Ising data (corr 0.6) whose depth leaves 4 top sites. Datasets
# are generated once per size, then every run trains ITERATIONS iterations with one thread
# per rank bound to a core. Each run's log goes to OUT/<objective>/<mode>-<P>.log in the
# layout jobs/scaling.sh writes, so postprocess/scaling.py makes the efficiency table
# (weak t1 / tP, strong t1 / (P tP)) and plot of each objective (OUT/windows_only/,
# OUT/pairs/: scaling.md, .csv, .png); OUT/machine.txt names the machine. Trade-off:
# mpirun instead of Slurm (jobs/scaling.sh is the batch version), so one script runs the
# whole sweep in minutes on a node lent for a quarter of an hour, at the price of no queue
# and no requeue.
# Usage: jobs/scaling-node.sh OUT   (env: RANKS, SITES_PER_RANK (65536), ITERATIONS (10),
#        SAMPLES (200), CMERA (build/bin/cmera), PYTHON (/usr/bin/python3, with matplotlib))
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmera="${CMERA:-$here/build/bin/cmera}"
out="${1:?usage: jobs/scaling-node.sh OUT}"
ranks=(${RANKS:-1 2 4 8 16})
base=${SITES_PER_RANK:-65536}
iterations=${ITERATIONS:-10}
samples=${SAMPLES:-200}
maxp=${ranks[-1]}
mkdir -p "$out"; out="$(cd "$out" && pwd)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PMIX_MCA_pcompress_base_silence_warning=1
mpi() { local p=$1; shift; mpirun --oversubscribe --bind-to core -n "$p" "$@"; }

declare -A made=()
data() {  # sites -> dataset path (generated once)
  local n=$1 f="$out/d$1.h5"
  if [ -z "${made[$n]:-}" ]; then
    rm -f "$f"
    OMP_NUM_THREADS=1 mpi "$maxp" "$cmera" generate ising1d --sites "$n" --samples "$samples" \
      --corr 0.6 --seed 1 --output "$f" >/dev/null
    made[$n]=1
  fi
  echo "$f"
}
run() {  # mode ranks sites pairs
  local mode=$1 p=$2 n=$3 pairs=$4 d depth dir
  d=$(data "$n")
  depth=0; while [ $((4 << depth)) -lt "$n" ]; do depth=$((depth + 1)); done  # 4 top sites
  dir="$out/$([ "$pairs" = true ] && echo pairs || echo windows_only)"
  mkdir -p "$dir"
  printf '[data]\npath = "%s"\n[model]\nchi = [2, 2]\ndepth = %s\n[objective]\npairs = %s\n[train]\niterations = %s\nrestarts = 1\nrestart_iterations = 0\ncheckpoint_every = 0\nlog_seconds = 1e9\n[output]\ndir = "%s"\n' \
    "$d" "$depth" "$pairs" "$iterations" "$dir/$mode-$p.out" > "$dir/$mode-$p.toml"
  rm -rf "$dir/$mode-$p.out"
  {
    echo "scaling: mode $mode ranks $p sites $n depth $depth iterations $iterations"
    OMP_NUM_THREADS=1 mpi "$p" "$cmera" train "$dir/$mode-$p.toml" 2>&1
  } > "$dir/$mode-$p.log"
  rm -rf "$dir/$mode-$p.out"
  echo "$mode pairs=$pairs ranks $p sites $n: $(tail -n 1 "$dir/$mode-$p.log")"
}
for pairs in false true; do
  for p in "${ranks[@]}"; do
    run weak "$p" $((base * p)) "$pairs"
    run strong "$p" $((base * maxp)) "$pairs"
  done
done
rm -f "$out"/d*.h5
echo "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores" > "$out/machine.txt"
for objective in windows_only pairs; do
  echo "$objective:"
  ${PYTHON:-/usr/bin/python3} "$here/postprocess/scaling.py" "$out/$objective"
done
