// Cone sweep (forward + reverse = one training iteration's window work) against the same
// core's Eigen GEMM rate, measured in the same process. Flops are counted by formula from
// the kernel's own matrix products (window_kernels.cpp), including the isometry stages the
// reverse kernel recomputes instead of storing: that is the work the shipped code does.
// Trade-off: one thread (OpenMP off) so the ratio is per core; the scaling runs in
// jobs/bench-local.sh measure threads and ranks on the real program.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>

#include "cmera/init.hpp"
#include "cmera/window_sweep.hpp"

namespace {

// 2 m n k per product, summed over the products of descend_pair / ascend_pair for a
// coarse window emitting both children (every window of a full ring does).
double forward_flops(double d, double K) {
  const double iso = 2 * d * K * K * K + 2 * d * d * d * K * K + 2 * d * d * d * d * K;
  return iso + 8 * std::pow(d, 5);
}
double reverse_flops(double d, double K) {
  const double iso = 2 * d * K * K * K + 2 * d * d * d * K * K + 2 * d * d * d * d * K;
  const double back = 4 * d * d * d * d * K + 4 * d * d * d * K * K + 4 * d * K * K * K;
  return iso + 20 * std::pow(d, 5) + back;
}

double sweep_flops(const cmera::Geometry& g) {
  double f = 0;
  for (int l = 0; l < g.depth(); ++l)
    f += static_cast<double>(g.sites_at(l + 1)) * (forward_flops(g.chi[l], g.chi[l + 1]) +
                                                   reverse_flops(g.chi[l], g.chi[l + 1]));
  return f;
}

// Lattice sized so one sweep is ~1e8-1e9 flops at every chi; depth leaves 4 top sites.
cmera::Geometry geometry(int chi, int chi0) {
  const int log_n = chi <= 2 ? 16 : chi <= 4 ? 14 : 11;
  cmera::Geometry g;
  g.sites = 1L << log_n;
  g.chi.assign(static_cast<std::size_t>(log_n - 2 + 1), chi);
  g.chi[0] = chi0;
  return g;
}

// Synthetic statistics: each window a random distribution (the sweep's cost does not
// depend on the values, only on q > 0 everywhere, which this guarantees).
cmera::WindowStats random_stats(const cmera::Geometry& g) {
  cmera::WindowStats st;
  st.count = g.sites;
  st.d = g.chi[0];
  st.samples = 1;
  const long w = static_cast<long>(st.d) * st.d * st.d;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.1, 1.0);
  st.q.resize(static_cast<std::size_t>(g.sites * w));
  st.entropy.assign(static_cast<std::size_t>(g.sites), 0.0);
  for (long k = 0; k < g.sites; ++k) {
    double sum = 0;
    for (long x = 0; x < w; ++x) sum += st.q[k * w + x] = u(rng);
    for (long x = 0; x < w; ++x) st.q[k * w + x] /= sum;
  }
  return st;
}

void run_sweep(benchmark::State& state, int chi0) {
  const int chi = static_cast<int>(state.range(0));
  const bool tied = state.range(1) != 0;
  omp_set_num_threads(static_cast<int>(state.range(2)));
  const cmera::Geometry g = geometry(chi, chi0 ? chi0 : chi);
  const cmera::Model m = cmera::initialize_model(g, tied, cmera::InitKind::kRandom, 1.0, 3);
  const cmera::WindowStats stats = random_stats(g);
  cmera::WindowSweep sweep(g, 0, g.sites);
  cmera::Tables grad = cmera::Tables::zeros_like(m.tables);
  for (auto _ : state) {
    grad.fill(0.0);
    sweep.forward(m);
    sweep.gradient(m, stats, 1.0, grad);
    benchmark::DoNotOptimize(grad.top.data());
  }
  state.counters["flops"] = benchmark::Counter(sweep_flops(g), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["sites"] = static_cast<double>(g.sites);
  state.counters["chi"] = chi;
  omp_set_num_threads(omp_get_num_procs());
}

// Every layer at alphabet chi: the kernel's rate at chi (the chi).
void BM_Sweep(benchmark::State& state) { run_sweep(state, 0); }
// Binary data under chi: the bottom layer (half the windows) runs at d = 2.
void BM_SweepBinaryData(benchmark::State& state) { run_sweep(state, 2); }

BENCHMARK(BM_Sweep)->ArgNames({"chi", "tied", "threads"})
    ->ArgsProduct({{2, 4, 8}, {1}, {1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SweepBinaryData)->ArgNames({"chi", "tied", "threads"})
    ->ArgsProduct({{4, 8}, {1}, {1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Sweep)->ArgNames({"chi", "tied", "threads"})
    ->Args({4, 0, 1})->Args({4, 1, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

// The yardstick: one core's double GEMM, n x n, at a size that reaches Eigen's
// steady rate (256: panels fit L2) and at 64 (the largest operand of the chi = 8 kernel).
void BM_EigenGemm(benchmark::State& state) {
  const long n = state.range(0);
  Eigen::setNbThreads(1);
  const Eigen::MatrixXd a = Eigen::MatrixXd::Random(n, n), b = Eigen::MatrixXd::Random(n, n);
  Eigen::MatrixXd c = Eigen::MatrixXd::Zero(n, n);
  for (auto _ : state) {
    c.noalias() += a * b;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["flops"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EigenGemm)->ArgName("n")->Arg(64)->Arg(256)->UseRealTime();

}  // namespace
