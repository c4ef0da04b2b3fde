// One exception type for every user-facing failure. A cmera::Error carries a message
// meant for the user (naming the file, key or value and what was expected) and the exit
// status the program ends with. Collective code raises it on *every* rank (see
// Comm::check), so all ranks leave MPI together instead of one rank aborting the job.
#pragma once
#include <exception>
#include <stdexcept>
#include <string>

namespace cmera {

enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 2,       // bad command line, config or input file
  kExitRuntime = 3,     // failure while running (numerical breakdown)
  kExitWrite = 74,      // an output file could not be written (full disk, quota, I/O error);
                        // its temporary is removed and the files already there are intact
                        // (74 is EX_IOERR of sysexits.h)
  kExitCheckpointed = 85,  // stopped early on request after writing a checkpoint
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, int code = kExitUsage)
      : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// The first exception thrown in the bodies of an OpenMP region, kept for the thread that
// runs on after it: an exception that leaves a region ends the process (std::terminate)
// without its message. Each body runs inside run(); rethrow() after the region.
class ThreadErrors {
 public:
  template <class F>
  void run(F&& body) noexcept {
    try {
      body();
    } catch (...) {
#pragma omp critical(cmera_thread_errors)
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::exception_ptr first_;
};

}  // namespace cmera
