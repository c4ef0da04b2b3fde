// One rank's share of a grid training iteration over a rank grid (docs/design-grid.md
// §5): the forward, objective and reverse sweep of rank 0's region (GridDecomposition of
// a 32 x 32 grid, depth 3, chi = 2, at P = 1 .. 16 ranks) in one process, beside the whole
// lattice (P = 1) in the same run. Counters: the region's windows over all layers, its 1D
// kernel calls (forward and reverse), and `work_share` = those calls over the whole
// lattice's, which the halo keeps above 1/P (the rest of the iteration is one allreduce of
// the tables, not measured here). Rank 0 is as busy as any: the blocks of 32 are equal.
// One thread, so the figures are per core.
#include <benchmark/benchmark.h>
#include <omp.h>

#include "cmera/grid_decomposition.hpp"
#include "cmera/grid_sampler.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/init.hpp"

namespace {

using cmera::grid::GridDecomposition;
using cmera::grid::GridRegion;
using cmera::grid::GridSweep;
using cmera::grid::GridWindowStats;

const cmera::GridLattice kGrid{32, 32, {2, 2, 2, 2}};

// Kernel calls of one iteration (forward + reverse) over `region`.
long iteration_calls(const cmera::GridModel& m, const GridRegion& region,
                     const GridWindowStats& q) {
  GridSweep sweep(m.lattice, region);
  cmera::GridModel grad = cmera::grid::zeros_like(m);
  sweep.forward(m);
  sweep.gradient(m, q, grad);
  return sweep.marginals().kernel_calls() + sweep.kernel_calls();
}

void BM_GridRankShare(benchmark::State& state) {
  omp_set_num_threads(1);
  const int ranks = static_cast<int>(state.range(0));
  const cmera::GridModel m =
      cmera::initialize_grid_model(kGrid, false, cmera::InitKind::kRandom, 1.0, 1);
  const GridDecomposition dec(kGrid, ranks, 0);
  const GridRegion& region = dec.region();
  // Histograms of rank 0's windows from 20 samples of another model (the sweep's cost does
  // not depend on the values).
  const cmera::GridModel source =
      cmera::initialize_grid_model(kGrid, false, cmera::InitKind::kRandom, 1.0, 2);
  const cmera::GridSampler sampler(source);
  GridWindowStats q(kGrid, dec.owned_x(), dec.owned_y());
  GridWindowStats all(kGrid);
  std::vector<std::uint8_t> config(static_cast<std::size_t>(kGrid.sites_at(0)));
  for (std::uint64_t k = 0; k < 20; ++k) {
    sampler.draw(3, k, config.data());
    q.add(config.data(), 1.0 / 20);
    all.add(config.data(), 1.0 / 20);
  }
  GridSweep sweep(kGrid, region);
  cmera::GridModel grad = cmera::grid::zeros_like(m);
  double objective = 0;
  for (auto _ : state) {
    sweep.forward(m);
    objective = sweep.objective(q);
    sweep.gradient(m, q, grad);
  }
  benchmark::DoNotOptimize(objective);
  double windows = 0;
  for (int l = 0; l <= kGrid.depth(); ++l) windows += static_cast<double>(region.windows(l));
  const long calls = sweep.marginals().kernel_calls() + sweep.kernel_calls();
  state.counters["ranks_x"] = dec.ranks_x();
  state.counters["ranks_y"] = dec.ranks_y();
  state.counters["windows"] = windows;
  state.counters["kernel_calls"] = static_cast<double>(calls);
  state.counters["work_share"] =
      static_cast<double>(calls) /
      static_cast<double>(iteration_calls(m, GridRegion::whole(kGrid), all));
}
BENCHMARK(BM_GridRankShare)
    ->ArgName("ranks")
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond);

}  // namespace
