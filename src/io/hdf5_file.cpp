// Internal HDF5 toolkit of the io module (hdf5_file.hpp): shapes and types in messages,
// MPI-IO property lists, collective open for reading with the integrity check first,
// fixed-length string and integer attributes, whole-dataset reads and writes.
// Variable-length strings live in the file's global heap, and HDF5 1.10 follows a damaged
// heap into crashes and endless loops, which no caller can catch; so readers refuse them
// without touching the heap. A fixed-length attribute holds at most 64 KiB; the resolved
// config is far below that, and provenance abridges the one unbounded value.
#include "hdf5_file.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cmera/integrity.hpp"

namespace cmera::h5 {

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


// Collective open for reading. Rank 0 first tells apart "missing" from "not HDF5" (a
// failed H5Fopen alone does not say which) and verifies the integrity block, so that a
// damaged cmera file never reaches HDF5. `verified` (if given) says whether it had one.
Handle open_for_read(const Ctx& ctx, Integrity integrity, bool* verified) {
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


}  // namespace cmera::h5
