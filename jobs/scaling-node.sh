#!/usr/bin/env bash
# Strong and weak scaling of training on one many-core node without Slurm (a workstation
# or a lent node): for every rank count P (default 1 2 4 8 16), a weak-scaling run of
# SITES_PER_RANK * P sites and a strong-scaling run of SITES_PER_RANK * max(P) sites, each
# with the pair terms off (windows only) and on (the default objective); tied chi = 2
# chains of critical-like Ising data (corr 0.6) whose depth leaves 4 top sites. Datasets
# are generated once per size, then every run trains ITERATIONS iterations with one thread
# per rank bound to a core, and its s/iter (main phase, from the trainer's last line)
# lands in OUT/scaling.tsv; OUT/scaling.json gets the efficiencies (weak t1 / tP, strong
# t1 / (P tP)) and the machine. Trade-off: mpirun instead of Slurm (jobs/scaling.sh is the
# batch version), so one script runs the whole sweep in minutes on a node lent for a
# quarter of an hour, at the price of no queue and no requeue.
# Usage: jobs/scaling-node.sh OUT   (env: RANKS, SITES_PER_RANK (65536), ITERATIONS (10),
#        SAMPLES (200), CMERA (build/bin/cmera), PYTHON (/usr/bin/python3; any Python 3))
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
: > "$out/scaling.tsv"
run() {  # mode ranks sites pairs
  local mode=$1 p=$2 n=$3 pairs=$4 d depth name
  d=$(data "$n")
  depth=0; while [ $((4 << depth)) -lt "$n" ]; do depth=$((depth + 1)); done  # 4 top sites
  name="$mode-$p-pairs_$pairs"
  printf '[data]\npath = "%s"\n[model]\nchi = [2, 2]\ndepth = %s\n[objective]\npairs = %s\n[train]\niterations = %s\nrestarts = 1\nrestart_iterations = 0\ncheckpoint_every = 0\nlog_seconds = 1e9\n[output]\ndir = "%s"\n' \
    "$d" "$depth" "$pairs" "$iterations" "$out/$name.out" > "$out/$name.toml"
  rm -rf "$out/$name.out"
  OMP_NUM_THREADS=1 mpi "$p" "$cmera" train "$out/$name.toml" > "$out/$name.log" 2>&1
  local s
  s=$(sed -n 's/^wrote .*, \([0-9.]*\) s\/iter)$/\1/p' "$out/$name.log")
  rm -rf "$out/$name.out"
  printf '%s\t%s\t%s\t%s\t%s\n' "$mode" "$pairs" "$p" "$n" "$s" | tee -a "$out/scaling.tsv"
}
for pairs in false true; do
  for p in "${ranks[@]}"; do
    run weak "$p" $((base * p)) "$pairs"
    run strong "$p" $((base * maxp)) "$pairs"
  done
done
rm -f "$out"/d*.h5
${PYTHON:-/usr/bin/python3} - "$out" <<'PY'
import json, platform, subprocess, sys
out = sys.argv[1]
rows = [l.split("\t") for l in open(f"{out}/scaling.tsv").read().split("\n") if l]
t = {(m, pr == "true", int(p)): float(s) for m, pr, p, n, s in rows}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {"machine": f"{cpu}, {subprocess.getoutput('nproc')} cores", "seconds_per_iteration": {}}
for pairs in (False, True):
    key = "pairs" if pairs else "windows_only"
    ps = sorted(p for (m, pr, p) in t if m == "weak" and pr == pairs)
    res["seconds_per_iteration"][key] = {m: {p: t[(m, pairs, p)] for p in ps} for m in ("weak", "strong")}
    res[f"weak_efficiency_{key}"] = {p: t[("weak", pairs, 1)] / t[("weak", pairs, p)] for p in ps}
    res[f"strong_efficiency_{key}"] = {p: t[("strong", pairs, 1)] / (p * t[("strong", pairs, p)]) for p in ps}
json.dump(res, open(f"{out}/scaling.json", "w"), indent=1)
for k, v in res.items():
    if "efficiency" in k:
        print(k, " ".join(f"{p}:{e:.2f}" for p, e in v.items()))
PY
