# Sourced by the jobs/ scripts that run in phases (critical.sh, critical2d.sh, mnist.sh):
# the environment every mpirun there needs (root, one OpenMP thread per rank unless the
# caller set one) and `stamp PHASE`, which appends the phase's wall seconds and the total
# so far to $out/timing.txt (created empty here). Requires $out.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export PMIX_MCA_pcompress_base_silence_warning=1
mkdir -p "$out"
t0=$(date +%s); t_phase=$t0
stamp() {
  local now; now=$(date +%s)
  echo "$1: $((now - t_phase)) s (total $((now - t0)) s)" | tee -a "$out/timing.txt"
  t_phase=$now
}
: > "$out/timing.txt"
