// Pair terms per distance: forward + reverse of the multiscale pair terms (one training
// iteration's pair work) for one dyadic distance at a time, N = 4096, chi = [2, 4, 4, ...]
// (depth 10, 4 top sites), pair sites at the default stride (every 32nd site). Shows where
// the pair work goes: pairs meeting near the top, where a layer has few sites and the
// two cones cover most of it, dominate. Counter `meeting_layer`: mean layer at which the
// pairs' joints are formed. One thread, so the figures are per core.
#include <benchmark/benchmark.h>
#include <omp.h>

#include "cmera/init.hpp"
#include "cmera/pair_terms.hpp"
#include "cmera/siteset.hpp"

namespace {

void BM_PairTermsAtDistance(benchmark::State& state) {
  omp_set_num_threads(1);
  cmera::Geometry g{4096, std::vector<int>(11, 4)};
  g.chi[0] = 2;
  const cmera::Model m = cmera::initialize_model(g, true, cmera::InitKind::kRandom, 1.0, 1);
  cmera::PairStats st;
  st.d = 2;
  st.distances = {state.range(0)};
  for (long i = 0; i < g.sites; i += cmera::pair_stride(g, 0)) st.sites.push_back(i);
  st.q.assign(st.sites.size() * 4, 0.25);
  cmera::PairTerms terms(g, st, 1.0);
  cmera::Tables grad = cmera::Tables::zeros_like(m.tables);
  const std::uint64_t work_before = cmera::work_count();
  for (auto _ : state) {
    benchmark::DoNotOptimize(terms.log_likelihood(m));
    terms.gradient(m, 1.0, grad);
  }
  state.counters["work"] = benchmark::Counter(static_cast<double>(cmera::work_count() - work_before),
                                              benchmark::Counter::kAvgIterations);
  double meet = 0;
  for (std::size_t k = 0; k < st.sites.size(); ++k) meet += terms.meeting_layer(k);
  state.counters["pairs"] = static_cast<double>(st.sites.size());
  state.counters["meeting_layer"] = meet / static_cast<double>(st.sites.size());
}
BENCHMARK(BM_PairTermsAtDistance)->ArgName("r")->RangeMultiplier(2)->Range(2, 2048)
    ->Unit(benchmark::kMillisecond);

}  // namespace
