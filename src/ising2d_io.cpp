// Parallel driver of `cmera generate ising2d` and the writer of lattice datasets
// (/configs uint8 [S, L, L]); see ising2d.hpp for the dataset order.
// Ranks take a BlockPartition of the chains; since a chain fills a fixed block of rows,
// each rank's rows are contiguous and one collective hyperslab write per rank puts them
// in place: no gather, and memory per rank is its own share of the samples.
// Trade-off: write_dataset_2d repeats a little of io.cpp's HDF5 plumbing (handles, the
// MPI-IO file access, temporary file then rename, error agreement through Comm::check)
// instead of widening io.hpp's interface for one generator.
//
// File written:
//   /configs            uint8 [samples, rows, cols], contiguous; attribute alphabet (int32)
//   root attributes     cmera_kind = "dataset", plus the caller's attributes (strings)
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>

#include "cmera/error.hpp"
#include "cmera/io.hpp"
#include "cmera/ising2d.hpp"

namespace cmera::ising2d {

namespace {

// Owns one HDF5 identifier; every rank unwinds the same scopes, so the collective
// closes happen in the same order everywhere.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
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
  hid_t id_;
  Closer close_;
};

bool put_string_attr(hid_t obj, const std::string& name, const std::string& value) {
  const Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);  // what h5py writes for str, as io.cpp does
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const Handle attr(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                               H5P_DEFAULT),
                    H5Aclose);
  const char* p = value.c_str();
  return attr.ok() && H5Awrite(attr.get(), type.get(), &p) >= 0;
}

bool put_int_attr(hid_t obj, const std::string& name, int value) {
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const Handle attr(H5Acreate2(obj, name.c_str(), H5T_STD_I32LE, space.get(), H5P_DEFAULT,
                               H5P_DEFAULT),
                    H5Aclose);
  return attr.ok() && H5Awrite(attr.get(), H5T_NATIVE_INT, &value) >= 0;
}

// The collective hyperslab write of samples [first, first + count) of /configs.
bool write_samples(hid_t dset, long first, long count, long rows, long cols,
                   const std::uint8_t* data) {
  const Handle fspace(H5Dget_space(dset), H5Sclose);
  const hsize_t start[3] = {static_cast<hsize_t>(first), 0, 0};
  const hsize_t block[3] = {static_cast<hsize_t>(count), static_cast<hsize_t>(rows),
                            static_cast<hsize_t>(cols)};
  const hsize_t elems = block[0] * block[1] * block[2];
  bool ok = elems > 0 ? H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, block,
                                            nullptr) >= 0
                      : H5Sselect_none(fspace.get()) >= 0;
  const hsize_t mdim = std::max<hsize_t>(elems, 1);
  const Handle mspace(H5Screate_simple(1, &mdim, nullptr), H5Sclose);
  if (elems == 0) H5Sselect_none(mspace.get());
  const Handle dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE);
  // A rank without samples still takes part; HDF5 rejects a null buffer, even unused.
  const std::uint8_t nothing = 0;
  return ok && H5Dwrite(dset, H5T_NATIVE_UINT8, mspace.get(), fspace.get(), dxpl.get(),
                        elems > 0 ? data : &nothing) >= 0;
}

}  // namespace

void write_dataset_2d(const Comm& comm, const std::string& path, long samples, long rows,
                      long cols, int alphabet, long first_sample,
                      const std::vector<std::uint8_t>& data, const Attributes& attrs) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // failures become one cmera::Error
  const auto require = [&](bool ok, const std::string& what) {
    comm.check(ok, path + ": " + what, kExitRuntime);
  };
  const long per_sample = rows * cols;
  const bool shape_ok = rows >= 1 && cols >= 1 && samples >= 1 &&
                        data.size() % static_cast<std::size_t>(std::max(per_sample, 1L)) == 0;
  const long mine = shape_ok ? static_cast<long>(data.size()) / per_sample : 0;
  require(shape_ok && first_sample >= 0 && first_sample + mine <= samples,
          fmt::format("rank {} samples [{}, +{} values) do not fit [{}, {}, {}]", comm.rank(),
                      first_sample, data.size(), samples, rows, cols));
  require(comm.sum(static_cast<long long>(mine)) == samples,
          fmt::format("ranks supply fewer or more than the {} samples", samples));

  // HDF5 metadata must be identical on every rank: everyone writes rank 0's attributes.
  const long long count = comm.max(comm.is_root() ? static_cast<long long>(attrs.size()) : 0LL);
  Attributes shared(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < shared.size(); ++i) {
    if (comm.is_root()) shared[i] = attrs[i];
    comm.broadcast(shared[i].first);
    comm.broadcast(shared[i].second);
  }

  // Written under a temporary name and renamed once complete, so a failed run never
  // leaves a truncated file where a good one was.
  std::string tmp = comm.is_root() ? fmt::format("{}.tmp.{}", path, getpid()) : std::string();
  comm.broadcast(tmp);
  try {
    {
      const Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
      H5Pset_fapl_mpio(fapl.get(), comm.raw(), MPI_INFO_NULL);
      H5Pset_coll_metadata_write(fapl.get(), true);
      Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
      require(file.ok(), "cannot create temporary file " + tmp +
                             " (does the directory exist and is it writable?)");
      {  // every object must be closed before the file (MPI-IO closes "semi" strictly)
        const hsize_t dims[3] = {static_cast<hsize_t>(samples), static_cast<hsize_t>(rows),
                                 static_cast<hsize_t>(cols)};
        const Handle space(H5Screate_simple(3, dims, nullptr), H5Sclose);
        const Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
        H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);  // every element is written
        const Handle dset(H5Dcreate2(file.get(), "configs", H5T_STD_U8LE, space.get(),
                                     H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                          H5Dclose);
        require(dset.ok(), fmt::format("cannot create dataset /configs [{}, {}, {}]", samples,
                                       rows, cols));
        require(write_samples(dset.get(), first_sample, mine, rows, cols, data.data()),
                "writing /configs failed");
        bool ok = put_int_attr(dset.get(), "alphabet", alphabet);
        // cmera_kind is reserved: the file says what it is, whatever the caller passed.
        for (const auto& [key, value] : shared)
          if (key != "cmera_kind") ok = ok && put_string_attr(file.get(), key, value);
        ok = ok && put_string_attr(file.get(), "cmera_kind", "dataset");
        require(ok, "writing attributes failed");
      }
      require(H5Fclose(file.release()) >= 0, "closing temporary file " + tmp + " failed");
    }
    std::string problem;
    if (comm.is_root()) {
      std::error_code ec;
      std::filesystem::rename(tmp, path, ec);
      if (ec) problem = fmt::format("cannot rename {} to it: {}", tmp, ec.message());
    }
    require(problem.empty(), problem);
  } catch (const Error&) {
    if (comm.is_root()) std::remove(tmp.c_str());
    comm.barrier();
    throw;
  }
}

void generate(const Comm& comm, const Params& params, const std::string& path, bool as_rows,
              const std::string& command) {
  const Params p = resolved(params);
  const BlockPartition chains{p.chains, comm.size()};
  const long first_chain = chains.begin(comm.rank()), last_chain = chains.end(comm.rank());
  const BlockPartition rows = rows_of_chains(p);
  const long first = rows.begin(static_cast<int>(first_chain));
  const long mine = rows.begin(static_cast<int>(last_chain)) - first;
  const long L = p.size;
  std::vector<std::uint8_t> data(static_cast<std::size_t>(mine * L * L));
  run_chains(p, first_chain, last_chain, data.data());

  const std::string params_toml = fmt::format(
      "generator = \"ising2d\"\nalgorithm = \"swendsen-wang\"\nsize = {}\nbeta = {:.17g}\n"
      "samples = {}\nchains = {}\nthermalization = {}\nsweeps_between = {}\nseed = {}\n"
      "layout = \"{}\"\norder = \"chain-major: rows [S*c/C, S*(c+1)/C) from chain c, "
      "in time order\"\n",
      L, p.beta, p.samples, p.chains, p.thermalization, p.sweeps_between, p.seed,
      as_rows ? "rows [S*L, L]" : "[S, L, L]");
  const Attributes attrs = provenance(command, params_toml);
  // A configuration's bytes are its L rows in order, so the same buffer serves both
  // layouts.
  if (as_rows)
    write_dataset(comm, path, p.samples * L, L, 2, first * L, data, attrs);
  else
    write_dataset_2d(comm, path, p.samples, L, L, 2, first, data, attrs);
}

}  // namespace cmera::ising2d
