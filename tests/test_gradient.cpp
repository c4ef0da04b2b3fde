// Reverse pass and optimizers (docs/design.md §3, §4). WindowSweep::gradient is checked entry by
// entry (every W, U and top entry of small models, tied and untied) against a
// five-point central difference of log_likelihood, which is w.r.t. the RAW entries
// (no renormalization after the perturbation). The five-point stencil (error O(h^4))
// lets h be large enough (1e-4) that rounding stays ~1e-11, so the 1e-6 relative bound
// has no false alarms. Block sweeps (one rank's windows) must sum to the full gradient;
// EM must never decrease the objective; an Adam run must raise it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>

#include "cmera/init.hpp"
#include "cmera/optimizer.hpp"
#include "cmera/rng.hpp"
#include "cmera/window_sweep.hpp"

namespace {

using cmera::Geometry;
using cmera::Model;
using cmera::Tables;
using cmera::WindowStats;

struct Case {
  std::vector<int> chi;
  bool tied;
};
constexpr long kSites = 12;

std::string label(const Case& c) {
  std::string s = "chi=[";
  for (std::size_t i = 0; i < c.chi.size(); ++i) s += (i ? "," : "") + std::to_string(c.chi[i]);
  return s + "]" + (c.tied ? " tied" : " untied");
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const auto& chi : std::vector<std::vector<int>>{{2, 2}, {2, 3}, {2, 2, 2}})
    for (bool tied : {false, true}) out.push_back({chi, tied});
  return out;
}

Model random_model(const Case& c, std::uint64_t seed) {
  return cmera::initialize_model(Geometry{kSites, c.chi}, c.tied, cmera::InitKind::kRandom, 1.0,
                                 seed);
}

void fill_entropy(WindowStats& st) {
  const std::size_t w = static_cast<std::size_t>(st.d) * st.d * st.d;
  st.entropy.assign(st.count, 0.0);
  for (long k = 0; k < st.count; ++k)
    for (std::size_t x = 0; x < w; ++x) {
      const double q = st.q[k * w + x];
      if (q > 0) st.entropy[k] -= q * std::log(q);
    }
}

// Independent random distributions per window (inconsistent across windows on purpose:
// the objective and its gradient must not rely on q being a marginal of anything).
WindowStats random_stats(int d, std::uint64_t seed) {
  WindowStats st;
  st.first = 0;
  st.count = kSites;
  st.d = d;
  st.samples = 1000;
  const std::size_t w = static_cast<std::size_t>(d) * d * d;
  st.q.resize(kSites * w);
  auto rng = cmera::stream_rng(seed, cmera::Stream::kGenerate, 0);
  for (long k = 0; k < kSites; ++k) {
    double s = 0;
    for (std::size_t x = 0; x < w; ++x) s += (st.q[k * w + x] = -std::log(1.0 - cmera::uniform01(rng)));
    for (std::size_t x = 0; x < w; ++x) st.q[k * w + x] /= s;
  }
  fill_entropy(st);
  return st;
}

// Exact window marginals of another model: data the model family can represent.
WindowStats model_stats(const Model& source) {
  WindowStats st;
  st.first = 0;
  st.count = kSites;
  st.d = source.geometry.chi[0];
  st.samples = 1000;
  const std::size_t w = static_cast<std::size_t>(st.d) * st.d * st.d;
  cmera::WindowSweep sweep(source.geometry, 0, kSites);
  sweep.forward(source);
  for (long k = 0; k < kSites; ++k) st.q.insert(st.q.end(), sweep.bottom(k), sweep.bottom(k) + w);
  fill_entropy(st);
  return st;
}

// Mean per-window objective (1/windows) sum_s sum_x q log p.
double objective(cmera::WindowSweep& sweep, const Model& m, const WindowStats& st) {
  sweep.forward(m);
  return sweep.log_likelihood(st) / static_cast<double>(st.count);
}

// Visits every parameter array of a Tables (per layer W and U, then the top).
void for_each_array(Tables& t, const std::function<void(const std::string&, std::vector<double>&)>& f) {
  for (std::size_t l = 0; l < t.layers.size(); ++l) {
    f("W" + std::to_string(l), t.layers[l].W);
    f("U" + std::to_string(l), t.layers[l].U);
  }
  f("top", t.top);
}

cmera::UpdateScope full_scope(const Model& m) {
  cmera::UpdateScope s;
  for (int l = 0; l < m.depth(); ++l) {
    s.first.push_back(0);
    s.count.push_back(kSites >> (l + 1));
  }
  return s;
}

Tables gradient_of(cmera::WindowSweep& sweep, const Model& m, const WindowStats& st) {
  Tables g = Tables::zeros_like(m.tables);
  sweep.forward(m);
  sweep.gradient(m, st, 1.0 / static_cast<double>(st.count), g);
  return g;
}

TEST(Gradient, MatchesFiniteDifferencesOfEveryEntry) {
  std::uint64_t seed = 7;
  for (const Case& c : cases()) {
    Model m = random_model(c, seed++);
    const WindowStats st = random_stats(c.chi[0], seed++);
    cmera::WindowSweep sweep(m.geometry, 0, kSites);
    Tables grad = gradient_of(sweep, m, st);

    constexpr double h = 1e-4;
    double worst = 0;
    std::size_t checked = 0;
    Tables& params = m.tables;
    std::vector<std::vector<double>*> garrays;
    for_each_array(grad, [&](const std::string&, std::vector<double>& v) { garrays.push_back(&v); });
    std::size_t a = 0;
    for_each_array(params, [&](const std::string& name, std::vector<double>& v) {
      const std::vector<double>& g = *garrays[a++];
      ASSERT_EQ(g.size(), v.size()) << label(c) << " " << name;
      for (std::size_t i = 0; i < v.size(); ++i) {
        const double x0 = v[i];
        auto f = [&](double dx) {
          v[i] = x0 + dx;
          return objective(sweep, m, st);
        };
        const double fd = (8.0 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12.0 * h);
        v[i] = x0;
        const double rel = std::abs(g[i] - fd) / std::max({std::abs(g[i]), std::abs(fd), 1e-3});
        worst = std::max(worst, rel);
        EXPECT_LT(rel, 1e-6) << label(c) << " " << name << "[" << i << "] grad " << g[i]
                             << " fd " << fd;
        ++checked;
      }
    });
    std::printf("  %-18s %4zu entries, worst relative error %.2e\n", label(c).c_str(), checked,
                worst);
  }
}

TEST(Gradient, AccumulatesIntoGivenTables) {
  const Case c{{2, 3}, false};
  const Model m = random_model(c, 3);
  const WindowStats st = random_stats(2, 4);
  cmera::WindowSweep sweep(m.geometry, 0, kSites);
  const Tables g = gradient_of(sweep, m, st);
  Tables acc = Tables::zeros_like(m.tables);
  acc.fill(0.5);
  sweep.gradient(m, st, 2.0 / kSites, acc);  // adds 2 g
  for (std::size_t i = 0; i < g.top.size(); ++i) EXPECT_NEAR(acc.top[i], 0.5 + 2 * g.top[i], 1e-12);
  for (std::size_t l = 0; l < g.layers.size(); ++l) {
    for (std::size_t i = 0; i < g.layers[l].W.size(); ++i)
      EXPECT_NEAR(acc.layers[l].W[i], 0.5 + 2 * g.layers[l].W[i], 1e-12);
    for (std::size_t i = 0; i < g.layers[l].U.size(); ++i)
      EXPECT_NEAR(acc.layers[l].U[i], 0.5 + 2 * g.layers[l].U[i], 1e-12);
  }
}

// Ranks sweep blocks of windows (docs/design.md §5): the block gradients, summed, must equal the
// gradient of the whole lattice, for blocks that wrap around the boundary too.
TEST(Gradient, BlockSweepsSumToFullGradient) {
  std::uint64_t seed = 30;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const WindowStats st = random_stats(c.chi[0], seed++);
    cmera::WindowSweep full(m.geometry, 0, kSites);
    Tables want = gradient_of(full, m, st);
    const double want_ll = full.log_likelihood(st);
    const std::size_t w = static_cast<std::size_t>(st.d) * st.d * st.d;
    Tables got = Tables::zeros_like(m.tables);
    double got_ll = 0;
    for (const auto& [first, count] : std::vector<std::pair<long, long>>{{2, 5}, {7, 1}, {8, 6}}) {
      WindowStats part = st;
      part.first = first;
      part.count = count;
      part.q.clear();
      part.entropy.clear();
      for (long k = 0; k < count; ++k) {
        const long s = (first + k) % kSites;
        part.q.insert(part.q.end(), st.window(s), st.window(s) + w);
        part.entropy.push_back(st.entropy[s]);
      }
      cmera::WindowSweep sweep(m.geometry, first, count);
      sweep.forward(m);
      got_ll += sweep.log_likelihood(part);
      sweep.gradient(m, part, 1.0 / kSites, got);
    }
    EXPECT_NEAR(got_ll, want_ll, 1e-12) << label(c);
    std::vector<std::vector<double>*> refs;
    for_each_array(want, [&](const std::string&, std::vector<double>& v) { refs.push_back(&v); });
    std::size_t a = 0;
    for_each_array(got, [&](const std::string& name, std::vector<double>& v) {
      const std::vector<double>& r = *refs[a++];
      for (std::size_t i = 0; i < v.size(); ++i)
        EXPECT_NEAR(v[i], r[i], 1e-12 * std::max(1.0, std::abs(r[i])))
            << label(c) << " " << name << "[" << i << "]";
    });
  }
}

// EM on a composite likelihood never decreases it (docs/design.md §4). For representable data the
// objective is also bounded by Gibbs: mean sum q log p <= -mean entropy.
void expect_em_monotone(const Case& c, const WindowStats& st, std::uint64_t seed, bool bounded) {
  Model m = random_model(c, seed);
  cmera::WindowSweep sweep(m.geometry, 0, kSites);
  auto em = cmera::make_em({0.0, static_cast<double>(st.samples * st.count)});
  const cmera::UpdateScope scope = full_scope(m);
  double mean_entropy = 0;
  for (double h : st.entropy) mean_entropy += h / st.count;
  const double start = objective(sweep, m, st);
  double prev = start;
  for (int it = 0; it < 30; ++it) {
    const Tables g = gradient_of(sweep, m, st);
    em->step(m, g, scope);
    ASSERT_LT(m.normalization_error(), 1e-12) << label(c) << " iteration " << it;
    const double now = objective(sweep, m, st);
    EXPECT_GE(now, prev - 1e-13) << label(c) << " EM decreased at iteration " << it;
    if (bounded) {
      EXPECT_LE(now, -mean_entropy + 1e-12) << label(c) << " Gibbs bound";
    }
    prev = now;
  }
  EXPECT_GT(prev, start + 1e-3) << label(c) << " EM made no progress";
  std::printf("  %-18s EM objective %.6f -> %.6f (bound %.6f)\n", label(c).c_str(), start, prev,
              -mean_entropy);
}

TEST(Optimizer, EmIsMonotoneOnRandomStatistics) {
  std::uint64_t seed = 50;
  for (const Case& c : cases()) {
    const WindowStats st = random_stats(c.chi[0], seed++);
    expect_em_monotone(c, st, seed++, false);
  }
}

TEST(Optimizer, EmIsMonotoneOnAnotherModelsMarginals) {
  std::uint64_t seed = 80;
  for (const Case& c : cases()) {
    const Model source = random_model(c, seed++);
    expect_em_monotone(c, model_stats(source), seed++, true);
  }
}

TEST(Optimizer, AdamRaisesTheObjective) {
  std::uint64_t seed = 120;
  for (const Case& c : cases()) {
    const Model source = random_model(c, seed++);
    const WindowStats st = model_stats(source);
    Model m = random_model(c, seed++);
    cmera::WindowSweep sweep(m.geometry, 0, kSites);
    auto adam = cmera::make_adam(cmera::AdamSettings{}, m);
    const cmera::UpdateScope scope = full_scope(m);
    const double start = objective(sweep, m, st);
    for (int it = 0; it < 100; ++it) adam->step(m, gradient_of(sweep, m, st), scope);
    const double end = objective(sweep, m, st);
    EXPECT_LT(m.normalization_error(), 1e-12) << label(c);
    EXPECT_GT(end, start + 1e-3) << label(c);
    std::printf("  %-18s Adam objective %.6f -> %.6f after 100 steps\n", label(c).c_str(), start,
                end);
  }
}

}  // namespace
