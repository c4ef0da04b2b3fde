// HDF5 files (io.hpp). Datasets through MPI-IO; a chunked /configs is read through a
// per-rank serial handle instead (DatasetReader). Every operation is collective, and every
// step that can fail ends in Comm::check, so all ranks raise the same cmera::Error at the
// same point instead of one rank throwing while the others wait in the next collective
// call. Trade-off: that costs one small allreduce per step, negligible next to file I/O.
// Writers fill a temporary "<path>.tmp.<tag>" and only then rename it onto <path>, so a
// failed write never damages an existing file. Dataset writers reserve their disk space
// before any collective write (reserve_space); models and checkpoints are built in rank
// 0's memory and written with plain POSIX calls (MemoryFile), so that no failure of the
// disk can leave a rank inside a collective call.
//
// Dataset file
//   /configs            uint8 [samples, sites], contiguous; attribute alphabet (int32)
//                       (readers take any layout: chunked and gzip-compressed too)
//   root attributes     cmera_kind = "dataset", plus the caller's attributes (strings)
//
// Model file (format_version 2)
//   root attributes     cmera_kind = "model", format_version = 2 (int32), provenance
//                       (every other root string attribute)
//   /config             group; string attribute "toml" holds the resolved config
//   /model              group; attributes sites (int64), chi (int32 [depth+1]),
//                       tied (int32 0/1), depth (int32)
//   /model/layer_<l>/isometry      float64 [count, K, d, d]      W[j][y][a][b]
//   /model/layer_<l>/disentangler  float64 [count, d, d, d, d]   U[j][a][a'][x][x']
//                       count = 1 if tied else M = sites >> (l+1); d = chi[l], K = chi[l+1]
//   /model/top          float64 [K, K, ..., K] (rank top_sites), K = chi[depth]
//   /history/objective, /history/kl   float64 [n] (n may be 0)
// A file of another kind (checkpoint, ModelFileExtras) is a model file with cmera_kind set
// to that kind, extra int64 root attributes, and extra groups laid out like /model
// (layer_<l>/isometry, layer_<l>/disentangler, top) holding tables of the model's shape.
// Strings are fixed-length UTF-8 (h5py reads them as bytes). Variable-length strings live
// in the file's global heap, and HDF5 1.10 follows a damaged heap into crashes and endless
// loops, which no caller can catch; so readers refuse them without touching the heap.
// Format version 1 wrote variable-length strings; version 2 does not.
// A fixed-length attribute holds at most 64 KiB; the resolved config is far below that,
// and provenance abridges the one unbounded value (the command line).
#include "cmera/io.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <optional>

#include "cmera/error.hpp"
#include "cmera/integrity.hpp"

namespace cmera {

namespace {

constexpr int kModelFormatVersion = 2;
// A fixed-length string attribute longer than this is damage, not a config.
constexpr std::size_t kMaxStringAttrBytes = std::size_t{1} << 26;

// Owns one HDF5 identifier; closing happens on every rank in the same order because
// all ranks unwind through the same scopes (collective H5Fclose needs that).
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    std::swap(id_, o.id_);
    std::swap(close_, o.close_);
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// HDF5 prints its whole error stack by default; the user should see one cmera::Error.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// Error agreement bound to one file: every message starts with the path.
// `local`: work that only rank 0 does (a file built in its memory) fails at once, without
// the collective agreement, which the other ranks are not there to join.
struct Ctx {
  const Comm& comm;
  std::string path;
  int code = kExitUsage;
  bool local = false;
  void require(bool ok, const std::string& what) const {
    if (!local) return comm.check(ok, path + ": " + what, code);
    if (!ok) throw Error(path + ": " + what, code);
  }
};

std::string shape_string(const std::vector<hsize_t>& dims) {
  return fmt::format("[{}]", fmt::join(dims, ", "));
}

std::string type_string(hid_t type) {
  const std::size_t bits = 8 * H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return fmt::format("{}{}", H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", bits);
    case H5T_FLOAT: return fmt::format("float{}", bits);
    case H5T_STRING: return "string";
    case H5T_ENUM: return "enum";
    case H5T_COMPOUND: return "compound";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "vlen";
    default: return "non-numeric";
  }
}

std::vector<hsize_t> dims_of(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

Handle mpio_fapl(const Comm& comm) {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_mpio(fapl.get(), comm.raw(), MPI_INFO_NULL);
  // Metadata is read once and broadcast instead of by every rank (all our metadata
  // operations are collective anyway).
  H5Pset_all_coll_metadata_ops(fapl.get(), true);
  H5Pset_coll_metadata_write(fapl.get(), true);
  return fapl;
}

Handle collective_dxpl() {
  Handle dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE);
  return dxpl;
}

// False also when an intermediate group of a path is missing (H5Lexists fails then).
bool has_link(hid_t loc, const std::string& name) {
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

// Whether a file must carry cmera's integrity block (integrity.hpp).
enum class Integrity { required, if_present };

// Collective open for reading. Rank 0 first tells apart "missing" from "not HDF5" (a
// failed H5Fopen alone does not say which) and verifies the integrity block, so that a
// damaged cmera file never reaches HDF5. `verified` (if given) says whether it had one.
Handle open_for_read(const Ctx& ctx, Integrity integrity, bool* verified = nullptr) {
  std::string problem;
  int has_block = 0;
  if (ctx.comm.is_root()) {
    // stat(2) tells every path problem apart (a name too long, a symlink loop, a missing
    // directory); a device or FIFO is refused before anything reads it (it may never end).
    struct stat st {};
    if (::stat(ctx.path.c_str(), &st) != 0) {
      problem = errno == ENOENT ? std::string("no such file")
                                : fmt::format("cannot open ({})", std::strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
      problem = "is a directory, expected an HDF5 file";
    } else if (!S_ISREG(st.st_mode)) {
      problem = "is not a regular file (a device, FIFO or socket), expected an HDF5 file";
    } else {
      const IntegrityCheck check = check_integrity(ctx.path);
      has_block = check.status == IntegrityStatus::verified;
      if (check.status == IntegrityStatus::failed)
        problem = check.problem;
      else if (H5Fis_hdf5(ctx.path.c_str()) <= 0)
        problem = "not an HDF5 file (or not readable)";
      else if (!has_block && integrity == Integrity::required)
        problem = "no cmera integrity block: not a cmera model file, or one written before "
                  "format version 2";
    }
  }
  ctx.require(problem.empty(), problem);
  if (verified) *verified = ctx.comm.max(static_cast<long long>(has_block)) > 0;
  Handle fapl = mpio_fapl(ctx.comm);
  Handle file(H5Fopen(ctx.path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  ctx.require(file.ok(), "cannot open HDF5 file for reading (truncated or damaged?)");
  return file;
}

// Attributes ------------------------------------------------------------------------

// Creates (or replaces) attribute `name`; the value must be the same on every rank.
bool put_attr(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type,
              const std::vector<hsize_t>& dims, const void* value) {
  if (H5Aexists(obj, name.c_str()) > 0 && H5Adelete(obj, name.c_str()) < 0) return false;
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle attr(H5Acreate2(obj, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  return attr.ok() && H5Awrite(attr.get(), mem_type, value) >= 0;
}

bool put_string_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  // HDF5 has no zero-size string type; an empty value is stored as one NUL byte.
  H5Tset_size(t.get(), std::max<std::size_t>(value.size(), 1));
  H5Tset_strpad(t.get(), H5T_STR_NULLPAD);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  return put_attr(obj, name, t.get(), t.get(), {}, padded.data());
}

bool put_int_attr(hid_t obj, const std::string& name, long long value, hid_t file_type) {
  return put_attr(obj, name, file_type, H5T_NATIVE_LLONG, {}, &value);
}

bool put_int_array_attr(hid_t obj, const std::string& name, const std::vector<int>& v) {
  return put_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, {v.size()}, v.data());
}

Handle open_attr(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) return {};
  return Handle(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
}

enum class StringAttr { fixed_length, absent, variable_length, other };

// A scalar string attribute: its value when it is fixed-length, else why not (absent,
// variable-length, or of another class or shape). Variable-length values are never read:
// see the header comment.
struct StringAttrRead {
  std::optional<std::string> value;
  StringAttr kind = StringAttr::absent;
};

StringAttrRead read_string_attr(hid_t obj, const std::string& name) {
  const Handle attr = open_attr(obj, name);
  if (!attr.ok()) return {};
  const Handle type(H5Aget_type(attr.get()), H5Tclose);
  const Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_STRING) return {std::nullopt, StringAttr::other};
  if (H5Tis_variable_str(type.get()) != 0) return {std::nullopt, StringAttr::variable_length};
  const std::size_t n = H5Tget_size(type.get());
  if (H5Sget_simple_extent_npoints(space.get()) != 1 || n == 0 || n > kMaxStringAttrBytes)
    return {std::nullopt, StringAttr::other};
  std::string s(n, '\0');
  // The file's own type as memory type: HDF5 does not convert between ASCII and UTF-8.
  if (H5Aread(attr.get(), type.get(), s.data()) < 0) return {std::nullopt, StringAttr::other};
  s.resize(std::min(s.find('\0'), n));
  return {std::move(s), StringAttr::fixed_length};
}

std::optional<std::string> get_string_attr(hid_t obj, const std::string& name) {
  return read_string_attr(obj, name).value;
}

// Integer attribute values (converted to long long); nullopt when absent, not an
// integer, or not of the expected element count (-1: any).
std::optional<std::vector<long long>> get_int_attr(hid_t obj, const std::string& name,
                                                   long expected_count) {
  const Handle attr = open_attr(obj, name);
  if (!attr.ok()) return std::nullopt;
  const Handle type(H5Aget_type(attr.get()), H5Tclose);
  const Handle space(H5Aget_space(attr.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (H5Tget_class(type.get()) != H5T_INTEGER || n < 0 ||
      (expected_count >= 0 && n != expected_count))
    return std::nullopt;
  std::vector<long long> v(static_cast<std::size_t>(n));
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_LLONG, v.data()) < 0) return std::nullopt;
  return v;
}

// Names of all attributes on obj, in creation-or-name order.
std::vector<std::string> attr_names(hid_t obj) {
  std::vector<std::string> names;
  H5Aiterate2(
      obj, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->emplace_back(name);
        return 0;
      },
      &names);
  return names;
}

// Rank 0's value of a count on every rank.
long long root_value(const Comm& comm, std::size_t n) {
  return comm.max(comm.is_root() ? static_cast<long long>(n) : 0LL);
}

// Rank 0's attributes on every rank: HDF5 metadata must be identical everywhere, and
// provenance (host, time) naturally differs between ranks.
Attributes broadcast_attrs(const Comm& comm, const Attributes& attrs) {
  Attributes out(static_cast<std::size_t>(root_value(comm, attrs.size())));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (comm.is_root()) out[i] = attrs[i];
    comm.broadcast(out[i].first);
    comm.broadcast(out[i].second);
  }
  return out;
}

// Datasets --------------------------------------------------------------------------

Handle create_dataset(const Ctx& ctx, hid_t loc, const std::string& name, hid_t type,
                      const std::vector<hsize_t>& dims) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  // Every element is written right away, so a fill pass would only double the I/O.
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);
  Handle dset(H5Dcreate2(loc, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(),
                         H5P_DEFAULT),
              H5Dclose);
  ctx.require(dset.ok(), fmt::format("cannot create dataset {} {}", name, shape_string(dims)));
  return dset;
}

// Collective write of rows [first, first + rows) along the first dimension (all of the
// others); a rank with rows == 0 selects nothing but still takes part.
void write_rows(const Ctx& ctx, hid_t dset, const std::string& name, hid_t mem_type,
                long first, long rows, const void* data) {
  Handle fspace(H5Dget_space(dset), H5Sclose);
  std::vector<hsize_t> count = dims_of(fspace.get());
  std::vector<hsize_t> start(count.size(), 0);
  // HDF5 refuses transfers on an empty dataset; there is nothing to write anyway, and
  // every rank sees the same shape, so all skip together.
  if (H5Sget_simple_extent_npoints(fspace.get()) == 0) return;
  hsize_t elems = 0;
  bool ok = !count.empty();
  if (ok && rows > 0) {
    start[0] = static_cast<hsize_t>(first);
    count[0] = static_cast<hsize_t>(rows);
    elems = 1;
    for (hsize_t c : count) elems *= c;
    ok = H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                             nullptr) >= 0;
  } else if (ok) {
    ok = H5Sselect_none(fspace.get()) >= 0;
  }
  const hsize_t mdim = std::max<hsize_t>(elems, 1);
  Handle mspace(H5Screate_simple(1, &mdim, nullptr), H5Sclose);
  if (elems == 0) H5Sselect_none(mspace.get());
  const Handle dxpl = collective_dxpl();
  // A dummy address keeps HDF5 from rejecting a null buffer on ranks that select nothing.
  const double nothing = 0;
  ok = ok && H5Dwrite(dset, mem_type, mspace.get(), fspace.get(), dxpl.get(),
                      elems > 0 ? data : &nothing) >= 0;
  ctx.require(ok, "writing dataset " + name + " failed");
}

// Every rank reads all of dataset `name` (absolute; a floating-point array of shape
// `dims`, or of any 1-D length if dims is empty).
std::vector<double> read_doubles(const Ctx& ctx, hid_t file, const std::string& name,
                                 const std::vector<hsize_t>& dims) {
  const bool present = has_link(file, name);
  ctx.require(present, "missing dataset " + name);
  const Handle dset(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  ctx.require(dset.ok(), "cannot open dataset " + name);
  const Handle type(H5Dget_type(dset.get()), H5Tclose);
  const Handle space(H5Dget_space(dset.get()), H5Sclose);
  const auto found = dims_of(space.get());
  const bool shape_ok = dims.empty() ? found.size() == 1 : found == dims;
  const bool type_ok = H5Tget_class(type.get()) == H5T_FLOAT;
  ctx.require(shape_ok && type_ok,
              fmt::format("dataset {} is {} {}, expected float64 {}", name,
                          type_string(type.get()), shape_string(found),
                          dims.empty() ? std::string("[n]") : shape_string(dims)));
  double n_double = 1;
  for (hsize_t d : found) n_double *= static_cast<double>(d);
  hsize_t file_bytes = 0;
  H5Fget_filesize(file, &file_bytes);
  ctx.require(8 * n_double <= static_cast<double>(file_bytes),
              fmt::format("dataset {} {} is larger than the file ({} bytes; damaged?)", name,
                          shape_string(found), file_bytes));
  const auto n = static_cast<hsize_t>(n_double);
  std::vector<double> out(n);
  if (n == 0) return out;  // as in write_rows: no transfer on an empty dataset
  const Handle dxpl = collective_dxpl();
  const bool ok = H5Dread(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, dxpl.get(),
                          out.data()) >= 0;
  ctx.require(ok, "reading dataset " + name + " failed");
  return out;
}

Handle create_group(const Ctx& ctx, hid_t loc, const std::string& name) {
  Handle g(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  ctx.require(g.ok(), "cannot create group " + name);
  return g;
}

Handle open_group(const Ctx& ctx, hid_t loc, const std::string& name) {
  const bool present = has_link(loc, name);
  ctx.require(present, "missing group " + name);
  Handle g(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), H5Gclose);
  ctx.require(g.ok(), "cannot open group " + name);
  return g;
}

// fsync of a file or directory by name; false if it cannot be opened or synced.
bool sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

// Test-only fault hook (tests/cli/bad_inputs.sh): CMERA_TEST_FAIL_WRITE=<text> makes every
// write whose target path contains <text> fail before the rename, as a full disk would.
bool fault_injected(const std::string& path) {
  const char* fault = std::getenv("CMERA_TEST_FAIL_WRITE");
  return fault && *fault && path.find(fault) != std::string::npos;
}
constexpr const char* kInjectedFault =
    "writing failed: No space left on device (simulated by CMERA_TEST_FAIL_WRITE)";

// Rank 0's last step of every writer: the complete, stamped temporary becomes `path`.
// durable: the data reach the disk before the rename, and the rename before returning
// (a crash of the machine then also loses nothing). Returns what failed, or "".
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

// Rank 0: reserves `bytes` of disk for the file being written at `tmp` (which HDF5 has
// created), so that no collective write inside MPI-IO can meet a full disk: a collective
// write that fails on one rank leaves the others waiting in it forever (Open MPI's OMPIO
// aggregators, then HDF5's collective close). The reservation lies beyond the end of the
// file (FALLOC_FL_KEEP_SIZE), so HDF5's view of the file does not change; at most the
// metadata margin stays allocated past the end. Filesystems without fallocate get a
// free-space check instead, which cannot see quotas or concurrent writers.
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
// at a time; `on_root` runs rank 0's writes and keeps the first failure for later.
template <class OnRoot>
void write_table_set(const Comm& comm, const OnRoot& on_root, const Ctx& local, hid_t file,
                     const std::string& group, const Model& m, const Tables& tables) {
  const auto write = [&](const std::string& name, const std::vector<hsize_t>& dims,
                         const double* data) {
    on_root([&] {
      const Handle dset = create_dataset(local, file, name, H5T_IEEE_F64LE, dims);
      local.require(H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
                    "writing dataset " + name + " failed");
    });
  };
  for (int l = 0; l < m.depth(); ++l) {
    const LayerTables& t = tables.layers[l];
    const std::string layer = fmt::format("{}/layer_{}", group, l);
    on_root([&] { create_group(local, file, layer); });
    const hsize_t n = static_cast<hsize_t>(t.count()), d = t.d, K = t.K;
    const std::vector<hsize_t> w_dims{n, K, d, d}, u_dims{n, d, d, d, d};
    if (m.tied) {
      write(layer + "/isometry", w_dims, t.W.data());
      write(layer + "/disentangler", u_dims, t.U.data());
      continue;
    }
    const BlockPartition owners{t.count(), comm.size()};
    write(layer + "/isometry", w_dims, comm.gather_blocks(t.W, owners, t.w_size()).data());
    write(layer + "/disentangler", u_dims, comm.gather_blocks(t.U, owners, t.u_size()).data());
  }
  const Geometry& g = m.geometry;
  write(group + "/top",
        std::vector<hsize_t>(static_cast<std::size_t>(g.top_sites()), static_cast<hsize_t>(g.chi.back())),
        tables.top.data());
}

// Every rank reads the whole table set `group`, shaped like model m.
Tables read_table_set(const Ctx& ctx, hid_t f, const std::string& group, const Model& m) {
  Tables out = Tables::zeros_like(m.tables);
  for (int l = 0; l < m.depth(); ++l) {
    LayerTables& t = out.layers[l];
    const std::string layer = fmt::format("{}/layer_{}", group, l);
    const hsize_t n = static_cast<hsize_t>(t.count()), d = t.d, K = t.K;
    t.W = read_doubles(ctx, f, layer + "/isometry", {n, K, d, d});
    t.U = read_doubles(ctx, f, layer + "/disentangler", {n, d, d, d, d});
  }
  out.top = read_doubles(ctx, f, group + "/top",
                         std::vector<hsize_t>(static_cast<std::size_t>(m.geometry.top_sites()),
                                              static_cast<hsize_t>(m.geometry.chi.back())));
  return out;
}

}  // namespace

// DatasetReader ----------------------------------------------------------------------

DatasetReader::DatasetReader(const Comm& comm, const std::string& path)
    : comm_(comm), path_(path) {
  silence_hdf5();
  const Ctx ctx{comm, path};
  Handle file = open_for_read(ctx, Integrity::if_present);
  const bool present = has_link(file.get(), "configs");
  ctx.require(present, "no /configs dataset (expected uint8 [samples, sites])");
  Handle dset(H5Dopen2(file.get(), "configs", H5P_DEFAULT), H5Dclose);
  ctx.require(dset.ok(), "/configs is not a dataset (expected uint8 [samples, sites])");
  const Handle type(H5Dget_type(dset.get()), H5Tclose);
  const Handle space(H5Dget_space(dset.get()), H5Sclose);
  const auto dims = dims_of(space.get());
  const bool type_ok = H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1 &&
                       H5Tget_sign(type.get()) == H5T_SGN_NONE;
  ctx.require(dims.size() != 3,
              fmt::format("/configs is {} {}: 2D datasets [S, Ly, Lx] are not supported by "
                          "train/eval yet; expected [samples, sites] (write rows as samples with "
                          "`cmera generate ising2d --rows`, or reshape to [S*Ly, Lx])",
                          type_string(type.get()), shape_string(dims)));
  ctx.require(type_ok && dims.size() == 2,
              fmt::format("/configs is {} {} (rank {}), expected uint8 [samples, sites]",
                          type_string(type.get()), shape_string(dims), dims.size()));
  ctx.require(dims[0] >= 1, "/configs has zero samples");
  ctx.require(dims[0] < (hsize_t{1} << 62) && dims[1] < (hsize_t{1} << 62),
              fmt::format("/configs shape {} is beyond any real dataset (damaged?)", shape_string(dims)));
  ctx.require(dims[1] >= 1, "/configs has zero sites");
  shape_.samples = static_cast<long>(dims[0]);
  shape_.sites = static_cast<long>(dims[1]);

  // A filter this HDF5 lacks (h5py's lzf, blosc, ...) would only fail at the first read,
  // as an opaque HDF5 error; name it now.
  const Handle dcpl(H5Dget_create_plist(dset.get()), H5Pclose);
  std::string missing;
  for (int i = 0, n = H5Pget_nfilters(dcpl.get()); i < n && missing.empty(); ++i) {
    unsigned flags = 0;
    std::size_t nvalues = 0;
    char name[128] = "";
    const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags,
                                           &nvalues, nullptr, sizeof name, name, nullptr);
    if (id < 0 || H5Zfilter_avail(id) <= 0)
      missing = fmt::format("/configs is compressed with HDF5 filter {} ('{}'), which this HDF5 "
                            "library does not have; rewrite it uncompressed or with gzip (e.g. "
                            "h5repack -f NONE)", id, name);
  }
  ctx.require(missing.empty(), missing);
  // Chunked layouts are read through rows_ (see read()); remember their geometry.
  hsize_t chunk[2] = {0, 0};
  if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED && H5Pget_chunk(dcpl.get(), 2, chunk) == 2) {
    chunk_rows_ = static_cast<long>(chunk[0]);
    chunk_cols_ = static_cast<long>(chunk[1]);
    filtered_ = H5Pget_nfilters(dcpl.get()) > 0;
  }
  // Parallel HDF5 keeps no chunk cache under MPI-IO, and maps a read onto chunks at a cost
  // of tens of microseconds per chunk: column slabs of a 1-row-chunked dataset made the
  // statistics pass 500x slower than a contiguous one. A chunked /configs is therefore
  // read by each rank through its own serial, read-only handle, in blocks of whole chunks
  // across all sites (block_rows), each chunk once per block: unfiltered chunks straight
  // from the file with H5Dread_chunk (no per-chunk mapping), filtered ones by one H5Dread
  // of the block (their chunks are large: h5py picks >= 8 KiB). The stdio driver's
  // buffered reads serve consecutive small chunks from one read(2) (sec2: one pread per
  // chunk, 3x slower for 1-row chunks). Trade-off: every rank reads every chunk of the
  // window and pair passes (P-fold redundant decompression), which a row-split read with
  // an all-to-all of column slabs would avoid.
  if (chunk_rows_ > 0) {
    dset = Handle();
    file = Handle();
    const Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    H5Pset_fapl_stdio(fapl.get());
    file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
    if (file.ok()) dset = Handle(H5Dopen2(file.get(), "configs", H5P_DEFAULT), H5Dclose);
    ctx.require(dset.ok(), "cannot reopen /configs for chunked reads");
  }
  // Storage never written (a writer that died, or h5py's create_dataset without data)
  // reads back as fill values: zeros that look like samples. Chunks are counted (HDF5's
  // space status calls compressed chunks "partly allocated").
  bool written = false, none = true;
  if (chunk_rows_ > 0) {
    hsize_t stored = 0;
    const Handle all(H5Dget_space(dset.get()), H5Sclose);  // 1.10 refuses H5S_ALL here
    H5Dget_num_chunks(dset.get(), all.get(), &stored);
    const auto per = [](hsize_t n, hsize_t c) { return (n + c - 1) / c; };
    written = stored == per(dims[0], chunk[0]) * per(dims[1], chunk[1]);
    none = stored == 0;
  } else {
    H5D_space_status_t allocated = H5D_SPACE_STATUS_ERROR;
    H5Dget_space_status(dset.get(), &allocated);
    written = allocated == H5D_SPACE_STATUS_ALLOCATED;
    none = allocated == H5D_SPACE_STATUS_NOT_ALLOCATED;
  }
  ctx.require(written, fmt::format("/configs {} is not fully written (HDF5 has stored {} of it; "
                                   "unwritten samples read as fill values): an unfinished file?",
                                   shape_string(dims), none ? "none" : "only part"));

  const bool has_alphabet = H5Aexists(dset.get(), "alphabet") > 0;
  if (has_alphabet) {
    const auto a = get_int_attr(dset.get(), "alphabet", 1);
    ctx.require(a.has_value(), "attribute alphabet of /configs must be a single integer");
    ctx.require((*a)[0] >= 0 && (*a)[0] <= 256,
                fmt::format("attribute alphabet of /configs is {}, expected 0..256", (*a)[0]));
    shape_.alphabet = static_cast<int>((*a)[0]);
  }
  file_ = file.release();
  dset_ = dset.release();
}

long DatasetReader::block_rows(long requested) const {
  if (chunk_rows_ == 0) return requested;
  return (std::max(requested, 1L) + chunk_rows_ - 1) / chunk_rows_ * chunk_rows_;
}

bool DatasetReader::load_rows(long first, long count) const {
  if (first >= rows_first_ && first + count <= rows_first_ + rows_count_) return true;
  const long n = shape_.sites;
  const long lo = first / chunk_rows_ * chunk_rows_;
  const long hi = std::min(shape_.samples, (first + count + chunk_rows_ - 1) / chunk_rows_ * chunk_rows_);
  rows_first_ = lo;
  rows_count_ = 0;  // until loaded
  rows_.resize(static_cast<std::size_t>((hi - lo) * n));
  if (filtered_) {
    Handle fspace(H5Dget_space(dset_), H5Sclose);
    const hsize_t start[2] = {static_cast<hsize_t>(lo), 0};
    const hsize_t block[2] = {static_cast<hsize_t>(hi - lo), static_cast<hsize_t>(n)};
    // Memory shaped like the selection: otherwise HDF5 maps chunks element by element.
    Handle mspace(H5Screate_simple(2, block, nullptr), H5Sclose);
    if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, block, nullptr) < 0 ||
        H5Dread(dset_, H5T_NATIVE_UINT8, mspace.get(), fspace.get(), H5P_DEFAULT, rows_.data()) < 0)
      return false;
  } else {
    // Stored chunks are full size (edge chunks too) and, unfiltered, are the data itself.
    std::vector<std::uint8_t> chunk(static_cast<std::size_t>(chunk_rows_ * chunk_cols_));
    for (long r0 = lo; r0 < hi; r0 += chunk_rows_)
      for (long c0 = 0; c0 < n; c0 += chunk_cols_) {
        const hsize_t offset[2] = {static_cast<hsize_t>(r0), static_cast<hsize_t>(c0)};
        std::uint32_t mask = 0;
        if (H5Dread_chunk(dset_, H5P_DEFAULT, offset, &mask, chunk.data()) < 0) return false;
        const long rows = std::min(chunk_rows_, hi - r0), cols = std::min(chunk_cols_, n - c0);
        for (long r = 0; r < rows; ++r)
          std::copy_n(chunk.data() + r * chunk_cols_, cols, rows_.data() + (r0 - lo + r) * n + c0);
      }
  }
  rows_count_ = hi - lo;
  return true;
}

void DatasetReader::require_alphabet(int alphabet) const {
  if (shape_.alphabet != 0 && shape_.alphabet != alphabet)
    throw Error(fmt::format("{}: alphabet attribute is {} but model.chi[0] = {}", path_,
                            shape_.alphabet, alphabet));
}

DatasetReader::~DatasetReader() {
  // Collective: H5Fclose under MPI-IO needs every rank, as the constructor did.
  if (dset_ >= 0) H5Dclose(dset_);
  if (file_ >= 0) H5Fclose(file_);
}

void DatasetReader::read(long first_sample, long count, const CyclicRange& columns,
                         std::vector<std::uint8_t>& out) const {
  const Ctx ctx{comm_, path_, kExitRuntime};
  // An empty column range need not carry the right period: ranks without columns often
  // pass a default CyclicRange.
  const bool args_ok = first_sample >= 0 && count >= 0 && first_sample + count <= shape_.samples &&
                       (columns.length == 0 ||
                        (columns.period == shape_.sites && columns.length > 0 &&
                         columns.length <= columns.period && columns.start >= 0 &&
                         columns.start < columns.period));
  ctx.require(args_ok, fmt::format("read of samples [{}, {}) columns start {} length {} period {} "
                                   "is outside /configs [{}, {}]",
                                   first_sample, first_sample + count, columns.start,
                                   columns.length, columns.period, shape_.samples, shape_.sites));
  const long len = columns.length;
  out.resize(static_cast<std::size_t>(count * len));
  if (chunk_rows_ > 0) {
    const bool ok = count == 0 || len == 0 || load_rows(first_sample, count);
    ctx.require(ok, fmt::format("reading /configs samples [{}, {}) failed", first_sample,
                                first_sample + count));
    if (len == 0) return;
    const long head = std::min(len, columns.period - columns.start);
    for (long r = 0; r < count; ++r) {
      const std::uint8_t* row = rows_.data() + (first_sample - rows_first_ + r) * shape_.sites;
      std::copy_n(row + columns.start, head, out.data() + r * len);
      std::copy_n(row, len - head, out.data() + r * len + head);
    }
    return;
  }

  // A wrapped range is two column blocks; HDF5 delivers them in file order (the [0, tail)
  // block first), so each row is rotated into range order afterwards.
  const long head = std::min(len, columns.period - columns.start);  // [start, start+head)
  const long tail = len - head;                                      // [0, tail)
  Handle fspace(H5Dget_space(dset_), H5Sclose);
  bool ok = true;
  const hsize_t elems = static_cast<hsize_t>(count * len);
  if (elems == 0) {
    ok = H5Sselect_none(fspace.get()) >= 0;
  } else {
    const hsize_t start[2] = {static_cast<hsize_t>(first_sample),
                              static_cast<hsize_t>(columns.start)};
    const hsize_t block[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(head)};
    ok = H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, block, nullptr) >= 0;
    if (ok && tail > 0) {
      const hsize_t start2[2] = {static_cast<hsize_t>(first_sample), 0};
      const hsize_t block2[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(tail)};
      ok = H5Sselect_hyperslab(fspace.get(), H5S_SELECT_OR, start2, nullptr, block2, nullptr) >= 0;
    }
  }
  const hsize_t mdim = std::max<hsize_t>(elems, 1);
  Handle mspace(H5Screate_simple(1, &mdim, nullptr), H5Sclose);
  if (elems == 0) H5Sselect_none(mspace.get());
  const Handle dxpl = collective_dxpl();
  std::uint8_t nothing = 0;
  ok = ok && H5Dread(dset_, H5T_NATIVE_UINT8, mspace.get(), fspace.get(), dxpl.get(),
                     elems > 0 ? out.data() : &nothing) >= 0;
  ctx.require(ok, fmt::format("reading /configs samples [{}, {}) failed", first_sample,
                              first_sample + count));
  if (tail > 0)
    for (long r = 0; r < count; ++r) {
      auto row = out.begin() + r * len;
      std::rotate(row, row + tail, row + len);
    }
}

// Dataset writer ----------------------------------------------------------------------

namespace {

// The dataset file around /configs: shape checks, space reservation, attributes and the
// atomic rename; `put_rows(ctx, dset)` writes the rows (collectively, in any number of
// calls, the same number on every rank).
template <class PutRows>
void write_dataset_file(const Comm& comm, const std::string& path, long total_samples,
                        const std::vector<long>& sample_shape, int alphabet,
                        const Attributes& attrs, PutRows&& put_rows) {
  const Attributes shared = broadcast_attrs(comm, attrs);
  double attr_bytes = 0;
  for (const auto& [key, value] : shared) attr_bytes += static_cast<double>(key.size() + value.size());
  double sites = 1;
  for (long n : sample_shape) sites *= static_cast<double>(n);
  // Object headers and attributes take a few KB; the margin covers them many times over.
  const double bytes = static_cast<double>(total_samples) * sites + 2 * attr_bytes + (1 << 20);

  write_atomically(comm, path, bytes, [&](const Ctx& c, hid_t file) {
    std::vector<hsize_t> dims = {static_cast<hsize_t>(total_samples)};
    for (long n : sample_shape) dims.push_back(static_cast<hsize_t>(n));
    const Handle dset = create_dataset(c, file, "configs", H5T_STD_U8LE, dims);
    put_rows(c, dset.get());
    bool ok = put_int_attr(dset.get(), "alphabet", alphabet, H5T_STD_I32LE);
    // Caller attributes first, so the reserved cmera_kind always has the last word.
    for (const auto& [key, value] : shared) ok = ok && put_string_attr(file, key, value);
    ok = ok && put_string_attr(file, "cmera_kind", "dataset");
    c.require(ok, "writing attributes failed");
  });
}

}  // namespace

void write_dataset(const Comm& comm, const std::string& path, long total_samples, long sites,
                   int alphabet, long first_row, const std::vector<std::uint8_t>& rows,
                   const Attributes& attrs) {
  write_dataset(comm, path, total_samples, std::vector<long>{sites}, alphabet, first_row, rows,
                attrs);
}

void write_dataset(const Comm& comm, const std::string& path, long total_samples,
                   const std::vector<long>& sample_shape, int alphabet, long first_row,
                   const std::vector<std::uint8_t>& rows, const Attributes& attrs) {
  const Ctx ctx{comm, path, kExitWrite};
  long sites = 1;
  for (long n : sample_shape) sites = n >= 1 ? sites * n : 0;
  const bool shape_ok = !sample_shape.empty() && sites >= 1 && total_samples >= 0 &&
                        rows.size() % static_cast<std::size_t>(std::max(sites, 1L)) == 0;
  const long mine = shape_ok ? static_cast<long>(rows.size()) / sites : 0;
  ctx.require(shape_ok && first_row >= 0 && first_row + mine <= total_samples,
              fmt::format("rank {} rows [{}, +{} values) do not fit [{}, {}]", comm.rank(),
                          first_row, rows.size(), total_samples, fmt::join(sample_shape, ", ")));
  const long covered = static_cast<long>(comm.sum(static_cast<long long>(mine)));
  ctx.require(covered == total_samples,
              fmt::format("ranks supply {} rows for a dataset of {} samples", covered,
                          total_samples));
  write_dataset_file(comm, path, total_samples, sample_shape, alphabet, attrs,
                     [&](const Ctx& c, hid_t dset) {
                       write_rows(c, dset, "/configs", H5T_NATIVE_UINT8, first_row, mine, rows.data());
                     });
}

long dataset_block_rows(const Comm& comm, long sites) {
  constexpr long kBytesPerRank = 64L << 20;
  return std::max(1L, kBytesPerRank / std::max(1L, sites)) * comm.size();
}

void write_dataset(const Comm& comm, const std::string& path, long total_samples, long sites,
                   int alphabet, const RowSource& draw, const Attributes& attrs) {
  const long block = dataset_block_rows(comm, sites);
  write_dataset_file(comm, path, total_samples, {sites}, alphabet, attrs, [&](const Ctx& c, hid_t dset) {
    std::vector<std::uint8_t> rows;
    for (long b = 0; b < total_samples; b += block) {
      const BlockPartition part{std::min(block, total_samples - b), comm.size()};
      const long first = b + part.begin(comm.rank()), count = part.count(comm.rank());
      rows.resize(static_cast<std::size_t>(count * sites));
      draw(first, count, rows.data());
      write_rows(c, dset, "/configs", H5T_NATIVE_UINT8, first, count, rows.data());
    }
  });
}

// Model files --------------------------------------------------------------------------

void write_model(const Comm& comm, const std::string& path, const ModelFileContents& contents,
                 const ModelFileExtras* extras, bool durable,
                 const std::function<void()>& before_rename) {
  silence_hdf5();
  const Ctx ctx{comm, path, kExitWrite};
  const Model& m = contents.model;
  const Geometry& g = m.geometry;
  const int depth = g.depth();
  bool sizes_ok = static_cast<int>(m.tables.layers.size()) == depth &&
                  m.tables.top.size() == g.top_size() && g.top_sites() <= H5S_MAX_RANK;
  for (int l = 0; sizes_ok && l < depth; ++l) {
    const LayerTables& t = m.tables.layers[l];
    sizes_ok = t.W.size() == t.count() * t.w_size() && t.U.size() == t.count() * t.u_size() &&
               t.tied == m.tied;
  }
  ctx.require(sizes_ok, "model tables do not match the model geometry (internal error)");
  ModelFileExtras none;
  none.kind = "model";
  const ModelFileExtras& extra = extras ? *extras : none;
  ctx.require(extra.tables.size() == extra.table_sets.size(),
              "one table set per name expected (internal error)");

  // Rank 0 builds the file in memory (MemoryFile) from its own config, history and
  // provenance and every rank's table rows; its first failure is kept in `problem` while
  // the other ranks go on sending rows, and all agree on it once, at the end.
  const bool root = comm.is_root();
  const Ctx local{comm, path, kExitWrite, true};
  std::string problem;
  const auto on_root = [&](const auto& step) {
    if (!root || !problem.empty()) return;
    try {
      step();
    } catch (const Error& e) {
      problem = e.what();
    } catch (const std::bad_alloc&) {
      problem = path + ": not enough memory on rank 0 for the file's image";
    }
  };
  std::optional<MemoryFile> file;
  on_root([&] {
    double table_entries = static_cast<double>(m.tables.top.size());
    for (const LayerTables& t : m.tables.layers) table_entries += static_cast<double>(t.W.size() + t.U.size());
    file.emplace(local, 8 * table_entries * static_cast<double>(1 + extra.tables.size()) + (1 << 20));
    const hid_t f = file->get();
    bool ok = true;
    for (const auto& [key, value] : contents.provenance) ok = ok && put_string_attr(f, key, value);
    for (const auto& [key, value] : extra.strings) ok = ok && put_string_attr(f, key, value);
    ok = ok && put_string_attr(f, "cmera_kind", extra.kind) &&
         put_int_attr(f, "format_version", kModelFormatVersion, H5T_STD_I32LE);
    for (const auto& [key, value] : extra.integers) ok = ok && put_int_attr(f, key, value, H5T_STD_I64LE);
    if (!extra.version.first.empty())
      ok = ok && put_int_attr(f, extra.version.first, extra.version.second, H5T_STD_I64LE);
    local.require(ok, "writing root attributes failed");
    const Handle cfg = create_group(local, f, "/config");
    local.require(put_string_attr(cfg.get(), "toml", contents.config_toml),
                  "writing /config attribute toml failed");
    const Handle model = create_group(local, f, "/model");
    ok = put_int_attr(model.get(), "sites", g.sites, H5T_STD_I64LE) &&
         put_int_array_attr(model.get(), "chi", g.chi) &&
         put_int_attr(model.get(), "tied", m.tied ? 1 : 0, H5T_STD_I32LE) &&
         put_int_attr(model.get(), "depth", depth, H5T_STD_I32LE);
    local.require(ok, "writing /model attributes failed");
  });
  const hid_t f = root && file ? file->get() : -1;
  write_table_set(comm, on_root, local, f, "/model", m, m.tables);
  for (std::size_t k = 0; k < extra.table_sets.size(); ++k) {
    const std::string& group = extra.table_sets[k];
    on_root([&] {
      Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
      H5Pset_create_intermediate_group(lcpl.get(), 1);
      const Handle created(H5Gcreate2(f, group.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      local.require(created.ok(), "cannot create group " + group);
    });
    write_table_set(comm, on_root, local, f, group, m, *extra.tables[k]);
  }
  on_root([&] {
    create_group(local, f, "/history");
    for (const auto& [name, values] : {std::pair{"/history/objective", &contents.objective_history},
                                       std::pair{"/history/kl", &contents.kl_history}}) {
      const Handle dset = create_dataset(local, f, name, H5T_IEEE_F64LE, {values->size()});
      local.require(values->empty() || H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                                                H5P_DEFAULT, values->data()) >= 0,
                    fmt::format("writing dataset {} failed", name));
    }
    file->publish(extra.temporary_tag.empty() ? std::to_string(getpid()) : extra.temporary_tag,
                  durable, before_rename);
  });
  comm.check(problem.empty(), problem, kExitWrite);
}

ModelFileContents read_model(const Comm& comm, const std::string& path,
                             ModelFileExtras* extras) {
  silence_hdf5();
  const Ctx ctx{comm, path};
  const Handle file = open_for_read(ctx, Integrity::required);
  const hid_t f = file.get();
  ModelFileContents out;

  const StringAttrRead kind_attr = read_string_attr(f, "cmera_kind");
  const auto& kind = kind_attr.value;
  const auto version = get_int_attr(f, "format_version", 1);
  const auto require_version = [&] {
    ctx.require(version.has_value(), "no integer format_version attribute");
    ctx.require((*version)[0] == kModelFormatVersion,
                fmt::format("model format version {}, this cmera reads {}", (*version)[0],
                            kModelFormatVersion));
  };
  if (!kind) {
    const StringAttr problem = kind_attr.kind;
    ctx.require(problem != StringAttr::absent, "not a cmera model file (no cmera_kind attribute)");
    // Version 1 wrote variable-length strings: say so rather than blame the string.
    if (version) require_version();
    ctx.require(false, problem == StringAttr::variable_length
                           ? "attribute cmera_kind is a variable-length string; cmera files "
                             "store fixed-length strings (not written by this cmera)"
                           : "attribute cmera_kind is not a string");
  }
  if (extras) {
    ctx.require(*kind == extras->kind,
                fmt::format("is a cmera {} file, expected a {}", *kind, extras->kind));
    const auto& [key, expected] = extras->version;
    const auto v = get_int_attr(f, key, 1);
    ctx.require(v.has_value(), "no integer attribute " + key);
    ctx.require((*v)[0] == expected, fmt::format("{} format version {}, this cmera reads {}",
                                                 extras->kind, (*v)[0], expected));
  } else {
    ctx.require(*kind == "model" || *kind == "checkpoint",
                fmt::format("is a cmera {} file, expected a model", *kind));
  }
  require_version();

  // Provenance by its known names: iterating the attributes of an untrusted file
  // (H5Aiterate2) crashes inside HDF5 1.10 on some damaged headers
  // (tests/fuzz/corpus_model/regression-hdf5-H5Aiterate-segv.h5).
  for (const auto& name : provenance_keys())
    if (auto v = get_string_attr(f, name)) out.provenance.emplace_back(name, *v);
  {
    const Handle cfg = open_group(ctx, f, "/config");
    const auto toml = get_string_attr(cfg.get(), "toml");
    ctx.require(toml.has_value(), "no fixed-length string attribute toml on /config");
    out.config_toml = *toml;
  }

  const Handle model = open_group(ctx, f, "/model");
  const auto sites = get_int_attr(model.get(), "sites", 1);
  const auto depth = get_int_attr(model.get(), "depth", 1);
  const auto tied = get_int_attr(model.get(), "tied", 1);
  const auto chi = get_int_attr(model.get(), "chi", -1);
  ctx.require(sites && depth && tied && chi,
              "/model needs integer attributes sites, depth, tied and chi");
  ctx.require(static_cast<long long>(chi->size()) == (*depth)[0] + 1,
              fmt::format("/model attribute chi has {} entries, expected depth + 1 = {}",
                          chi->size(), (*depth)[0] + 1));
  Geometry g;
  g.sites = static_cast<long>((*sites)[0]);
  for (long long c : *chi) g.chi.push_back(static_cast<int>(c));
  std::string invalid;
  try {
    g.validate();
  } catch (const Error& e) {
    invalid = e.what();
  }
  ctx.require(invalid.empty(), "invalid model geometry in /model: " + invalid);
  // The tables are stored uncompressed in the file, so a geometry whose tables exceed the
  // file's size is damage (or a crafted file), refused before anything is allocated.
  const bool tied_model = (*tied)[0] != 0;
  double entries = std::pow(static_cast<double>(g.chi.back()), static_cast<double>(g.top_sites()));
  for (int l = 0; l < g.depth(); ++l) {
    const double d = g.chi[l], K = g.chi[l + 1];
    entries += (tied_model ? 1.0 : static_cast<double>(g.sites_at(l + 1))) * (K * d * d + d * d * d * d);
  }
  hsize_t file_bytes = 0;
  H5Fget_filesize(f, &file_bytes);
  ctx.require(8 * entries <= static_cast<double>(file_bytes),
              fmt::format("/model geometry (N = {}, chi = [{}]) needs {:.3g} bytes of tables, more "
                          "than the file's {} bytes (damaged?)",
                          g.sites, fmt::join(g.chi, ", "), 8 * entries, file_bytes));
  out.model = Model::uniform(g, tied_model);

  if (extras) {
    for (auto& [key, value] : extras->integers) {
      const auto v = get_int_attr(f, key, 1);
      ctx.require(v.has_value(), "no integer attribute " + key);
      value = (*v)[0];
    }
    for (auto& [key, value] : extras->strings) value = get_string_attr(f, key).value_or("");
    if (extras->before_tables) extras->before_tables(out.config_toml, *extras);
  }
  out.model.tables = read_table_set(ctx, f, "/model", out.model);
  out.objective_history = read_doubles(ctx, f, "/history/objective", {});
  out.kl_history = read_doubles(ctx, f, "/history/kl", {});
  if (extras) {
    extras->loaded.clear();
    for (const std::string& group : extras->table_sets)
      extras->loaded.push_back(read_table_set(ctx, f, group, out.model));
  }
  return out;
}

// File identity ---------------------------------------------------------------------

std::optional<FileIdentity> identify_cmera_file(const std::string& path, std::string& why_not) {
  silence_hdf5();
  const IntegrityCheck check = check_integrity(path);
  if (check.status != IntegrityStatus::verified) {
    why_not = check.status == IntegrityStatus::absent ? "not written by cmera (no cmera integrity block)"
                                                      : check.problem;
    return std::nullopt;
  }
  const Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  const auto kind = file.ok() ? get_string_attr(file.get(), "cmera_kind") : std::nullopt;
  if (!kind) {
    why_not = "not a cmera file (no cmera_kind attribute)";
    return std::nullopt;
  }
  FileIdentity id;
  id.kind = *kind;
  id.parameters = get_string_attr(file.get(), "parameters").value_or("");
  id.run_id = get_string_attr(file.get(), "run_id").value_or("");
  if (has_link(file.get(), "config")) {
    const Handle cfg(H5Gopen2(file.get(), "config", H5P_DEFAULT), H5Gclose);
    if (cfg.ok()) id.config_toml = get_string_attr(cfg.get(), "toml").value_or("");
  }
  return id;
}

// File summary ---------------------------------------------------------------------

std::string describe_file(const Comm& comm, const std::string& path) {
  silence_hdf5();
  const Ctx ctx{comm, path};
  bool verified = false;
  const Handle file = open_for_read(ctx, Integrity::if_present, &verified);
  const hid_t f = file.get();
  std::string out = fmt::format("file        {}\n", path);
  out += fmt::format("integrity   {}\n", verified ? "length and CRC-32 verified"
                                                  : "no cmera integrity block (not checked)");
  const auto kind = get_string_attr(f, "cmera_kind");
  out += fmt::format("kind        {}\n", kind ? *kind : "(not written by cmera: no cmera_kind)");

  // Integer root attributes (format versions, iteration, ...), then /model's geometry.
  for (const auto& name : attr_names(f))
    if (const auto v = get_int_attr(f, name, 1)) out += fmt::format("{:<11} {}\n", name, (*v)[0]);
  if (has_link(f, "model")) {
    const Handle model(H5Gopen2(f, "model", H5P_DEFAULT), H5Gclose);
    const auto sites = get_int_attr(model.get(), "sites", 1);
    const auto chi = get_int_attr(model.get(), "chi", -1);
    const auto tied = get_int_attr(model.get(), "tied", 1);
    if (sites && chi && tied)
      out += fmt::format("model       N = {}, chi = [{}], {}\n", (*sites)[0], fmt::join(*chi, ", "),
                         (*tied)[0] ? "tied" : "untied");
  }
  for (const char* name : {"/history/objective", "/history/kl"}) {
    if (!has_link(f, name)) continue;
    const auto h = read_doubles(ctx, f, name, {});
    if (!h.empty())
      out += fmt::format("{:<11} {:.12g} (last of {})\n", name + 9, h.back(), h.size());
  }

  // Every dataset, in name order.
  std::vector<std::string> names;
  H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC,
           [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
             static_cast<std::vector<std::string>*>(data)->emplace_back(name);
             return 0;
           },
           &names);
  out += "datasets\n";
  for (const std::string& name : names) {
    const Handle obj(H5Oopen(f, name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.ok() || H5Iget_type(obj.get()) != H5I_DATASET) continue;
    const Handle type(H5Dget_type(obj.get()), H5Tclose);
    const Handle space(H5Dget_space(obj.get()), H5Sclose);
    out += fmt::format("  /{:<40} {} {}\n", name, type_string(type.get()),
                       shape_string(dims_of(space.get())));
  }

  // Provenance: string root attributes, multi-line ones (config, parameters) abridged.
  out += "provenance\n";
  for (const auto& name : attr_names(f)) {
    if (name == "cmera_kind") continue;
    const StringAttrRead attr = read_string_attr(f, name);
    const auto& v = attr.value;
    if (!v) {
      if (attr.kind == StringAttr::variable_length)
        out += fmt::format("  {:<18} (variable-length string: not read)\n", name);
      continue;
    }
    const auto lines = std::count(v->begin(), v->end(), '\n');
    out += lines > 1 ? fmt::format("  {:<18} ({} lines; first: {})\n", name, lines,
                                   v->substr(0, v->find('\n')))
                     : fmt::format("  {:<18} {}\n", name, *v);
  }
  return out;
}

}  // namespace cmera
