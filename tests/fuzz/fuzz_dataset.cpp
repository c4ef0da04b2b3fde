// libFuzzer target: the dataset validator. The input is written as a file and opened with
// DatasetReader (kind, rank, dtype, shape, alphabet attribute checks); a file that passes
// is read completely and its values checked by the statistics pass, as train does. Any
// input must end in success or cmera::Error. Large but valid shapes are skipped before
// the full read (the reader is collective and streams in chunks, so size is not a
// robustness question, only a fuzzing-speed one).
#include <cstdint>

#include "cmera/comm.hpp"
#include "cmera/error.hpp"
#include "cmera/io.hpp"
#include "cmera/statistics.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  cmera_fuzz::init_mpi(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const cmera::Comm self(MPI_COMM_SELF);
  const std::string& path = cmera_fuzz::write_input(data, size);
  try {
    const cmera::DatasetReader reader(self, path);
    const cmera::DatasetShape& s = reader.shape();
    if (s.sites > (1L << 20) / s.samples) return 0;
    const int alphabet = s.alphabet >= 2 ? s.alphabet : 2;
    cmera::count_window_stats(self, reader, alphabet, 0, s.sites, 64);
  } catch (const cmera::Error&) {
  }
  return 0;
}
