// The grid MERA's exact 3 x 3 window marginals (docs/design-grid.md §3) against two
// references (tests/grid_reference.hpp) that share no code with
// src/lattice/grid_kernels.cpp or grid_window_cone:
//
// - brute force (small grids, depth 1): the joint of any 2D site set by dense
//   contraction of the top table with every column's FULL conditional
//   P(column of the intermediate grid | column of the top), then every touched row's full
//   conditional, each line's conditional enumerated by the full-joint reference of
//   tests/brute_force.hpp. No cone rule anywhere: lines untouched by the set only drop
//   out because their conditionals sum to 1.
// - a general 2D cone (any grid, any depth): parents of a site set found line by line
//   with the chain's cone_parents, each line's restricted conditional by the chain's
//   general ConePlan on a one-layer chain whose top is a point mass.
//
// On top: ancestral samples against exact windows (Pearson chi-square, Bonferroni, fixed
// seed), normalization, positivity and agreement of overlapping windows at every layer,
// independence of the thread count, the 1D-kernel call count, and the validation errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>

#include "brute_force.hpp"
#include "chi_square.hpp"
#include "cmera/error.hpp"
#include "cmera/grid.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/grid_sampler.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/optimizer.hpp"
#include "cmera/siteset.hpp"

#include "grid_reference.hpp"

namespace {

std::vector<std::pair<long, long>> window_sites(long x, long y) {
  std::vector<std::pair<long, long>> s;
  for (int dy = 0; dy < 3; ++dy)
    for (int dx = 0; dx < 3; ++dx) s.push_back({x + dx, y + dy});
  return s;
}

// Wraps the sites of a window at `layer` (the reference takes wrapped coordinates).
std::vector<std::pair<long, long>> wrapped(const GridLattice& g, int layer,
                                           std::vector<std::pair<long, long>> s) {
  for (auto& p : s)
    p = {cmera::cone::wrap(p.first, g.lx_at(layer)), cmera::cone::wrap(p.second, g.ly_at(layer))};
  return s;
}

double max_diff(const double* a, const std::vector<double>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < b.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// Every window of every layer of the fast path against a reference.
void check_all_windows(const GridCase& c, bool cones, double tol) {
  const GridModel m = random_grid(c, 11 + c.lx + 7 * c.ly + (c.tied ? 0 : 1000));
  cmera::grid::GridWindowMarginals fast(m.lattice);
  fast.forward(m);
  Reference ref(m, cones);
  for (int l = 0; l <= m.depth(); ++l)
    for (long y = 0; y < m.lattice.ly_at(l); ++y)
      for (long x = 0; x < m.lattice.lx_at(l); ++x) {
        const auto exact = ref.marginal(l, wrapped(m.lattice, l, window_sites(x, y)));
        ASSERT_LT(max_diff(fast.window(l, x, y), exact), tol)
            << label(c) << (cones ? " general cone" : " brute force") << " layer " << l
            << " window (" << x << ", " << y << ")";
      }
}

TEST(Grid, WindowsEqualBruteForceOnSmallGrids) {
  for (const GridCase& c :
       {GridCase{6, 6, {2, 2}, true}, GridCase{6, 6, {2, 2}, false}, GridCase{12, 6, {2, 2}, false},
        GridCase{6, 12, {2, 2}, true}, GridCase{6, 6, {2, 3}, false}, GridCase{6, 6, {3, 2}, true},
        GridCase{6, 6, {2, 2}, true, {3}}, GridCase{6, 6, {2, 2}, false, {4}},
        GridCase{6, 6, {2, 3}, true, {3}}})
    check_all_windows(c, false, 1e-13);
}

TEST(Grid, WindowsEqualGeneralConeOnLargerGrids) {
  // (16 x 8 at depth 2 would leave a 4 x 2 top, which the lattice refuses.)
  for (const GridCase& c : {GridCase{12, 12, {2, 2, 2}, true}, GridCase{12, 12, {2, 2, 2}, false},
                            GridCase{16, 12, {2, 2, 2}, false}, GridCase{12, 16, {3, 2, 2}, true},
                            GridCase{12, 12, {2, 2, 2}, false, {3, 3}}})
    check_all_windows(c, true, 1e-13);
}

// The general cone itself (used above on grids too large for brute force) against brute
// force on far pairs and arbitrary site sets, including sets across the periodic seams.
TEST(Grid, GeneralConeEqualsBruteForceOnArbitrarySets) {
  const std::vector<std::vector<std::pair<long, long>>> sets = {
      {{0, 0}, {3, 3}},
      {{5, 5}, {0, 0}},
      {{1, 4}, {4, 1}},
      {{0, 0}, {5, 0}, {2, 4}, {4, 1}},
      {{2, 2}},
      {{5, 0}, {0, 5}, {3, 2}},
      {{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 1}}};
  for (const GridCase& c : {GridCase{6, 6, {2, 2}, false}, GridCase{6, 6, {2, 3}, true},
                            GridCase{12, 6, {2, 2}, true}, GridCase{6, 6, {2, 2}, false, {3}}}) {
    const GridModel m = random_grid(c, 77);
    Reference brute(m, false), cone(m, true);
    for (const auto& s : sets)
      for (int l = 0; l < 1; ++l) {
        const auto a = brute.marginal(l, s), b = cone.marginal(l, s);
        EXPECT_LT(max_diff(a.data(), b), 1e-13) << label(c) << " set of " << s.size();
        double total = 0;
        for (double v : a) total += v;
        EXPECT_NEAR(total, 1.0, 1e-13);
      }
  }
}

// Every window of every layer is a distribution; overlapping windows agree on the
// shared 2 x 3 and 3 x 2 blocks; a thread count does not change a bit; the fast path
// makes exactly the stated number of 1D kernel calls (docs/design-grid.md §3).
TEST(Grid, WindowsNormalizedConsistentAndThreadIndependent) {
  for (const GridCase& c :
       {GridCase{16, 12, {2, 2, 2}, false}, GridCase{12, 12, {2, 3, 2}, true},
        GridCase{12, 12, {2, 2, 2}, true, {4}}}) {
    const GridModel m = random_grid(c, 5);
    const GridLattice& g = m.lattice;
    cmera::grid::GridWindowMarginals fast(g), serial(g);
    fast.forward(m);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    serial.forward(m);
    omp_set_num_threads(threads);
    long expected_calls = 0;
    for (int l = 0; l <= m.depth(); ++l) {
      const int d = g.chi[l];
      const std::size_t n = cmera::grid_window_size(d);
      if (l < m.depth()) {  // columns once per intermediate window, rows per window
        // Each of a half-step's three line steps builds its line's map from one kernel
        // call per unit coarse value (K^3 for the columns, mid^3 for the rows).
        const std::size_t K = g.chi[l + 1], mid = g.intermediate_chi(l);
        const std::size_t columns = 3 * K * K * K, rows = 3 * mid * mid * mid;
        expected_calls += static_cast<long>(columns) * g.lx_at(l + 1) * g.ly_at(l) +
                          static_cast<long>(rows) * g.sites_at(l);
      }
      for (long y = 0; y < g.ly_at(l); ++y)
        for (long x = 0; x < g.lx_at(l); ++x) {
          const double* w = fast.window(l, x, y);
          ASSERT_TRUE(std::equal(w, w + n, serial.window(l, x, y))) << label(c) << " layer " << l;
          double total = 0;
          for (std::size_t i = 0; i < n; ++i) {
            ASSERT_GE(w[i], 0.0);
            total += w[i];
          }
          ASSERT_NEAR(total, 1.0, 1e-13) << label(c) << " layer " << l;
          // Right neighbour: places dx = 1, 2 here equal dx = 0, 1 there; lower likewise.
          const double* right = fast.window(l, x + 1, y);
          const double* below = fast.window(l, x, y + 1);
          std::vector<double> a(power(d, 6), 0.0), b(a.size(), 0.0), u(a.size(), 0.0),
              v(a.size(), 0.0);
          for (std::size_t i = 0; i < n; ++i) {
            int val[9];
            std::size_t rest = i;
            for (int p = 8; p >= 0; --p) {
              val[p] = static_cast<int>(rest % d);
              rest /= d;
            }
            std::size_t ra = 0, rb = 0, ca = 0, cb = 0;
            for (int dy = 0; dy < 3; ++dy)
              for (int k = 0; k < 2; ++k) {
                ra = ra * d + val[3 * dy + k + 1];
                rb = rb * d + val[3 * dy + k];
              }
            for (int k = 0; k < 2; ++k)
              for (int dx = 0; dx < 3; ++dx) {
                ca = ca * d + val[3 * (k + 1) + dx];
                cb = cb * d + val[3 * k + dx];
              }
            a[ra] += w[i];
            b[rb] += right[i];
            u[ca] += w[i];
            v[cb] += below[i];
          }
          ASSERT_LT(max_diff(a.data(), b), 1e-14) << label(c) << " layer " << l;
          ASSERT_LT(max_diff(u.data(), v), 1e-14) << label(c) << " layer " << l;
        }
    }
    EXPECT_EQ(fast.kernel_calls(), expected_calls) << label(c);
    // The one-window entry point equals the sweep's shared-column path, bit for bit.
    cmera::grid::GridScratch s;
    s.reserve(g);
    std::vector<double> one(cmera::grid_window_size(g.chi[0]));
    for (long y = 0; y < g.ly_at(0); ++y)
      for (long x = 0; x < g.lx_at(0); ++x) {
        const cmera::GridWindowCone cone = cmera::grid_window_cone(g, 0, x, y);
        cmera::grid::descend_window(m, 0, x, y, fast.window(1, cone.cx, cone.cy), one.data(), s);
        ASSERT_TRUE(std::equal(one.begin(), one.end(), fast.window(0, x, y))) << label(c);
      }
  }
}

// Pearson chi-square of sampled 3 x 3 windows against the exact marginals. The cells of
// smallest expectation are pooled into one expecting >= 5, so the chi-square law holds;
// Bonferroni over the 8 windows tested keeps the whole test's false-alarm rate <= 1e-6.
// Fixed seed, so the outcome is deterministic.
constexpr long kSamples = 200000;
double window_x2(const GridModel& m, const std::vector<std::vector<std::uint8_t>>& samples, long x,
                 long y, const double* exact, int* df) {
  const GridLattice& g = m.lattice;
  std::vector<long> counts(cmera::grid_window_size(g.chi[0]), 0);
  for (const auto& s : samples) {
    std::size_t idx = 0;
    for (int dy = 0; dy < 3; ++dy)
      for (int dx = 0; dx < 3; ++dx) idx = idx * g.chi[0] + s[g.site(0, x + dx, y + dy)];
    ++counts[idx];
  }
  // Pool the cells of smallest expectation until the pool and every other cell expect
  // >= 5 (every count is used, so the cells still partition all outcomes).
  std::vector<std::size_t> order(counts.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return exact[a] < exact[b]; });
  const double n = static_cast<double>(samples.size());
  double x2 = 0, pooled_e = 0;
  long pooled_n = 0;
  int cells = 1;  // the pool
  std::size_t k = 0;
  for (; k < order.size() && (pooled_e < 5 || exact[order[k]] * n < 5); ++k) {
    pooled_e += exact[order[k]] * n;
    pooled_n += counts[order[k]];
  }
  x2 += (pooled_n - pooled_e) * (pooled_n - pooled_e) / pooled_e;
  for (; k < order.size(); ++k, ++cells) {
    const double e = exact[order[k]] * n;
    x2 += (counts[order[k]] - e) * (counts[order[k]] - e) / e;
  }
  *df = cells - 1;
  return x2;
}

std::vector<std::vector<std::uint8_t>> draw(const GridModel& m, std::uint64_t seed) {
  const cmera::GridSampler sampler(m);
  std::vector<std::vector<std::uint8_t>> out(kSamples,
                                             std::vector<std::uint8_t>(m.lattice.sites_at(0)));
  for (long k = 0; k < kSamples; ++k)
    sampler.draw(seed, static_cast<std::uint64_t>(k), out[k].data());
  return out;
}

const std::vector<std::pair<long, long>> kSampledWindows = {{0, 0}, {2, 3}, {5, 5}, {7, 1}};
const GridCase kSamplerCases[] = {{8, 6, {2, 2}, false}, {12, 12, {2, 2, 2}, true},
                                  {12, 12, {2, 2, 2}, false, {3}}};
const double kPerTestAlpha = 1e-6 / (3.0 * 4.0);

TEST(Grid, SamplesReproduceExactWindows) {
  for (const GridCase& c : kSamplerCases) {
    const GridModel m = random_grid(c, 2024);
    cmera::grid::GridWindowMarginals exact(m.lattice);
    exact.forward(m);
    const auto samples = draw(m, 99);
    for (const auto& [x, y] : kSampledWindows) {
      int df = 0;
      const double x2 = window_x2(m, samples, x, y, exact.window(0, x, y), &df);
      const double threshold = chi2_upper_quantile(kPerTestAlpha, df);
      EXPECT_LT(x2, threshold) << label(c) << " window (" << x << ", " << y << "): X^2 = " << x2
                               << ", df = " << df;
      std::printf("  %-22s window (%ld,%ld) X^2 = %9.3f (df %d, threshold %.1f)\n",
                  label(c).c_str(), x, y, x2, df, threshold);
    }
  }
}

// Control: the same test rejects samples of another model.
TEST(Grid, SampleTestRejectsAnotherModel) {
  const GridCase& c = kSamplerCases[0];
  const GridModel drawn = random_grid(c, 2024), other = random_grid(c, 2025);
  cmera::grid::GridWindowMarginals exact(other.lattice);
  exact.forward(other);
  const auto samples = draw(drawn, 99);
  int df = 0;
  const double x2 = window_x2(drawn, samples, 0, 0, exact.window(0, 0, 0), &df);
  EXPECT_GT(x2, chi2_upper_quantile(kPerTestAlpha, df));
}

TEST(Grid, RefusesInvalidLattices) {
  auto message = [](const GridLattice& g) {
    try {
      g.validate();
    } catch (const cmera::Error& e) {
      EXPECT_EQ(e.code(), cmera::kExitUsage);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message({48, 48, {2, 2}}).find("top joint table over the 24 x 24 top grid"),
            std::string::npos);
  EXPECT_NE(message({12, 8, {2, 2, 2}}).find("3 x 3"), std::string::npos);
  EXPECT_NE(message({12, 10, {2, 2, 2}}).find("divisible"), std::string::npos);
  EXPECT_NE(message({6, 6, {2, 1}}).find(">= 2"), std::string::npos);
  EXPECT_NE(message({6, 6, {2, 2}, {1}}).find("intermediate_chi entries must be >= 2"),
            std::string::npos);
  EXPECT_NE(message({6, 6, {2, 2}, {3, 3}}).find("more than the 1 steps"), std::string::npos);
  EXPECT_EQ(message({48, 48, {2, 2, 2, 2, 2}}), "accepted");  // 3 x 3 top
}

// Tables and initialization: every conditional normalized, untied lines distinct, and a
// start a pure function of the seed.
TEST(Grid, InitializationNormalizedAndSeeded) {
  const GridLattice g{12, 12, {2, 3, 2}};
  for (bool tied : {true, false}) {
    const GridModel a = cmera::initialize_grid_model(g, tied, cmera::InitKind::kDecimation, 0.1, 3);
    const GridModel b = cmera::initialize_grid_model(g, tied, cmera::InitKind::kDecimation, 0.1, 3);
    EXPECT_LT(a.normalization_error(), 1e-14);
    EXPECT_EQ(a.layers[0].x.lines.size(), tied ? 1u : 12u);
    EXPECT_EQ(a.layers[0].y.lines.size(), tied ? 1u : 6u);
    EXPECT_EQ(a.layers[0].y.line(0).K, 3);
    EXPECT_EQ(a.layers[0].y.line(0).d, 2);  // intermediate alphabet chi_0
    EXPECT_EQ(a.layers[0].x.line(0).K, 2);
    EXPECT_EQ(a.layers[1].y.line(0).coarse, 3);
    EXPECT_EQ(a.top, b.top);
    EXPECT_EQ(a.layers[1].x.line(5).W, b.layers[1].x.line(5).W);
    if (!tied) EXPECT_NE(a.layers[0].x.line(0).W, a.layers[0].x.line(1).W);
  }
}


// ---- Objective and gradient (grid_sweep.hpp) ----


// Per-window histograms of `samples` configurations drawn from `source`, each window
// normalized to 1 (the data side of the objective).
cmera::grid::GridWindowStats sampled_stats(const GridModel& source, long samples,
                                           std::uint64_t seed) {
  const cmera::GridSampler sampler(source);
  cmera::grid::GridWindowStats q(source.lattice);
  std::vector<std::uint8_t> config(static_cast<std::size_t>(source.lattice.sites_at(0)));
  for (long k = 0; k < samples; ++k) {
    sampler.draw(seed, static_cast<std::uint64_t>(k), config.data());
    q.add(config.data(), 1.0 / static_cast<double>(samples));
  }
  return q;
}

// The counting kernel (count, on boxes of every sample) against the plain reference (add,
// window by window on whole configurations): every histogram entry equal, for the whole
// lattice (the box wraps onto itself; 6 rows of windows: a full band of the kernel's and a
// partial one), a wrapping block of windows, every sample and every other one, chi_0 = 2
// and 3, one and two threads, and two calls adding up.
TEST(GridWindowStats, CountEqualsPlainReference) {
  for (const int d : {2, 3})
    for (const bool whole : {true, false})
      for (const long step : {1L, 2L})
        for (const int threads : {1, 2}) {
          const cmera::GridLattice g{10, 6, {d, 2}};
          const auto x = whole ? cmera::CyclicRange::make(0, 10, 10) : cmera::CyclicRange::make(8, 4, 10);
          const auto y = whole ? cmera::CyclicRange::make(0, 6, 6) : cmera::CyclicRange::make(5, 2, 6);
          cmera::grid::GridWindowStats fast(g, x, y), plain(g, x, y);
          const long samples = 7, first = step - 1;
          const auto bx = fast.box_x(), by = fast.box_y();
          std::vector<std::uint8_t> boxes;
          std::uint64_t state = 12345 + d;
          for (long k = 0; k < samples; ++k) {
            std::vector<std::uint8_t> config(static_cast<std::size_t>(g.sites_at(0)));
            for (auto& v : config) {
              state = state * 6364136223846793005ULL + 1442695040888963407ULL;
              v = static_cast<std::uint8_t>((state >> 33) % static_cast<std::uint64_t>(d));
            }
            if (k >= first && (k - first) % step == 0) plain.add(config.data(), 2.0);
            for (long r = 0; r < by.length; ++r)
              for (long c = 0; c < bx.length; ++c) boxes.push_back(config[g.site(0, bx.at(c), by.at(r))]);
          }
          const int saved = omp_get_max_threads();
          omp_set_num_threads(threads);
          fast.count(boxes.data(), samples, first, step);
          fast.count(boxes.data(), samples, first, step);
          omp_set_num_threads(saved);
          for (long oy = 0; oy < y.length; ++oy)
            for (long ox = 0; ox < x.length; ++ox)
              for (std::size_t c = 0; c < cmera::grid_window_size(d); ++c)
                ASSERT_EQ(fast.window(x.at(ox), y.at(oy))[c], plain.window(x.at(ox), y.at(oy))[c])
                    << "d " << d << (whole ? " whole" : " block") << " step " << step << " threads "
                    << threads << " window (" << x.at(ox) << ", " << y.at(oy) << ") cell " << c;
        }
}

double sweep_objective(const GridModel& m, const cmera::grid::GridWindowStats& q) {
  cmera::grid::GridSweep sweep(m.lattice);
  sweep.forward(m);
  return sweep.objective(q);
}

// The gradient of the reverse sweep against central finite differences of the objective
// (tables as free entries, no renormalization) on `probes` entries (every entry if
// probes == 0). Every gradient entry is a sum of products of positive numbers, so the
// relative error is well defined.
void check_gradient(const GridCase& c, std::size_t probes) {
  GridModel m = random_grid(c, 5 + c.lx + (c.tied ? 0 : 100));
  const auto q = sampled_stats(random_grid(c, 77), 40, 9);
  cmera::grid::GridSweep sweep(m.lattice);
  sweep.forward(m);
  GridModel grad = cmera::grid::zeros_like(m);
  sweep.gradient(m, q, grad);
  const auto x = entries(m), gx = entries(grad);
  ASSERT_EQ(x.size(), gx.size());
  std::vector<std::size_t> picked(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) picked[i] = i;
  if (probes > 0) {  // a fixed spread over every kind of table
    std::vector<std::size_t> some;
    for (std::size_t i = 0; i < probes; ++i) some.push_back((i * 7919) % x.size());
    picked = some;
  }
  double worst = 0;
  for (std::size_t i : picked) {
    const double saved = *x[i], h = 1e-4 * std::max(saved, 1e-3);
    *x[i] = saved + h;
    const double up = sweep_objective(m, q);
    *x[i] = saved - h;
    const double down = sweep_objective(m, q);
    *x[i] = saved;
    const double fd = (up - down) / (2 * h);
    ASSERT_GT(*gx[i], 0.0) << label(c) << " entry " << i;
    const double rel = std::abs(*gx[i] - fd) / std::abs(*gx[i]);
    worst = std::max(worst, rel);
    ASSERT_LT(rel, 1e-6) << label(c) << " entry " << i << " of " << x.size() << ": sweep "
                         << *gx[i] << " finite differences " << fd;
  }
  std::printf("%s: %zu entries, worst relative error %.2e\n", label(c).c_str(), picked.size(),
              worst);
  std::fflush(stdout);
}

TEST(GridSweep, GradientEqualsFiniteDifferencesOnEveryEntry) {
  for (const GridCase& c : {GridCase{6, 6, {2, 2}, true}, GridCase{6, 6, {2, 2}, false}})
    check_gradient(c, 0);
}

// Unequal alphabets (a 3^9-entry top, so sampled entries), including intermediate
// alphabets above the finer layer's.
TEST(GridSweep, GradientEqualsFiniteDifferencesWithUnequalAlphabets) {
  for (const GridCase& c : {GridCase{6, 6, {2, 3}, false}, GridCase{6, 6, {3, 2}, true},
                            GridCase{6, 6, {2, 2}, true, {3}}})
    check_gradient(c, 150);
}

TEST(GridSweep, GradientEqualsFiniteDifferencesAtDepthTwo) {
  for (const GridCase& c : {GridCase{12, 12, {2, 2, 2}, true}, GridCase{12, 12, {2, 2, 2}, false}})
    check_gradient(c, 150);
}

// The objective against the brute-force window marginals (no cone rule, no grid kernel).
TEST(GridSweep, ObjectiveEqualsBruteForce) {
  for (const GridCase& c : {GridCase{6, 6, {2, 2}, true}, GridCase{6, 6, {2, 2}, false},
                            GridCase{6, 6, {3, 2}, false}, GridCase{6, 6, {2, 2}, true, {3}}}) {
    const GridModel m = random_grid(c, 21);
    const auto q = sampled_stats(random_grid(c, 22), 50, 3);
    Reference ref(m, false);
    double exact = 0;
    for (long y = 0; y < c.ly; ++y)
      for (long x = 0; x < c.lx; ++x) {
        const auto p = ref.marginal(0, wrapped(m.lattice, 0, window_sites(x, y)));
        const double* qw = q.window(x, y);
        for (std::size_t k = 0; k < p.size(); ++k)
          if (qw[k] > 0) exact += qw[k] * std::log(p[k]);
      }
    EXPECT_NEAR(sweep_objective(m, q), exact, 1e-12 * std::abs(exact)) << label(c);
  }
}

// Objective and every gradient entry bitwise equal at 1 and 2 threads, including a grid
// whose coarse sizes are not multiples of 3 (the untied colouring's serial leftovers).
TEST(GridSweep, ThreadCountIndependent) {
  const int saved = omp_get_max_threads();
  for (const GridCase& c : {GridCase{12, 12, {2, 2, 2}, true}, GridCase{12, 12, {2, 2, 2}, false},
                            GridCase{16, 12, {2, 2, 2}, false}}) {
    const GridModel m = random_grid(c, 31);
    const auto q = sampled_stats(random_grid(c, 32), 30, 4);
    std::vector<double> objective;
    std::vector<GridModel> grads;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      cmera::grid::GridSweep sweep(m.lattice);
      sweep.forward(m);
      objective.push_back(sweep.objective(q));
      grads.push_back(cmera::grid::zeros_like(m));
      sweep.gradient(m, q, grads.back());
      // Kernel calls at chi = 2: a line step builds its line's map from 8 descend calls
      // (one per unit coarse window). Per intermediate window (two fine windows): the column
      // half-step once (3 * 8); then three half-step adjoints (two fine windows' rows, the
      // columns once), each rebuilding its 3 maps (24) and making 3 * 8 ascend calls:
      // 24 + 3 * 48 = 168, 84 per fine window.
      long fine_windows = 0;
      for (int l = 0; l < m.depth(); ++l) fine_windows += m.lattice.sites_at(l);
      EXPECT_EQ(sweep.kernel_calls(), 84 * fine_windows) << label(c);
    }
    EXPECT_EQ(objective[0], objective[1]) << label(c);
    const auto a = entries(grads[0]), b = entries(grads[1]);
    for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(*a[i], *b[i]) << label(c) << " entry " << i;
  }
  omp_set_num_threads(saved);
}

// EM through the chain's optimizer (optimizer.hpp) on the grid's lines packed as a chain
// Tables: tables <- tables * gradient, renormalized per conditional row. EM maximizes a
// lower bound of each window's log-likelihood that touches it at the current tables, so
// the objective never decreases; starting from a random model it must also improve.
TEST(GridSweep, EmNeverDecreasesObjective) {
  for (bool tied : {true, false}) {
    const GridCase c{6, 6, {2, 2}, tied};
    GridModel m = random_grid(c, 41);
    const auto q = sampled_stats(random_grid(c, 42), 500, 5);
    cmera::grid::GridSweep sweep(m.lattice);
    auto em = cmera::make_em(cmera::EmSettings{});
    cmera::Model packed;
    cmera::UpdateScope scope;
    packed.tables = cmera::grid::as_chain_tables(m);
    for (const LayerTables& t : packed.tables.layers) {
      scope.first.push_back(0);
      scope.count.push_back(t.coarse);
    }
    sweep.forward(m);
    const double start = sweep.objective(q);
    double last = start;
    for (int step = 0; step < 20; ++step) {
      GridModel grad = cmera::grid::zeros_like(m);
      sweep.gradient(m, q, grad);
      packed.tables = cmera::grid::as_chain_tables(m);
      em->step(packed, cmera::grid::as_chain_tables(grad), scope);
      cmera::grid::from_chain_tables(packed.tables, m);
      EXPECT_LT(m.normalization_error(), 1e-12) << label(c) << " step " << step;
      sweep.forward(m);
      const double now = sweep.objective(q);
      EXPECT_GE(now, last - 1e-12 * std::abs(last)) << label(c) << " step " << step;
      last = now;
    }
    std::printf("%s: EM objective %.6f -> %.6f in 20 steps\n", label(c).c_str(), start, last);
    EXPECT_GT(last, start + 0.01 * std::abs(start)) << label(c);
  }
}

}  // namespace
