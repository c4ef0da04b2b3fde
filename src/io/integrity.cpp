// The integrity block (integrity.hpp): stamping after a write, checking before a read.
// Plain POSIX reads in 4 MiB pieces and zlib's CRC-32; no HDF5 call touches the file here.
#include "cmera/integrity.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <optional>
#include <vector>

namespace cmera {

namespace {

constexpr const char* kMagic = "CMERA-INTEGRITY 1\n";

// Owns a POSIX file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// CRC-32 of bytes [from, to) of fd; nullopt on a read error or early end of file.
std::optional<unsigned long> crc_of_range(int fd, off_t from, off_t to) {
  std::vector<unsigned char> buf(std::size_t{4} << 20);
  unsigned long crc = crc32_z(0, nullptr, 0);
  for (off_t at = from; at < to;) {
    const std::size_t want = static_cast<std::size_t>(std::min<off_t>(to - at, buf.size()));
    const ssize_t got = ::pread(fd, buf.data(), want, at);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return std::nullopt;
    crc = crc32_z(crc, buf.data(), static_cast<std::size_t>(got));
    at += got;
  }
  return crc;
}

std::string block_text(off_t length, unsigned long crc) {
  return fmt::format("{}bytes {}\ncrc32 {:08x}\n", kMagic, static_cast<long long>(length), crc);
}

}  // namespace

void stamp_integrity(std::vector<char>& image) {
  if (image.size() < kIntegrityBlockBytes) return;
  const unsigned long crc = crc32_z(crc32_z(0, nullptr, 0),
                                    reinterpret_cast<const unsigned char*>(image.data()) + kIntegrityBlockBytes,
                                    image.size() - kIntegrityBlockBytes);
  std::string text = block_text(static_cast<off_t>(image.size()), crc);
  text.resize(kIntegrityBlockBytes, '\0');
  std::copy(text.begin(), text.end(), image.begin());
}

std::string stamp_integrity(const std::string& path) {
  const Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0)
    return fmt::format("cannot open {} to stamp it: {}", path, std::strerror(errno));
  const off_t block = static_cast<off_t>(kIntegrityBlockBytes);
  if (st.st_size < block) return fmt::format("{} is shorter than its user block", path);
  const auto crc = crc_of_range(fd.get(), block, st.st_size);
  if (!crc) return fmt::format("cannot read back {}: {}", path, std::strerror(errno));
  std::string text = block_text(st.st_size, *crc);
  text.resize(kIntegrityBlockBytes, '\0');
  if (::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    return fmt::format("cannot write the integrity block of {}: {}", path, std::strerror(errno));
  return {};
}

IntegrityCheck check_integrity(const std::string& path) {
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0)
    return {IntegrityStatus::failed, fmt::format("cannot read: {}", std::strerror(errno))};
  std::string head(kIntegrityBlockBytes, '\0');
  const ssize_t got = ::pread(fd.get(), head.data(), head.size(), 0);
  if (got < static_cast<ssize_t>(std::strlen(kMagic)) ||
      head.compare(0, std::strlen(kMagic), kMagic) != 0)
    return {IntegrityStatus::absent, "no cmera integrity block"};
  long long length = -1;
  unsigned long crc = 0;
  const std::string record = head.substr(std::strlen(kMagic), head.find('\0') - std::strlen(kMagic));
  if (std::sscanf(record.c_str(), "bytes %lld\ncrc32 %8lx\n", &length, &crc) != 2 || length < 0)
    return {IntegrityStatus::failed, "damaged integrity block"};
  if (st.st_size != length)
    return {IntegrityStatus::failed,
            fmt::format("{} ({} bytes, written as {})", st.st_size < length ? "truncated" : "extended",
                        static_cast<long long>(st.st_size), length)};
  const auto actual = crc_of_range(fd.get(), static_cast<off_t>(kIntegrityBlockBytes), st.st_size);
  if (!actual)
    return {IntegrityStatus::failed, fmt::format("cannot read: {}", std::strerror(errno))};
  if (*actual != crc)
    return {IntegrityStatus::failed,
            fmt::format("damaged: CRC-32 {:08x}, written as {:08x}", *actual, crc)};
  return {IntegrityStatus::verified, {}};
}

}  // namespace cmera
