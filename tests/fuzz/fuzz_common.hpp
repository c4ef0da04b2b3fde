// Shared by the libFuzzer targets: MPI initialised once (libFuzzer owns main, so
// LLVMFuzzerInitialize does it) and each input written to a per-process file that the
// HDF5 readers open through MPI-IO on MPI_COMM_SELF, exactly as the program opens files.
// Trade-off: a real file per input (tmpfs when available) costs a few microseconds but
// exercises the same open path as users, including H5Fis_hdf5 and the MPI-IO driver.
#pragma once
#include <mpi.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace cmera_fuzz {

inline void init_mpi(int* argc, char*** argv) {
  int done = 0;
  MPI_Initialized(&done);
  if (!done) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  }
}

// A per-process scratch file path (tmpfs when available), reused for every input.
inline const std::string& scratch_path() {
  static const std::string path =
      (std::filesystem::is_directory("/dev/shm") ? std::string("/dev/shm") : std::string("/tmp")) +
      "/cmera-fuzz-" + std::to_string(getpid()) + ".h5";
  return path;
}

// The input as the scratch file's bytes.
inline const std::string& write_input(const std::uint8_t* data, std::size_t size) {
  const std::string& path = scratch_path();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace cmera_fuzz
