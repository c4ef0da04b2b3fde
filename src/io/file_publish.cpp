// Publishing files without damage (file_publish.hpp): fsync, rename, space reservation.
#include "file_publish.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdlib>
#include <filesystem>

namespace cmera::h5 {

namespace {

// fsync of a file or directory by name; false if it cannot be opened or synced.
bool sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

}  // namespace

bool fault_injected(const std::string& path) {
  const char* fault = std::getenv("CMERA_TEST_FAIL_WRITE");
  return fault && *fault && path.find(fault) != std::string::npos;
}

std::string rename_into_place(const std::string& tmp, const std::string& path, bool durable) {
  if (durable && !sync_path(tmp)) return "cannot fsync " + tmp;
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return fmt::format("cannot rename {} to it: {}", tmp, ec.message());
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (durable && !sync_path(dir.empty() ? "." : dir.string()))
    return "cannot fsync directory " + dir.string();
  return {};
}

std::string reserve_space(const std::string& tmp, double bytes) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fmt::format("cannot open {}: {}", tmp, std::strerror(errno));
  int rc = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(bytes));
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  if (err == EOPNOTSUPP || err == ENOSYS) {
    struct statvfs fs {};
    const std::filesystem::path dir = std::filesystem::path(tmp).parent_path();
    if (::statvfs(dir.empty() ? "." : dir.c_str(), &fs) != 0 ||
        static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) >= bytes)
      return {};
    rc = -1;
  }
  if (rc == 0) return {};
  return fmt::format("writing failed: {} (the file needs {:.3g} MB)",
                     std::strerror(err ? err : ENOSPC), bytes / 1e6);
}

}  // namespace cmera::h5
