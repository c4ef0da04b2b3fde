// Factorized pair terms (pair_terms.hpp) against the plain reference, one two-site
// ConePlan per pair, on lattices large enough that pairs meet at every layer (the
// brute-force checks of test_flow_mpi stop at N = 16): joint marginals to 1e-13 and the
// gradient entry by entry, raw (not only along normalized tables: EM's counts see every
// entry), including chi = 2 chains whose top holds 4, 8 and 16 sites. The reference's own
// gradient is checked against a five-point central difference of its log-likelihood, EM
// on the pair terms alone must be monotone, the gradient must stay inside the tables the
// terms say they read, results must not depend on the thread count, and the pair terms'
// operation count must stay within a small multiple of the windows' at every top size
// (the cost once exploded with the top: every pair marginalized the whole top table).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <utility>
#include <string>

#include "cmera/optimizer.hpp"
#include "cmera/pair_terms.hpp"
#include "cmera/rng.hpp"
#include "cmera/window_sweep.hpp"
#include "model_cases.hpp"

namespace cmera {
namespace {

using Case = testing::ModelCase;
using testing::label;
using testing::random_model;

// Every `stride`-th left site, dyadic and (unless dyadic_only) odd distances; q random and
// positive per pair.
PairStats random_stats(const Case& c, std::uint64_t seed, long stride = 1, bool dyadic_only = false) {
  PairStats st;
  st.d = c.chi[0];
  st.distances = dyadic_distances(c.sites);
  if (!dyadic_only)
    for (long r : {1L, 3L, 5L, 11L, c.sites / 2 - 1}) st.distances.push_back(r);
  for (long i = 0; i < c.sites; i += stride) st.sites.push_back(i);
  const std::size_t dd = static_cast<std::size_t>(st.d) * st.d;
  auto rng = stream_rng(seed, Stream::kGenerate, 0);
  for (std::size_t k = 0; k < st.distances.size() * st.sites.size(); ++k) {
    double s = 0;
    const std::size_t at = st.q.size();
    for (std::size_t x = 0; x < dd; ++x) s += st.q.emplace_back(0.05 + uniform01(rng));
    for (std::size_t x = 0; x < dd; ++x) st.q[at + x] /= s;
  }
  return st;
}

// The unfactorized reference: one two-site ConePlan per pair, value and reverse pass.
class Reference {
 public:
  Reference(const Geometry& g, const PairStats& st) : stats_(st) {
    for (long r : st.distances)
      for (long i : st.sites) plans_.emplace_back(g, 0, std::vector<long>{i, i + r});
  }
  const std::vector<double>& marginal(const Model& m, std::size_t k) { return plans_[k].forward(m); }
  void gradient(const Model& m, double weight, Tables& grad) {
    const std::size_t dd = static_cast<std::size_t>(stats_.d) * stats_.d;
    std::vector<double> g(dd);
    for (std::size_t k = 0; k < plans_.size(); ++k) {
      const std::vector<double>& p = plans_[k].forward(m);
      for (std::size_t x = 0; x < dd; ++x) g[x] = weight * stats_.q[k * dd + x] / p[x];
      plans_[k].backward(m, g, grad);
    }
  }

 private:
  const PairStats& stats_;
  std::vector<ConePlan> plans_;
};

// Visits every conditional row of a Tables (W and U rows per table, the top as one row).
void for_each_row(Tables& t, const std::function<void(const std::string&, double*, std::size_t)>& f) {
  for (std::size_t l = 0; l < t.layers.size(); ++l) {
    LayerTables& lt = t.layers[l];
    const std::size_t row = static_cast<std::size_t>(lt.d) * lt.d;
    for (std::size_t o = 0; o < lt.W.size(); o += row) f("W" + std::to_string(l), lt.W.data() + o, row);
    for (std::size_t o = 0; o < lt.U.size(); o += row) f("U" + std::to_string(l), lt.U.data() + o, row);
  }
  f("top", t.top.data(), t.top.size());
}

// Every entry of a Tables, in for_each_row order.
std::vector<double> entries(Tables t) {
  std::vector<double> out;
  for_each_row(t, [&](const std::string&, double* v, std::size_t n) { out.insert(out.end(), v, v + n); });
  return out;
}

std::vector<Case> reference_cases() {
  return {{256, {2, 2, 2, 2, 2, 2}, true},
          {128, {2, 3, 4, 3, 2}, false},
          {64, {2, 4, 4, 2}, false},
          {96, {3, 2, 3, 2}, true},
          // chi = 2 chains with 4, 8 and 16 top sites, tied and untied
          {128, {2, 2, 2, 2, 2, 2}, true},
          {128, {2, 2, 2, 2, 2, 2}, false},
          {128, {2, 2, 2, 2, 2}, true},
          {128, {2, 2, 2, 2, 2}, false},
          {128, {2, 2, 2, 2}, true},
          {128, {2, 2, 2, 2}, false}};
}

TEST(PairTerms, MarginalsAndGradientsEqualTheTwoSiteConeReference) {
  std::uint64_t seed = 900;
  PairTerms::Sharing most;  // over the tied cases: every shared path must be exercised
  for (const Case& c : reference_cases()) {
    const Model m = random_model(c, seed++);
    const PairStats st = random_stats(c, seed++);
    PairTerms terms(m.geometry, st, 0.7);
    Reference ref(m.geometry, st);
    terms.log_likelihood(m);
    int deepest = 0;
    double worst_p = 0;
    for (std::size_t k = 0; k < st.q.size() / (st.d * st.d); ++k) {
      deepest = std::max(deepest, terms.meeting_layer(k));
      const std::vector<double>& want = ref.marginal(m, k);
      const std::vector<double>& got = terms.marginal(k);
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t x = 0; x < want.size(); ++x) worst_p = std::max(worst_p, std::abs(got[x] - want[x]));
    }
    EXPECT_LT(worst_p, 1e-13) << label(c);
    // Pairs must meet well above the bottom, or the factorized path is not exercised.
    EXPECT_GE(deepest, m.depth() - 2) << label(c);
    const PairTerms::Sharing sharing = terms.sharing();
    if (c.tied) {  // (a class may not pay where d^2 is large: the d = 3 case shares none)
      most.pairs = std::max(most.pairs, sharing.pairs);
      most.reordered = std::max(most.reordered, sharing.reordered);
      most.layers = std::max(most.layers, sharing.layers);
    } else {
      EXPECT_EQ(sharing.pairs, 0u) << label(c);
    }

    Tables got = Tables::zeros_like(m.tables), want = Tables::zeros_like(m.tables);
    terms.gradient(m, 1.0, got);
    ref.gradient(m, 0.7, want);
    const std::vector<double> a = entries(got), b = entries(want);
    double scale = 0, worst = 0;
    for (double v : b) scale = std::max(scale, std::abs(v));
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    EXPECT_LT(worst, 1e-12 * scale) << label(c);
    std::printf("  %-26s deepest meeting layer %d, shared %zu (%zu reordered, up to %d layers), "
                "max |dp| %.1e, max |dg| %.1e of %.1e\n",
                label(c).c_str(), deepest, sharing.pairs, sharing.reordered, sharing.layers, worst_p, worst, scale);
  }
  EXPECT_GT(most.pairs, 0u) << "no tied case shared a pair class";
  EXPECT_GT(most.reordered, 0u) << "no shared pair's start marginal was reordered by a translation";
  EXPECT_GT(most.layers, 1) << "no pair class spans more than one layer";
}

// Finite differences of the reference log-likelihood (one two-site cone per pair),
// entry by entry, against the factorized gradient: together with the test above this
// also checks the reference's own reverse pass (ConePlan::backward).
TEST(PairTerms, GradientMatchesFiniteDifferencesOfEveryEntry) {
  std::uint64_t seed = 950;
  for (const Case& c : std::vector<Case>{{32, {2, 3, 2}, false}, {32, {2, 2, 2}, true}}) {
    Model m = random_model(c, seed++);
    const PairStats st = random_stats(c, seed++, 5);
    PairTerms terms(m.geometry, st, 0.7);
    terms.log_likelihood(m);
    Tables grad = Tables::zeros_like(m.tables);
    terms.gradient(m, 1.0, grad);
    const std::vector<double> g = entries(grad);
    Reference ref(m.geometry, st);
    const std::size_t dd = static_cast<std::size_t>(st.d) * st.d;
    auto objective = [&] {
      double total = 0;
      for (std::size_t k = 0; k < st.q.size() / dd; ++k) {
        const std::vector<double>& p = ref.marginal(m, k);
        for (std::size_t x = 0; x < dd; ++x) total += 0.7 * st.q[k * dd + x] * std::log(p[x]);
      }
      return total;
    };
    constexpr double h = 1e-4;
    std::size_t k = 0;
    double worst = 0;
    for_each_row(m.tables, [&](const std::string& name, double* v, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i, ++k) {
        const double x0 = v[i];
        auto f = [&](double dx) {
          v[i] = x0 + dx;
          return objective();
        };
        const double fd = (8.0 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12.0 * h);
        v[i] = x0;
        const double rel = std::abs(g[k] - fd) / std::max({std::abs(g[k]), std::abs(fd), 1e-3});
        worst = std::max(worst, rel);
        EXPECT_LT(rel, 1e-6) << label(c) << " " << name << " grad " << g[k] << " fd " << fd;
      }
    });
    std::printf("  %-26s %5zu entries, worst relative error %.2e\n", label(c).c_str(), k, worst);
  }
}

// EM on the pair terms alone never decreases them (each term is the marginal of a
// Bayesian sub-network, the union of the two cones).
TEST(PairTerms, EmIsMonotoneOnPairTermsAlone) {
  std::uint64_t seed = 970;
  for (const Case& c : std::vector<Case>{{64, {2, 2, 2, 2}, true}, {64, {2, 3, 2, 2}, false}}) {
    Model m = random_model(c, seed++);
    const PairStats st = random_stats(c, seed++, 3);
    PairTerms terms(m.geometry, st, 1.0);
    auto em = make_em({0.0, 1000.0});
    UpdateScope scope;
    for (int l = 0; l < m.depth(); ++l) {
      scope.first.push_back(0);
      scope.count.push_back(m.geometry.sites_at(l + 1));
    }
    const double start = terms.log_likelihood(m);
    double prev = start;
    for (int it = 0; it < 20; ++it) {
      Tables grad = Tables::zeros_like(m.tables);
      terms.gradient(m, 1.0, grad);
      em->step(m, grad, scope);
      ASSERT_LT(m.normalization_error(), 1e-12) << label(c);
      const double now = terms.log_likelihood(m);
      EXPECT_GE(now, prev - 1e-12 * std::abs(prev)) << label(c) << " EM decreased at iteration " << it;
      prev = now;
    }
    EXPECT_GT(prev, start + 1e-3) << label(c) << " EM made no progress";
    std::printf("  %-26s EM pair log-likelihood %.6f -> %.6f\n", label(c).c_str(), start, prev);
  }
}

// Tables a rank's pair terms touch must include every one their gradient reaches, or the
// untied halo exchange would leave stale rows in some cone.
TEST(PairTerms, GradientStaysInsideTablesRead) {
  const Case c{128, {2, 3, 4, 3, 2}, false};
  const Model m = random_model(c, 990);
  const PairStats st = random_stats(c, 991, 50);  // three left sites: 0, 50, 100
  PairTerms terms(m.geometry, st, 1.0);
  terms.log_likelihood(m);
  Tables grad = Tables::zeros_like(m.tables);
  terms.gradient(m, 1.0, grad);
  for (int l = 0; l < m.depth(); ++l) {
    const std::vector<long> read = terms.tables_read(l);
    const LayerTables& t = grad.layers[l];
    for (long j = 0; j < t.coarse; ++j) {
      if (std::binary_search(read.begin(), read.end(), j)) continue;
      for (std::size_t i = 0; i < t.w_size(); ++i) ASSERT_EQ(t.w(j)[i], 0.0) << "layer " << l << " W" << j;
      for (std::size_t i = 0; i < t.u_size(); ++i) ASSERT_EQ(t.u(j)[i], 0.0) << "layer " << l << " U" << j;
    }
    if (l == 0) EXPECT_LT(read.size(), static_cast<std::size_t>(t.coarse));
  }
}

// The same objective at 1 and 2 threads: the reverse pass adds into shared chains, nodes
// and tables in a fixed order, so value and gradient must agree bit for bit.
TEST(PairTerms, ResultsDoNotDependOnTheThreadCount) {
  std::uint64_t seed = 1000;
  for (const Case& c : std::vector<Case>{{128, {2, 3, 4, 3, 2}, false}, {256, {2, 2, 2, 2, 2, 2}, true}}) {
    const Model m = random_model(c, seed++);
    const PairStats st = random_stats(c, seed++);
    std::vector<double> value, grad[2];
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      PairTerms terms(m.geometry, st, 0.7);
      value.push_back(terms.log_likelihood(m));
      Tables g = Tables::zeros_like(m.tables);
      terms.gradient(m, 1.0, g);
      grad[threads - 1] = entries(g);
    }
    omp_set_num_threads(1);
    EXPECT_EQ(value[0], value[1]) << label(c);
    ASSERT_EQ(grad[0].size(), grad[1].size());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < grad[0].size(); ++i) differ += grad[0][i] != grad[1][i];
    EXPECT_EQ(differ, 0u) << label(c) << ": gradient entries differing between 1 and 2 threads";
  }
}

// Operation count (work_count(): multiply-adds and top-table entries visited) of one
// iteration's pair terms (forward and reverse, default dyadic distances and stride) over
// the windows' count, on one thread. Windows alone already visit the whole top table
// twice per top window; pairs must stay within a small multiple of that at every top
// size, and what a larger top adds to the pairs' count must stay below twice what it
// adds to the windows' (with a pass over the top table per distinct top set instead of
// per cover, measured 7 times; with one per pair and pass it was larger still).
TEST(PairTerms, OperationCountStaysNearTheWindowsAtEveryTopSize) {
  omp_set_num_threads(1);
  std::uint64_t seed = 1100;
  std::map<std::pair<bool, long>, std::pair<double, double>> counts;  // (tied, top) -> (windows, pairs)
  for (const Case& c : std::vector<Case>{{128, {2, 2, 2, 2, 2, 2}, true}, {128, {2, 2, 2, 2, 2, 2}, false},
                                         {128, {2, 2, 2, 2, 2}, true}, {128, {2, 2, 2, 2, 2}, false},
                                         {128, {2, 2, 2, 2}, true}, {128, {2, 2, 2, 2}, false}}) {
    const Model m = random_model(c, seed++);
    WindowStats ws;
    ws.first = 0;
    ws.count = c.sites;
    ws.d = c.chi[0];
    ws.q.assign(static_cast<std::size_t>(c.sites) * 8, 1.0 / 8);
    WindowSweep sweep(m.geometry, 0, c.sites);
    Tables grad = Tables::zeros_like(m.tables);
    const std::uint64_t w0 = work_count();
    sweep.forward(m);
    sweep.gradient(m, ws, 1.0, grad);
    const std::uint64_t windows = work_count() - w0;

    const PairStats st = random_stats(c, seed++, pair_stride(m.geometry, 0), true);
    PairTerms terms(m.geometry, st, 1.0);
    const std::uint64_t p0 = work_count();
    terms.log_likelihood(m);
    terms.gradient(m, 1.0, grad);
    const std::uint64_t pairs = work_count() - p0;
    const double ratio = static_cast<double>(pairs) / static_cast<double>(windows);
    std::printf("  %-26s top %2ld sites: windows %10llu, pairs %10llu operations, ratio %.2f\n",
                label(c).c_str(), m.geometry.top_sites(), static_cast<unsigned long long>(windows),
                static_cast<unsigned long long>(pairs), ratio);
    // Tied chains share their steps per class (about half the untied count at tops of 4
    // and 8 sites: 9.7 and 8.9 against 19.0 and 18.0, measured).
    EXPECT_LT(ratio, c.tied ? 12.0 : 25.0) << label(c);
    counts[{c.tied, m.geometry.top_sites()}] = {static_cast<double>(windows), static_cast<double>(pairs)};
  }
  for (bool tied : {true, false}) {
    const auto small = counts.at({tied, 4}), large = counts.at({tied, 16});
    const double growth = (large.second - small.second) / (large.first - small.first);
    std::printf("  %-6s top 4 -> 16: pairs' added operations / windows' = %.2f\n", tied ? "tied" : "untied", growth);
    EXPECT_LT(growth, 2.0) << (tied ? "tied" : "untied");
  }
}

}  // namespace
}  // namespace cmera
