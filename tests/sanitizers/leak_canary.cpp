// The sanitizer suite's own check (scripts/sanitize.sh): a program that leaks a buffer of
// its own between MPI_Init and MPI_Finalize must be reported, with this file in the
// stack. The suppressions (lsan.supp) and the preloaded keep_loaded.c hide what Open MPI,
// PMIx, hwloc and HDF5 leak; this proves they hide nothing of ours. Built and run only in
// a sanitizer build (tests/CMakeLists.txt).
#include <mpi.h>

#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  char* lost = static_cast<char*>(std::malloc(100));
  std::memset(lost, 1, 100);
  lost = nullptr;  // the only pointer to the buffer is gone: a direct leak at exit
  MPI_Finalize();
  return 0;
}
