// Internal HDF5 toolkit of the io module (not installed): an owning handle, the error
// agreement bound to one file (Ctx), collective open for reading, attributes, and whole
// dataset reads and writes. Every helper that can fail reports through Ctx::require, so all
// ranks raise the same cmera::Error at the same point. Trade-off: one small allreduce per
// step, negligible next to file I/O, against a rank throwing while the others wait.
#pragma once
#include <hdf5.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/error.hpp"
#include "cmera/io.hpp"

namespace cmera::h5 {

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
inline void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

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
  // Runs `check` (which throws cmera::Error naming what is wrong, e.g. a lattice's
  // validate()) and turns a throw into one refusal, `prefix` + its message, made through
  // require() so that every rank agrees.
  template <class Check>
  void require_passes(const Check& check, const std::string& prefix) const {
    std::string failure;
    try {
      check();
    } catch (const Error& e) {
      failure = e.what();
    }
    require(failure.empty(), prefix + failure);
  }
};

// Whether a file must carry cmera's integrity block (integrity.hpp).
enum class Integrity { required, if_present };

enum class StringAttr { fixed_length, absent, variable_length, other };

// A scalar string attribute: its value when it is fixed-length, else why not (absent,
// variable-length, or of another class or shape). Variable-length values are never read:
// see the header comment.
struct StringAttrRead {
  std::optional<std::string> value;
  StringAttr kind = StringAttr::absent;
};

std::string shape_string(const std::vector<hsize_t>& dims);

std::string type_string(hid_t type);

std::vector<hsize_t> dims_of(hid_t space);

Handle mpio_fapl(const Comm& comm);

Handle collective_dxpl();

// False also when an intermediate group of a path is missing (H5Lexists fails then).
bool has_link(hid_t loc, const std::string& name);

// Collective open for reading. Rank 0 first tells apart "missing" from "not HDF5" (a
// failed H5Fopen alone does not say which) and verifies the integrity block, so that a
// damaged cmera file never reaches HDF5. `verified` (if given) says whether it had one.
Handle open_for_read(const Ctx& ctx, Integrity integrity, bool* verified = nullptr);

// Creates (or replaces) attribute `name`; the value must be the same on every rank.
bool put_attr(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type,
              const std::vector<hsize_t>& dims, const void* value);

bool put_string_attr(hid_t obj, const std::string& name, const std::string& value);

bool put_int_attr(hid_t obj, const std::string& name, long long value, hid_t file_type);

bool put_int_array_attr(hid_t obj, const std::string& name, const std::vector<int>& v);

Handle open_attr(hid_t obj, const std::string& name);

StringAttrRead read_string_attr(hid_t obj, const std::string& name);

std::optional<std::string> get_string_attr(hid_t obj, const std::string& name);

// Integer attribute values (converted to long long); nullopt when absent, not an
// integer, or not of the expected element count (-1: any).
std::optional<std::vector<long long>> get_int_attr(hid_t obj, const std::string& name,
                                                   long expected_count);

// Names of all attributes on obj, in creation-or-name order.
std::vector<std::string> attr_names(hid_t obj);

// Rank 0's value of a count on every rank.
long long root_value(const Comm& comm, std::size_t n);

// Rank 0's attributes on every rank: HDF5 metadata must be identical everywhere, and
// provenance (host, time) naturally differs between ranks.
Attributes broadcast_attrs(const Comm& comm, const Attributes& attrs);

Handle create_dataset(const Ctx& ctx, hid_t loc, const std::string& name, hid_t type,
                      const std::vector<hsize_t>& dims);

// Collective write of rows [first, first + rows) along the first dimension (all of the
// others); a rank with rows == 0 selects nothing but still takes part.
void write_rows(const Ctx& ctx, hid_t dset, const std::string& name, hid_t mem_type,
                long first, long rows, const void* data);

// Every rank reads all of dataset `name` (absolute; a floating-point array of shape
// `dims`, or of any 1-D length if dims is empty).
std::vector<double> read_doubles(const Ctx& ctx, hid_t file, const std::string& name,
                                 const std::vector<hsize_t>& dims);

Handle create_group(const Ctx& ctx, hid_t loc, const std::string& name);

Handle open_group(const Ctx& ctx, hid_t loc, const std::string& name);

}  // namespace cmera::h5
