// A temporary directory shared by every rank of an MPI test: made by rank 0 under the
// system's temp directory, named after the tag and rank 0's pid, its name broadcast.
// scratch_dir() leaves removal to the caller (suite-wide directories); ScratchDir removes
// it when the fixture ends, after a barrier so that no rank still uses it.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include "cmera/comm.hpp"

namespace cmera::testing {

inline std::string scratch_dir(const Comm& comm, const std::string& tag) {
  std::string dir;
  if (comm.is_root()) {
    dir = (std::filesystem::temp_directory_path() /
           ("cmera-test-" + tag + "-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir);
  }
  comm.broadcast(dir);
  return dir;
}

class ScratchDir {
 public:
  ScratchDir(const Comm& comm, const std::string& tag)
      : comm_(comm), path_(scratch_dir(comm, tag)) {}
  ~ScratchDir() {
    comm_.barrier();
    if (comm_.is_root()) std::filesystem::remove_all(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  const Comm& comm_;
  std::string path_;
};

}  // namespace cmera::testing
