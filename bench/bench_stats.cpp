// Statistics pass: dataset bytes per second per rank through the real path (collective
// HDF5 chunk reads + window counting: count_window_stats for a chain's 3-site windows,
// count_grid_windows for a 64 x 64 grid's 3 x 3 windows, 512 cells each), beside two
// yardsticks from the same run: memcpy of a buffer the dataset's size (the copy bandwidth) and the HDF5 reads
// alone (what the pass costs before counting). The dataset is written once per process
// to a file under --bench_dir and read back from the page cache, as a rerun of training
// would. Trade-off: random values, not physics: counting cost does not depend on them.
#include <benchmark/benchmark.h>

#include <omp.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "cmera/comm.hpp"
#include "cmera/grid_objective.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/io.hpp"
#include "cmera/statistics.hpp"

namespace {

constexpr long kSites = 128;
constexpr long kSamples = 1L << 19;  // 64 MiB of /configs: beyond any cache level here
constexpr long kChunk = 16384;       // data.chunk_samples default

// The grid: as many bytes as the chain's dataset.
constexpr long kSide = 64;
constexpr long kGridSamples = kSamples * kSites / (kSide * kSide);

// A dataset of random bits, `samples` x `shape`, written once per process.
std::string write_random(const std::string& name, long samples, const std::vector<long>& shape) {
  const char* dir = std::getenv("CMERA_BENCH_DIR");
  const std::string p = std::string(dir ? dir : ".") + "/" + name;
  cmera::Comm comm;
  long sites = 1;
  for (const long n : shape) sites *= n;
  const cmera::BlockPartition rows{samples, comm.size()};
  std::vector<std::uint8_t> data(static_cast<std::size_t>(rows.count(comm.rank()) * sites));
  std::mt19937_64 rng(11 + comm.rank());
  for (auto& x : data) x = static_cast<std::uint8_t>(rng() & 1);
  cmera::write_dataset(comm, p, samples, shape, 2, rows.begin(comm.rank()), data, {});
  return p;
}

const std::string& dataset_path() {
  static const std::string path = write_random("bench_stats_data.h5", kSamples, {kSites});
  return path;
}

const std::string& grid_dataset_path() {
  static const std::string path = write_random("bench_stats_grid.h5", kGridSamples, {kSide, kSide});
  return path;
}

void set_bytes(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * kSamples * kSites);
  state.counters["dataset_bytes"] = static_cast<double>(kSamples * kSites);
}

void BM_Memcpy(benchmark::State& state) {
  std::vector<std::uint8_t> src(kSamples * kSites, 1), dst(kSamples * kSites, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

void BM_DatasetRead(benchmark::State& state) {
  cmera::Comm comm;
  cmera::DatasetReader data(comm, dataset_path());
  const cmera::CyclicRange cols = cmera::CyclicRange::make(0, kSites, kSites);
  std::vector<std::uint8_t> buf;
  for (auto _ : state)
    for (long s0 = 0; s0 < kSamples; s0 += kChunk) {
      data.read(s0, std::min(kChunk, kSamples - s0), cols, buf);
      benchmark::DoNotOptimize(buf.data());
    }
  set_bytes(state);
}

void BM_StatisticsPass(benchmark::State& state) {
  omp_set_num_threads(1);
  cmera::Comm comm;
  cmera::DatasetReader data(comm, dataset_path());
  for (auto _ : state) {
    const cmera::WindowStats st = cmera::count_window_stats(comm, data, 2, 0, kSites, kChunk);
    benchmark::DoNotOptimize(st.q.data());
  }
  set_bytes(state);
}

void BM_GridStatisticsPass(benchmark::State& state) {
  omp_set_num_threads(1);
  cmera::Comm comm;
  cmera::DatasetReader data(comm, grid_dataset_path(), true);
  const cmera::GridLattice g{kSide, kSide, {2, 2}};
  for (auto _ : state) {
    cmera::grid::GridWindowStats st(g);
    const long box = st.box_x().length * st.box_y().length;
    cmera::grid::count_grid_windows(comm, data, cmera::read_block(comm, data, kChunk, kGridSamples, box, 1),
                                    {&st, 1});
    benchmark::DoNotOptimize(st.window(0, 0));
  }
  set_bytes(state);
}

BENCHMARK(BM_Memcpy)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DatasetRead)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StatisticsPass)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GridStatisticsPass)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
