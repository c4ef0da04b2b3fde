// Output ownership and the output-directory lock (output_guard.hpp). Decisions are rank
// 0's (it alone looks at the filesystem) and reach the other ranks through Comm::check, so
// every rank refuses together. Trade-off: recognising cmera's own files means verifying
// their integrity block, a full read of each existing output checked; it happens once per
// command, before any work.
#include "cmera/output_guard.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>

#include "cmera/error.hpp"

namespace cmera {

namespace fs = std::filesystem;

void prepare_output_dir(const Comm& comm, const std::string& dir) {
  std::string problem;
  if (comm.is_root()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir)) {
      problem = fmt::format("output.dir '{}' is not a directory and cannot be created{}", dir,
                            ec ? " (" + ec.message() + ")" : "");
    } else {
      // Probe with a real file: access(2) says yes to root even where writes fail.
      const std::string probe = (fs::path(dir) / fmt::format(".cmera-probe.{}", getpid())).string();
      const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
      if (fd < 0)
        problem = fmt::format("output.dir '{}' is not writable ({})", dir, std::strerror(errno));
      else
        ::close(fd), ::unlink(probe.c_str());
    }
  }
  comm.broadcast(problem);
  comm.check(problem.empty(), problem);
}

namespace {

constexpr const char* kLockName = ".cmera.lock";
constexpr const char* kLockHeader = "cmera training lock: ";

std::string host_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

}  // namespace

OutputDirLock::OutputDirLock(const Comm& comm, const std::string& dir) {
  std::string problem;
  if (comm.is_root()) {
    const std::string path = (fs::path(dir) / kLockName).string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      problem = fmt::format("cannot open the lock file {}: {}", path, std::strerror(errno));
    } else if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char holder[256] = {};
      const ssize_t got = ::pread(fd_, holder, sizeof holder - 1, 0);
      std::string who = got > 0 ? std::string(holder, static_cast<std::size_t>(got)) : "";
      if (who.rfind(kLockHeader, 0) == 0) who = who.substr(std::strlen(kLockHeader));
      while (!who.empty() && (who.back() == '\n' || who.back() == '\0')) who.pop_back();
      problem = fmt::format("output.dir '{}' is in use by another cmera train ({}); wait for it to "
                            "end or choose another output.dir",
                            dir, who.empty() ? "holder unknown" : who);
      ::close(fd_);
      fd_ = -1;
    } else {
      // Only a file that is empty or already ours is rewritten: a user's file of this name
      // still locks, but keeps its contents.
      char head[64] = {};
      const ssize_t got = ::pread(fd_, head, sizeof head - 1, 0);
      if (got <= 0 || std::string(head).rfind(kLockHeader, 0) == 0) {
        const std::string text = fmt::format("{}host {} pid {}\n", kLockHeader, host_name(), getpid());
        if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
          // The lock holds without the note; the message would only say "holder unknown".
        }
      }
    }
  }
  comm.broadcast(problem);
  comm.check(problem.empty(), problem);
}

OutputDirLock::~OutputDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

namespace {

// `difference` of a file whose recorded configuration cannot even be parsed: that is a
// difference too, never an exception on rank 0 alone.
std::string differs_from(const FileIdentity& id, const ConfigurationDifference& difference) {
  try {
    return difference(id);
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace

ConfigurationDifference same_parameters(const std::string& parameters) {
  return [parameters](const FileIdentity& id) {
    return id.parameters == parameters ? std::string() : std::string("it was written with other parameters");
  };
}

void require_replaceable(const Comm& comm, const std::string& path, const std::string& kind,
                         const std::vector<std::string>& inputs,
                         const ConfigurationDifference& difference) {
  std::string problem;
  if (comm.is_root()) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      // Absent is the usual case; anything else (a name too long, a loop of links in the
      // directories) would fail the write later with a less clear message.
      const int err = errno;
      const fs::path dir = fs::path(path).parent_path();
      struct stat dir_st {};
      if (err != ENOENT)
        problem = fmt::format("{}: cannot be written ({})", path, std::strerror(err));
      else if (!dir.empty() && (::stat(dir.c_str(), &dir_st) != 0 || !S_ISDIR(dir_st.st_mode)))
        problem = fmt::format("{}: its directory {} does not exist", path, dir.string());
      else if (::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0)  // EROFS even for root
        problem = fmt::format("{}: its directory is not writable ({})", path, std::strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
      problem = fmt::format("{} is a directory; the output must be a file name", path);
    } else if (!S_ISREG(st.st_mode)) {
      problem = fmt::format("{} exists and is {}; cmera replaces only regular files it wrote", path,
                            S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
    } else {
      for (const std::string& input : inputs) {
        struct stat in {};
        if (problem.empty() && ::stat(input.c_str(), &in) == 0 && in.st_dev == st.st_dev &&
            in.st_ino == st.st_ino)
          problem = fmt::format("{} is also this command's input ({}); cmera never writes over its "
                                "own inputs: choose another output", path, input);
      }
      if (problem.empty()) {
        std::string why_not;
        const std::optional<FileIdentity> id = identify_cmera_file(path, why_not);
        const std::string differs =
            !id                ? why_not
            : id->kind != kind ? fmt::format("it is a cmera {} file, not a {}", id->kind, kind)
                               : differs_from(*id, difference);
        if (!differs.empty())
          problem = fmt::format("{} exists and cmera will not replace it: {}; move it away or "
                                "choose another output", path, differs);
      }
    }
  }
  comm.broadcast(problem);
  comm.check(problem.empty(), problem);
}

}  // namespace cmera
