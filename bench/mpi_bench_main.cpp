// main() of every benchmark program: MPI must be initialized before cmera_core touches
// HDF5 (always opened through MPI-IO) or a communicator. The programs measure one rank
// (per-rank rates); multi-rank behaviour is measured on the real program by
// jobs/bench-local.sh, so no cross-rank reporting is needed here.
#include <benchmark/benchmark.h>
#include <mpi.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}
