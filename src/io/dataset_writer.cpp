// Writing dataset files (io.hpp, write_dataset): generators and `sample` write /configs
// uint8 [samples, sites] collectively, each rank its rows, in blocks of about 64 MiB per
// rank (dataset_block_rows), so memory does not grow with the sample count. The file is
// published through write_atomically (file_publish.hpp): disk space is reserved before
// any collective write, and the file replaces <path> only when complete.
#include "cmera/io.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "file_publish.hpp"

namespace cmera {

using namespace h5;  // the io module's HDF5 toolkit

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
  write_dataset(comm, path, total_samples, std::vector<long>{sites}, alphabet, draw, attrs);
}

void write_dataset(const Comm& comm, const std::string& path, long total_samples,
                   const std::vector<long>& sample_shape, int alphabet, const RowSource& draw,
                   const Attributes& attrs) {
  long sites = 1;
  for (long n : sample_shape) sites *= n;
  const long block = dataset_block_rows(comm, sites);
  write_dataset_file(comm, path, total_samples, sample_shape, alphabet, attrs, [&](const Ctx& c, hid_t dset) {
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

}  // namespace cmera
