// Reading a dataset's /configs (io.hpp, DatasetReader). Contiguous datasets are read
// collectively through MPI-IO, each rank its columns of a block of samples (of a lattice
// dataset [S, Ly, Lx], its periodic box of rows x columns); a chunked or
// compressed /configs is read by each rank through its own serial handle, whole chunks
// across all sites in chunk order, because collective reads of chunked data cost one
// chunk decode per rank per request. Trade-off: a chunked layout is read within a few
// times of contiguous, and the README says how to convert.
//
// Dataset file (written by dataset_writer.cpp)
//   /configs            uint8 [samples, sites] or [samples, Ly, Lx], contiguous; attribute
//                       alphabet (int32)
//                       (readers take any layout: chunked and gzip-compressed too)
//   root attributes     cmera_kind = "dataset", plus the caller's attributes (strings)
#include "cmera/io.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "hdf5_file.hpp"

namespace cmera {

using namespace h5;  // the io module's HDF5 toolkit

namespace {

// Collective: reads the `elems` bytes selected in `fspace` (none on a rank with nothing to
// read, which must still take part) into `out`, in file order; `selected` says whether
// building the selection succeeded. A failure is one error naming the samples.
void read_selection(const Ctx& ctx, hid_t dset, hid_t fspace, bool selected, hsize_t elems,
                    std::uint8_t* out, long first_sample, long count) {
  const hsize_t mdim = std::max<hsize_t>(elems, 1);
  Handle mspace(H5Screate_simple(1, &mdim, nullptr), H5Sclose);
  if (elems == 0) H5Sselect_none(mspace.get());
  const Handle dxpl = collective_dxpl();
  std::uint8_t nothing = 0;
  const bool ok = selected && H5Dread(dset, H5T_NATIVE_UINT8, mspace.get(), fspace, dxpl.get(),
                                      elems > 0 ? out : &nothing) >= 0;
  ctx.require(ok, fmt::format("reading /configs samples [{}, {}) failed", first_sample,
                              first_sample + count));
}

}  // namespace

DatasetReader::DatasetReader(const Comm& comm, const std::string& path, bool lattice_samples)
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
  auto dims = dims_of(space.get());
  const bool type_ok = H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1 &&
                       H5Tget_sign(type.get()) == H5T_SGN_NONE;
  ctx.require(lattice_samples || dims.size() != 3,
              fmt::format("/configs is {} {}, a grid dataset [S, Ly, Lx]; a chain model reads "
                          "[samples, sites] (write rows as samples with `cmera generate ising2d "
                          "--rows`, or reshape to [S*Ly, Lx])",
                          type_string(type.get()), shape_string(dims)));
  const char* expected = lattice_samples ? "uint8 [samples, sites] or [samples, Ly, Lx]"
                                         : "uint8 [samples, sites]";
  ctx.require(type_ok && (dims.size() == 2 || (lattice_samples && dims.size() == 3)),
              fmt::format("/configs is {} {} (rank {}), expected {}", type_string(type.get()),
                          shape_string(dims), dims.size(), expected));
  ctx.require(dims[0] >= 1, "/configs has zero samples");
  bool sane = true;
  for (hsize_t n : dims) sane = sane && n < (hsize_t{1} << 62);
  ctx.require(sane, fmt::format("/configs shape {} is beyond any real dataset (damaged?)",
                                shape_string(dims)));
  shape_.samples = static_cast<long>(dims[0]);
  shape_.sites = 1;
  for (std::size_t i = 1; i < dims.size(); ++i) {
    shape_.sample_dims.push_back(static_cast<long>(dims[i]));
    shape_.sites *= static_cast<long>(dims[i]);
  }
  ctx.require(shape_.sites >= 1, "/configs has zero sites");

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
  const int rank = static_cast<int>(dims.size());
  hsize_t chunk[3] = {0, 0, 0};
  if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED && H5Pget_chunk(dcpl.get(), rank, chunk) == rank) {
    chunk_rows_ = static_cast<long>(chunk[0]);
    chunk_cols_ = static_cast<long>(chunk[1]);
    // A 3D chunk is not a run of a sample's sites, so H5Dread_chunk's copy does not apply.
    hdf5_blocks_ = H5Pget_nfilters(dcpl.get()) > 0 || rank == 3;
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
    hsize_t chunks = 1;
    for (int i = 0; i < rank; ++i) chunks *= (dims[i] + chunk[i] - 1) / chunk[i];
    written = stored == chunks;
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
  if (hdf5_blocks_) {
    Handle fspace(H5Dget_space(dset_), H5Sclose);
    const int rank = 1 + static_cast<int>(shape_.sample_dims.size());
    const hsize_t start[3] = {static_cast<hsize_t>(lo), 0, 0};
    hsize_t block[3] = {static_cast<hsize_t>(hi - lo), 0, 0};
    for (int i = 1; i < rank; ++i) block[i] = static_cast<hsize_t>(shape_.sample_dims[i - 1]);
    // Memory shaped like the selection: otherwise HDF5 maps chunks element by element.
    Handle mspace(H5Screate_simple(rank, block, nullptr), H5Sclose);
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
  // A grid dataset read as [samples, Ly * Lx] (whole samples, or none on this rank): the
  // box of every row and column, which is the same bytes in the same order.
  if (shape_.is_grid() && (columns.length == 0 || (columns.start == 0 && columns.length == shape_.sites))) {
    const long rows = columns.length == 0 ? 0 : shape_.ly();
    read_box(first_sample, count, CyclicRange::make(0, rows, shape_.ly()),
             CyclicRange::make(0, rows == 0 ? 0 : shape_.lx(), shape_.lx()), out);
    return;
  }
  // An empty column range need not carry the right period: ranks without columns often
  // pass a default CyclicRange.
  const bool args_ok = shape_.sample_dims.size() == 1 && first_sample >= 0 && count >= 0 &&
                       first_sample + count <= shape_.samples &&
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
  read_selection(ctx, dset_, fspace.get(), ok, elems, out.data(), first_sample, count);
  if (tail > 0)
    for (long r = 0; r < count; ++r) {
      auto row = out.begin() + r * len;
      std::rotate(row, row + tail, row + len);
    }
}

void DatasetReader::read_box(long first_sample, long count, const CyclicRange& rows,
                             const CyclicRange& columns, std::vector<std::uint8_t>& out) const {
  const Ctx ctx{comm_, path_, kExitRuntime};
  const bool lattice = shape_.sample_dims.size() == 2;
  const long ly = lattice ? shape_.sample_dims[0] : 0, lx = lattice ? shape_.sample_dims[1] : 0;
  // As in read(), an empty range need not carry the right period.
  const auto range_ok = [](const CyclicRange& r, long period) {
    return r.length == 0 || (r.period == period && r.length > 0 && r.length <= period &&
                             r.start >= 0 && r.start < period);
  };
  const bool args_ok = lattice && first_sample >= 0 && count >= 0 &&
                       first_sample + count <= shape_.samples && range_ok(rows, ly) &&
                       range_ok(columns, lx);
  ctx.require(args_ok, fmt::format("box read of samples [{}, {}) rows start {} length {} columns "
                                   "start {} length {} is outside /configs [{}, {}]",
                                   first_sample, first_sample + count, rows.start, rows.length,
                                   columns.start, columns.length, shape_.samples,
                                   fmt::join(shape_.sample_dims, ", ")));
  const long h = rows.length, w = columns.length;
  out.resize(static_cast<std::size_t>(count * h * w));
  // A wrapped range is two blocks per axis: [start, start + head) and [0, tail).
  const long head_y = std::min(h, ly - rows.start), tail_y = h - head_y;
  const long head_x = std::min(w, lx - columns.start), tail_x = w - head_x;
  if (chunk_rows_ > 0) {
    const bool ok = count == 0 || h * w == 0 || load_rows(first_sample, count);
    ctx.require(ok, fmt::format("reading /configs samples [{}, {}) failed", first_sample,
                                first_sample + count));
    if (h * w == 0) return;
    for (long r = 0; r < count; ++r)
      for (long oy = 0; oy < h; ++oy) {
        const std::uint8_t* row =
            rows_.data() + ((first_sample - rows_first_ + r) * ly + rows.at(oy)) * lx;
        std::uint8_t* to = out.data() + (r * h + oy) * w;
        std::copy_n(row + columns.start, head_x, to);
        std::copy_n(row, tail_x, to + head_x);
      }
    return;
  }

  // Up to four blocks in one collective read; HDF5 delivers them in file order (rows
  // [0, tail_y) first, and in each row columns [0, tail_x) first), so rows and samples are
  // rotated into range order afterwards.
  Handle fspace(H5Dget_space(dset_), H5Sclose);
  bool ok = true;
  const hsize_t elems = static_cast<hsize_t>(count * h * w);
  if (elems == 0) {
    ok = H5Sselect_none(fspace.get()) >= 0;
  } else {
    H5S_seloper_t op = H5S_SELECT_SET;
    for (const auto& [y0, ny] : {std::pair{rows.start, head_y}, std::pair{0L, tail_y}})
      for (const auto& [x0, nx] : {std::pair{columns.start, head_x}, std::pair{0L, tail_x}}) {
        if (ny == 0 || nx == 0) continue;
        const hsize_t start[3] = {static_cast<hsize_t>(first_sample), static_cast<hsize_t>(y0),
                                  static_cast<hsize_t>(x0)};
        const hsize_t block[3] = {static_cast<hsize_t>(count), static_cast<hsize_t>(ny),
                                  static_cast<hsize_t>(nx)};
        ok = ok && H5Sselect_hyperslab(fspace.get(), op, start, nullptr, block, nullptr) >= 0;
        op = H5S_SELECT_OR;
      }
  }
  read_selection(ctx, dset_, fspace.get(), ok, elems, out.data(), first_sample, count);
  if (elems == 0) return;
  for (long r = 0; r < count; ++r) {
    const auto sample = out.begin() + r * h * w;
    if (tail_x > 0)
      for (long oy = 0; oy < h; ++oy) std::rotate(sample + oy * w, sample + oy * w + tail_x, sample + (oy + 1) * w);
    if (tail_y > 0) std::rotate(sample, sample + tail_y * w, sample + h * w);
  }
}

}  // namespace cmera
