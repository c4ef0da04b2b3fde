// Grid evaluation costs (grid_evaluate.hpp, docs/design-grid.md §5 "Evaluation"), each
// beside its own yardstick measured in the same process: the whole eval of a 32 x 32
// grid at depth 3 (data pass over 2000 samples in a file, window figures, data C(r)
// along three axes) against one GridWindowMarginals forward of the same grid (counter
// `forwards`); the flow against the same forward; and the scaling spectrum of the chi = 2
// window map (512 x 512) by the dense and the iterative solver (their time ratio is what
// the dense/iterative switch trades), and of the chi = 3 map (iterative). One rank, one
// thread: per-core figures.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <filesystem>

#include "cmera/grid_evaluate.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/grid_sampler.hpp"
#include "cmera/init.hpp"

namespace {

const cmera::GridLattice kLattice{32, 32, {2, 2, 2, 2}};

double forward_seconds(const cmera::GridModel& m) {
  cmera::grid::GridWindowMarginals w(m.lattice);
  const auto t0 = std::chrono::steady_clock::now();
  w.forward(m);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_GridEval(benchmark::State& state) {
  omp_set_num_threads(1);
  const cmera::Comm comm;
  const cmera::GridModel m = cmera::initialize_grid_model(kLattice, true, cmera::InitKind::kRandom, 1.0, 1);
  const long samples = 2000;
  const std::string path = (std::filesystem::temp_directory_path() / "cmera-bench-grid-eval.h5").string();
  const cmera::GridSampler sampler(m);
  std::vector<std::uint8_t> rows(static_cast<std::size_t>(samples * kLattice.sites_at(0)));
  for (long k = 0; k < samples; ++k)
    sampler.draw(2, static_cast<std::uint64_t>(k), rows.data() + k * kLattice.sites_at(0));
  cmera::write_dataset(comm, path, samples, {kLattice.ly, kLattice.lx}, 2, 0, rows, {});
  const cmera::DatasetReader data(comm, path, true);
  double eval = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(cmera::evaluate_grid(comm, m, data, 0, 1024, {}));
    eval += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  state.counters["forwards"] = eval / static_cast<double>(state.iterations()) / forward_seconds(m);
  std::filesystem::remove(path);
}
BENCHMARK(BM_GridEval)->Unit(benchmark::kMillisecond);

void BM_GridFlow(benchmark::State& state) {
  omp_set_num_threads(1);
  const cmera::GridModel m = cmera::initialize_grid_model(kLattice, true, cmera::InitKind::kRandom, 1.0, 1);
  double flow = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(cmera::grid_layer_flow(m));
    flow += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  state.counters["forwards"] = flow / static_cast<double>(state.iterations()) / forward_seconds(m);
}
BENCHMARK(BM_GridFlow)->Unit(benchmark::kMillisecond);

void BM_GridSpectrum(benchmark::State& state) {
  omp_set_num_threads(1);
  const int chi = static_cast<int>(state.range(0));
  const cmera::GridLattice g{6, 6, {chi, chi}};  // one square layer: one chi^9 x chi^9 map
  const cmera::GridModel m = cmera::initialize_grid_model(g, true, cmera::InitKind::kDecimation, 0.3, 9);
  const auto how = state.range(1) ? cmera::EigenMethod::kIterative : cmera::EigenMethod::kDense;
  const cmera::Comm self(MPI_COMM_SELF);
  for (auto _ : state) benchmark::DoNotOptimize(cmera::grid_scaling_dimensions(self, m, 8, how));
}
// chi = 3 (19683 x 19683) only iteratively: dense would need 3 GiB and hours.
BENCHMARK(BM_GridSpectrum)->ArgNames({"chi", "iterative"})->Args({2, 0})->Args({2, 1})->Args({3, 1})
    ->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
