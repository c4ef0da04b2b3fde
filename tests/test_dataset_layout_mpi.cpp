// Dataset layouts at the current rank count: the same data written contiguous (as cmera
// writes it), in 1-row chunks, in gzip-compressed chunks that split the columns with
// partial edge chunks (as h5py's auto-chunking does) and, resizable, in chunks larger than
// the data must give exactly the same window and pair statistics and C(r), equal in turn to counts
// made directly from the array; read blocks of every size, including ones that end
// inside a chunk, are exercised through data.chunk_samples. Files are written with plain
// serial HDF5 on rank 0, the way h5py would write them.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/io.hpp"
#include "cmera/statistics.hpp"
#include "scratch_dir.hpp"

namespace cmera {
namespace {

namespace fs = std::filesystem;

constexpr long kSamples = 1000, kSites = 12;
constexpr int kAlphabet = 3;

struct Layout {
  std::string name;
  std::vector<hsize_t> chunk;  // empty: contiguous
  bool gzip = false;
  bool resizable = false;      // unlimited dimensions (chunks may exceed the data)
};

class DatasetLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(7);
    data.resize(kSamples * kSites);
    for (auto& x : data) x = static_cast<std::uint8_t>(rng() % kAlphabet);
  }

  // `data` as a [rows, kSites] dataset in layout l.
  std::string write(const Layout& l) const {
    const std::string path = scratch.file(l.name + ".h5");
    if (comm.is_root()) {
      const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
      const hsize_t dims[2] = {data.size() / kSites, kSites};
      const hsize_t unlimited[2] = {H5S_UNLIMITED, H5S_UNLIMITED};
      const hid_t s = H5Screate_simple(2, dims, l.resizable ? unlimited : nullptr);
      const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
      if (!l.chunk.empty()) H5Pset_chunk(dcpl, 2, l.chunk.data());
      if (l.gzip) H5Pset_deflate(dcpl, 4);
      const hid_t d = H5Dcreate2(f, "configs", H5T_STD_U8LE, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
      H5Dclose(d);
      H5Pclose(dcpl);
      H5Sclose(s);
      H5Fclose(f);
    }
    comm.barrier();
    return path;
  }

  Comm comm;
  cmera::testing::ScratchDir scratch{comm, "layout"};
  std::vector<std::uint8_t> data;
};

TEST_F(DatasetLayout, EveryLayoutGivesTheSameStatistics_mpi) {
  const std::vector<Layout> layouts = {{"contiguous", {}},
                                       {"rows1", {1, kSites}},
                                       {"gzip", {64, 5}, true},
                                       {"resizable_huge_chunk", {4096, 64}, false, true}};
  const BlockPartition windows{kSites, comm.size()};
  const long first = windows.begin(comm.rank()), count = windows.count(comm.rank());
  const std::vector<long> distances = {1, 3, 6};
  const long w = kAlphabet * kAlphabet * kAlphabet, dd = kAlphabet * kAlphabet;

  // Independent truth: counts straight from the array.
  std::vector<double> window_q(static_cast<std::size_t>(count * w), 0.0);
  std::vector<double> pair_q(distances.size() * count * dd, 0.0);
  for (long s = 0; s < kSamples; ++s) {
    const std::uint8_t* x = data.data() + s * kSites;
    for (long k = 0; k < count; ++k) {
      const long i = first + k;
      window_q[k * w + (x[i] * kAlphabet + x[(i + 1) % kSites]) * kAlphabet + x[(i + 2) % kSites]] += 1;
      for (std::size_t r = 0; r < distances.size(); ++r)
        pair_q[(r * count + k) * dd + x[i] * kAlphabet + x[(i + distances[r]) % kSites]] += 1;
    }
  }
  for (double& q : window_q) q /= kSamples;
  for (double& q : pair_q) q /= kSamples;

  std::vector<double> reference_corr;
  for (const Layout& l : layouts) {
    const std::string path = write(l);
    DatasetReader reader(comm, path);
    for (const long block : {1000L, 7L, 100L}) {  // whole file, inside chunks, across them
      SCOPED_TRACE(l.name + ", data.chunk_samples = " + std::to_string(block));
      const WindowStats ws = count_window_stats(comm, reader, kAlphabet, first, count, block);
      EXPECT_EQ(ws.q, window_q);
      const PairStats ps =
          count_pair_stats(comm, reader, kAlphabet, first, count, 1, distances, block);
      EXPECT_EQ(ps.q, pair_q);
      const std::vector<double> corr = data_correlation(comm, reader, kAlphabet, kSites / 2, block);
      if (reference_corr.empty()) reference_corr = corr;
      EXPECT_EQ(corr, reference_corr);
    }
  }
}

// objective.symmetry = "spin_flip": window and pair statistics averaged with their flips
// equal, to rounding, the statistics of the data followed by its flipped copy
// (x -> 2 - x at every site, written out as a second file), and so do the windows'
// entropies.
TEST_F(DatasetLayout, SpinFlipAverageEqualsTheDataWithItsFlippedCopy_mpi) {
  const std::string once = write({"once", {}});
  const std::vector<std::uint8_t> original = data;
  for (const std::uint8_t x : original) data.push_back(static_cast<std::uint8_t>(kAlphabet - 1 - x));
  const std::string both = write({"both", {}});
  const BlockPartition windows{kSites, comm.size()};
  const long first = windows.begin(comm.rank()), count = windows.count(comm.rank());
  const std::vector<long> distances = {1, 5};
  DatasetReader once_reader(comm, once), both_reader(comm, both);
  WindowStats ws = count_window_stats(comm, once_reader, kAlphabet, first, count, 100);
  PairStats ps = count_pair_stats(comm, once_reader, kAlphabet, first, count, 1, distances, 100);
  const WindowStats ws_truth = count_window_stats(comm, both_reader, kAlphabet, first, count, 100);
  const PairStats ps_truth =
      count_pair_stats(comm, both_reader, kAlphabet, first, count, 1, distances, 100);
  EXPECT_NE(ws.q, ws_truth.q);
  average_with_flip(ws);
  average_with_flip(ps);
  ASSERT_EQ(ws.q.size(), ws_truth.q.size());
  for (std::size_t k = 0; k < ws.q.size(); ++k) EXPECT_NEAR(ws.q[k], ws_truth.q[k], 1e-15) << k;
  for (long k = 0; k < count; ++k) EXPECT_NEAR(ws.entropy[k], ws_truth.entropy[k], 1e-14) << k;
  ASSERT_EQ(ps.q.size(), ps_truth.q.size());
  for (std::size_t k = 0; k < ps.q.size(); ++k) EXPECT_NEAR(ps.q[k], ps_truth.q[k], 1e-15) << k;
}

}  // namespace
}  // namespace cmera
