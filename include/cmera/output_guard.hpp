// What cmera may write where. cmera writes over, renames or deletes only files it wrote
// itself for the same configuration, never one of the command's own inputs, and only one
// training works in an output directory at a time. Every check here runs before the
// command does any work, so a refusal costs nothing and changes nothing.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/io.hpp"

namespace cmera {

// Collective: creates `dir` (rank 0) if needed and checks that files can be created in it.
void prepare_output_dir(const Comm& comm, const std::string& dir);

// An exclusive lock on an output directory, held by rank 0 for the lifetime of the object:
// flock(2) on `<dir>/.cmera.lock`, which the kernel releases when the process ends however
// it ends, so a crashed run never leaves the directory locked. The lock file holds the
// holder's host and pid, for the refusal message; it is created once and never deleted.
class OutputDirLock {
 public:
  // Collective; throws cmera::Error (exit 2) naming the holder if another run has the lock.
  OutputDirLock(const Comm& comm, const std::string& dir);
  ~OutputDirLock();
  OutputDirLock(const OutputDirLock&) = delete;
  OutputDirLock& operator=(const OutputDirLock&) = delete;

 private:
  int fd_ = -1;
};

// How an existing file differs from what the command would write ("" = same
// configuration, so the command may replace it).
using ConfigurationDifference = std::function<std::string(const FileIdentity&)>;

// For datasets: the same configuration is the same generator parameters (the provenance
// attribute "parameters"), so rerunning a command may replace its own output.
ConfigurationDifference same_parameters(const std::string& parameters);

// Collective. Refuses (cmera::Error, exit 2, naming `path`) unless `path` is none of
// `inputs` (same file, by device and inode) and either does not exist or is a regular file
// of `kind` that cmera wrote and `difference` finds of the same configuration.
void require_replaceable(const Comm& comm, const std::string& path, const std::string& kind,
                         const std::vector<std::string>& inputs,
                         const ConfigurationDifference& difference);

}  // namespace cmera
