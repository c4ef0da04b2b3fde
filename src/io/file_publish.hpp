// Publishing files without damage (io module, internal): a writer fills a temporary
// "<path>.tmp.<tag>" and only a complete, integrity-stamped temporary is renamed onto
// <path>, so a failed write never damages an existing file. Datasets are written
// collectively through MPI-IO into space reserved first (write_atomically); models and
// checkpoints are built in rank 0's memory and written with POSIX calls (MemoryFile), so
// that no failure of the disk can leave a rank inside a collective call.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cmera/integrity.hpp"
#include "hdf5_file.hpp"

namespace cmera::h5 {

// Test-only fault hook (tests/cli/bad_inputs.sh): CMERA_TEST_FAIL_WRITE=<text> makes every
// write whose target path contains <text> fail before the rename, as a full disk would.
bool fault_injected(const std::string& path);
constexpr const char* kInjectedFault =
    "writing failed: No space left on device (simulated by CMERA_TEST_FAIL_WRITE)";

// Rank 0's last step of every writer: the complete, stamped temporary becomes `path`.
// durable: the data reach the disk before the rename, and the rename before returning
// (a crash of the machine then also loses nothing). Returns what failed, or "".
std::string rename_into_place(const std::string& tmp, const std::string& path, bool durable);

// Rank 0: reserves `bytes` of disk for the file being written at `tmp` (which HDF5 has
// created), so that no collective write inside MPI-IO can meet a full disk: a collective
// write that fails on one rank leaves the others waiting in it forever (Open MPI's OMPIO
// aggregators, then HDF5's collective close). The reservation lies beyond the end of the
// file (FALLOC_FL_KEEP_SIZE), so HDF5's view of the file does not change; at most the
// metadata margin stays allocated past the end. Filesystems without fallocate get a
// free-space check instead, which cannot see quotas or concurrent writers.
std::string reserve_space(const std::string& tmp, double bytes);

// Writes a dataset file collectively through MPI-IO (each rank its rows), into a temporary
// that replaces `path` only once complete. fill(ctx, file) writes the contents; `bytes`
// bounds the file's size (data plus a metadata margin) for reserve_space. Any
// cmera::Error on the way removes the temporary and ends as kExitWrite.
template <class Fill>
void write_atomically(const Comm& comm, const std::string& path, double bytes, Fill&& fill) {
  silence_hdf5();
  const Ctx ctx{comm, path, kExitWrite};
  std::string tmp = comm.is_root() ? fmt::format("{}.tmp.{}", path, getpid()) : std::string();
  comm.broadcast(tmp);
  try {
    {
      const Handle fapl = mpio_fapl(comm);
      const Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
      H5Pset_userblock(fcpl.get(), kIntegrityBlockBytes);
      Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
      ctx.require(file.ok(), "cannot create temporary file " + tmp +
                                 " (does the directory exist and is it writable?)");
      const std::string reserved = comm.is_root() ? reserve_space(tmp, bytes) : std::string();
      ctx.require(reserved.empty(), reserved);
      fill(ctx, file.get());
      ctx.require(!fault_injected(path), kInjectedFault);
      ctx.require(H5Fclose(file.release()) >= 0, "closing temporary file " + tmp + " failed");
    }
    std::string problem;
    if (comm.is_root()) {
      problem = stamp_integrity(tmp);
      if (problem.empty()) problem = rename_into_place(tmp, path, false);
    }
    ctx.require(problem.empty(), problem);
  } catch (const Error& e) {
    if (comm.is_root()) std::remove(tmp.c_str());
    comm.barrier();
    throw Error(e.what(), kExitWrite);
  }
}

// An HDF5 file that lives in rank 0's memory (core driver, no backing store) until
// publish() writes its bytes with plain POSIX calls. HDF5 and MPI-IO never touch the disk,
// so a full disk or a failing server is one local error on rank 0, reported to the others
// at the writer's single agreement point, instead of a failed collective that hangs the
// job. Trade-off: rank 0 holds the file image (and one gathered table set) in memory, and
// one process writes it; model and checkpoint files are the size of the tables, which
// every rank already holds in full.
class MemoryFile {
 public:
  MemoryFile(const Ctx& ctx, double expected_bytes) : ctx_(ctx) {
    const Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    // The image grows in steps of this size: the expected size makes it one allocation.
    H5Pset_fapl_core(fapl.get(), static_cast<std::size_t>(std::max(expected_bytes, 1.0 * (1 << 20))), false);
    const Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
    H5Pset_userblock(fcpl.get(), kIntegrityBlockBytes);
    file_ = Handle(H5Fcreate((ctx.path + ".in-memory").c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()),
                   H5Fclose);
    ctx.require(file_.ok(), "cannot create the file's image in memory");
  }
  hid_t get() const { return file_.get(); }

  // Closes the image and writes it to `<path>.tmp.<tag>`, then renames that onto path.
  // Any failure removes the temporary and throws; `before_rename` runs with the complete
  // temporary in place (a test hook).
  void publish(const std::string& tag, bool durable, const std::function<void()>& before_rename) {
    ctx_.require(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) >= 0, "cannot finish the file's image");
    // The image starts at the superblock: HDF5 leaves the user block out of it.
    const ssize_t n = H5Fget_file_image(file_.get(), nullptr, 0);
    ctx_.require(n > 0, "cannot finish the file's image");
    std::vector<char> image(kIntegrityBlockBytes + static_cast<std::size_t>(n));
    ctx_.require(H5Fget_file_image(file_.get(), image.data() + kIntegrityBlockBytes,
                                   static_cast<std::size_t>(n)) == n,
                 "cannot copy the file's image");
    ctx_.require(H5Fclose(file_.release()) >= 0, "cannot close the file's image");
    stamp_integrity(image);
    const std::string tmp = fmt::format("{}.tmp.{}", ctx_.path, tag);
    std::string problem = write_bytes(tmp, image, durable);
    if (problem.empty() && fault_injected(ctx_.path)) problem = kInjectedFault;
    if (problem.empty() && before_rename) before_rename();
    if (problem.empty()) problem = rename_into_place(tmp, ctx_.path, durable);
    if (!problem.empty()) std::remove(tmp.c_str());
    ctx_.require(problem.empty(), problem);
  }

 private:
  // O_NOFOLLOW: a link planted under the temporary's name is refused, not written through.
  static std::string write_bytes(const std::string& tmp, const std::vector<char>& bytes, bool durable) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return fmt::format("cannot create temporary file {}: {}", tmp, std::strerror(errno));
    std::string problem;
    for (std::size_t done = 0; done < bytes.size() && problem.empty();) {
      const ssize_t put = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) problem = fmt::format("writing failed: {}", std::strerror(put < 0 ? errno : EIO));
      else done += static_cast<std::size_t>(put);
    }
    if (problem.empty() && durable && ::fsync(fd) != 0)
      problem = fmt::format("writing failed: fsync: {}", std::strerror(errno));
    // Network filesystems may report a full disk only here.
    if (::close(fd) != 0 && problem.empty())
      problem = fmt::format("writing failed: close: {}", std::strerror(errno));
    return problem;
  }

  Ctx ctx_;
  Handle file_;
};

// Every dataset of a table set shaped like model m, in /model's layout, written into rank
// 0's in-memory file. Collective: the owners of untied rows send them to rank 0, one array

}  // namespace cmera::h5
