// libFuzzer target: the model and checkpoint readers. The input is written as a file and
// read with read_model (any model or checkpoint) and read_checkpoint against the config of
// the seed checkpoint (tests/fuzz/corpus_model/), so mutations of a valid checkpoint get
// past the config check into the table reads. Any input must end in success or
// cmera::Error: never a crash, an allocation the file cannot justify, or another exception.
#include <cstdint>

#include "cmera/checkpoint.hpp"
#include "cmera/comm.hpp"
#include "cmera/config.hpp"
#include "cmera/error.hpp"
#include "cmera/io.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  cmera_fuzz::init_mpi(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const cmera::Comm self(MPI_COMM_SELF);
  // The seed checkpoint's run (tests/fuzz/make_corpus.sh): N = 16, 400 samples.
  static const cmera::Config cfg = cmera::parse_config_text(
      "[data]\npath = \"d.h5\"\n[model]\nchi = [2, 2, 2]\n[train]\niterations = 4\n"
      "restarts = 1\ncheckpoint_every = 2\n",
      "fuzz", {});
  const std::string& path = cmera_fuzz::write_input(data, size);
  try {
    cmera::read_model(self, path);
  } catch (const cmera::Error&) {
  }
  try {
    cmera::read_checkpoint(self, path, cfg, 400);
  } catch (const cmera::Error&) {
  }
  return 0;
}
