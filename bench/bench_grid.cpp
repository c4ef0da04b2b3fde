// Grid 3 x 3 window marginals (docs/design-grid.md §3): every window of every layer of a
// 24 x 24 grid at depth 3 (3 x 3 top), per window, beside the chain's own window forward
// (WindowSweep on a 4096-site ring, same chi) measured in the same process: the grid
// descend builds its line maps from chain kernel calls (counter `calls_per_window`) and
// applies them as matrix products, so the ratio "grid window / chain window" is what a
// 3 x 3 window costs in chain windows. BM_GridIteration times one training iteration (forward,
// objective and reverse sweep, grid_sweep.hpp) on the same grid, so its time over
// BM_GridWindows' is the cost of an iteration in forwards. BM_GridPairSums times the exact
// pair marginals the pair terms need (docs/design-grid.md §6: offsets r e_x and r e_y at
// dyadic r up to L/2, summed over every site through the tied translation classes) at
// L = 64, depth 4 (a 4 x 4 top), chi = 2, beside BM_GridIteration64 (one window iteration
// on the same lattice); their ratio is the pair marginals' cost in window iterations. One
// thread, so the figures are per core.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <Eigen/Dense>

#include "cmera/grid_kernels.hpp"
#include "cmera/grid_pairs.hpp"
#include "cmera/grid_sampler.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/init.hpp"
#include "cmera/line_product.hpp"
#include "cmera/window_sweep.hpp"

namespace {

void BM_GridWindows(benchmark::State& state) {
  omp_set_num_threads(1);
  const int chi = static_cast<int>(state.range(0));
  const cmera::GridLattice g{24, 24, std::vector<int>(4, chi)};
  const cmera::GridModel m =
      cmera::initialize_grid_model(g, true, cmera::InitKind::kRandom, 1.0, 1);
  cmera::grid::GridWindowMarginals w(g);
  for (auto _ : state) w.forward(m);
  const double windows = static_cast<double>(g.sites_at(0) + g.sites_at(1) + g.sites_at(2));
  state.counters["s_per_window"] = benchmark::Counter(
      windows, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["calls_per_window"] = static_cast<double>(w.kernel_calls()) / windows;
}
BENCHMARK(BM_GridWindows)->ArgName("chi")->Arg(2)->Arg(3)->Unit(benchmark::kMillisecond);

// One window-objective iteration (forward, objective, reverse sweep) of a tied L x L grid
// at depth `depth`.
void grid_iteration(benchmark::State& state, long L, int depth) {
  omp_set_num_threads(1);
  const int chi = static_cast<int>(state.range(0));
  const cmera::GridLattice g{L, L, std::vector<int>(depth + 1, chi)};
  const cmera::GridModel m =
      cmera::initialize_grid_model(g, true, cmera::InitKind::kRandom, 1.0, 1);
  // Data: per-window histograms of 20 samples of another model (the sweep's
  // cost does not depend on the values, only on the lattice).
  const cmera::GridModel source =
      cmera::initialize_grid_model(g, true, cmera::InitKind::kRandom, 1.0, 2);
  const cmera::GridSampler sampler(source);
  cmera::grid::GridWindowStats q(g);
  std::vector<std::uint8_t> config(static_cast<std::size_t>(g.sites_at(0)));
  for (std::uint64_t k = 0; k < 20; ++k) {
    sampler.draw(3, k, config.data());
    q.add(config.data(), 1.0 / 20);
  }
  cmera::grid::GridSweep sweep(g);
  cmera::GridModel grad = cmera::grid::zeros_like(m);
  double objective = 0;
  for (auto _ : state) {
    sweep.forward(m);
    objective = sweep.objective(q);
    sweep.gradient(m, q, grad);
  }
  benchmark::DoNotOptimize(objective);
  double windows = 0;
  for (int l = 0; l < depth; ++l) windows += static_cast<double>(g.sites_at(l));
  state.counters["s_per_window"] = benchmark::Counter(
      windows, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["reverse_calls_per_window"] = static_cast<double>(sweep.kernel_calls()) / windows;
}
void BM_GridIteration(benchmark::State& state) { grid_iteration(state, 24, 3); }
BENCHMARK(BM_GridIteration)->ArgName("chi")->Arg(2)->Unit(benchmark::kMillisecond);
void BM_GridIteration64(benchmark::State& state) { grid_iteration(state, 64, 4); }
BENCHMARK(BM_GridIteration64)->ArgName("chi")->Arg(2)->Unit(benchmark::kMillisecond);

// Window marginals, then every pair_sum of the pair terms' offsets.
void BM_GridPairSums(benchmark::State& state) {
  omp_set_num_threads(1);
  const int chi = static_cast<int>(state.range(0));
  const cmera::GridLattice g{64, 64, std::vector<int>(5, chi)};
  const cmera::GridModel m =
      cmera::initialize_grid_model(g, true, cmera::InitKind::kRandom, 1.0, 1);
  cmera::grid::GridWindowMarginals w(g);
  double total = 0;
  for (auto _ : state) {
    w.forward(m);
    cmera::grid::GridSetMarginals sets(m, w);
    for (long r = 2; r <= g.lx / 2; r *= 2)
      for (const auto& p : {sets.pair_sum(r, 0), sets.pair_sum(0, r)}) total += p[0];
  }
  benchmark::DoNotOptimize(total);
}
BENCHMARK(BM_GridPairSums)->ArgName("chi")->Arg(2)->Unit(benchmark::kMillisecond);

// Yardstick: the chain's forward sweep, per coarse window (one descend_pair emitting both
// children).
void BM_ChainWindows(benchmark::State& state) {
  omp_set_num_threads(1);
  const int chi = static_cast<int>(state.range(0));
  const cmera::Geometry g{4096, std::vector<int>(11, chi)};
  const cmera::Model m = cmera::initialize_model(g, true, cmera::InitKind::kRandom, 1.0, 1);
  cmera::WindowSweep sweep(g, 0, g.sites);
  for (auto _ : state) sweep.forward(m);
  double windows = 0;
  for (int l = 1; l <= g.depth(); ++l) windows += static_cast<double>(g.sites_at(l));
  state.counters["s_per_window"] = benchmark::Counter(
      windows, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ChainWindows)->ArgName("chi")->Arg(2)->Arg(3)->Unit(benchmark::kMillisecond);

// The line-step kernels (line_product.hpp) against Eigen's general product on the same
// operands, on the shapes the pair terms spend most of their time in at L = 64, chi = 2
// (np = nq = 16 with about 140 spectators, np = nq = 8 with about 420), on one long
// joint, and on the largest at L = 256 (np = 64, nq = 32, 4096 spectators). kernel:
// 0 line_apply, 1 its adjoint in the joint, 2 in the map, 3 Eigen's out = C J^T (the
// product line_apply replaced). Counter flops: 2 np nq K per call.
void BM_LineProduct(benchmark::State& state) {
  const long np = state.range(0), nq = state.range(1), K = state.range(2);
  const int kernel = static_cast<int>(state.range(3));
  std::vector<double> C(np * nq, 0.3), J(K * nq, 0.7), out(np * K, 0.1), g_J(K * nq), g_C(np * nq);
  for (auto _ : state) {
    switch (kernel) {
      case 0:
        cmera::line_apply(np, nq, K, C.data(), J.data(), out.data());
        break;
      case 1:
        cmera::line_apply_adjoint_joint(np, nq, K, C.data(), out.data(), g_J.data(), false);
        break;
      case 2:
        cmera::line_apply_adjoint_map(np, nq, K, out.data(), J.data(), g_C.data(), false);
        break;
      default:
        Eigen::Map<Eigen::MatrixXd>(out.data(), np, K).noalias() =
            Eigen::Map<const Eigen::MatrixXd>(C.data(), np, nq) *
            Eigen::Map<const Eigen::MatrixXd>(J.data(), K, nq).transpose();
    }
    benchmark::ClobberMemory();
  }
  state.counters["flops"] = benchmark::Counter(static_cast<double>(2 * np * nq * K),
                                               benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_LineProduct)
    ->ArgNames({"np", "nq", "K", "kernel"})
    ->ArgsProduct({{16}, {16}, {141}, {0, 1, 2, 3}})
    ->ArgsProduct({{8}, {8}, {422}, {0, 1, 2, 3}})
    ->ArgsProduct({{4}, {8}, {32768}, {0, 1, 2, 3}})
    ->ArgsProduct({{64}, {32}, {4096}, {0, 1, 2, 3}});

}  // namespace
