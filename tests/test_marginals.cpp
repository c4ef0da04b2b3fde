// Exact marginals (docs/design.md §2) against brute-force enumeration of the full joint of every
// layer (brute_force.hpp): the generic site-set descend for windows, pairs at every
// distance and arbitrary unsorted sets; the fast window sweep for every bottom window;
// normalization and consistency of overlapping windows. Geometries cover depth 1 and 2,
// growing, shrinking and mixed alphabets, tied and untied tables. Trade-off: the brute
// force is exponential in N, so geometries stop at N = 16 and chi_0^N <= 3^12.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include "brute_force.hpp"
#include "model_cases.hpp"
#include "cmera/siteset.hpp"
#include "cmera/window_sweep.hpp"

namespace {

using cmera::Model;

constexpr double kTol = 1e-12;

using Case = cmera::testing::ModelCase;
using cmera::testing::label;
using cmera::testing::random_model;

// Every valid geometry (N / 2^depth integer and >= 3) from the brief's lists, with the
// brute-force size capped at chi_0^N <= 3^12.
std::vector<Case> cases() {
  const std::vector<std::vector<int>> chis = {{2, 2}, {2, 2, 2}, {2, 3}, {3, 2}, {2, 4}, {2, 2, 3}};
  std::vector<Case> out;
  for (long n : {8L, 12L, 16L})
    for (const auto& chi : chis) {
      const int depth = static_cast<int>(chi.size()) - 1;
      if (n % (1L << depth) != 0 || (n >> depth) < 3) continue;
      if (std::pow(chi[0], n) > std::pow(3.0, 12) + 0.5) continue;
      for (bool tied : {false, true}) out.push_back({n, chi, tied});
    }
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

double sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

// site_marginal equals the brute-force marginal of the layer's full joint and sums to 1.
void expect_site_marginal(const Model& m, const std::vector<brute::Dense>& joints, int layer,
                          const std::vector<long>& sites, const std::string& where) {
  const cmera::SiteMarginal sm = cmera::site_marginal(m, layer, sites);
  ASSERT_EQ(sm.sites, sites) << where;
  const std::vector<double> ref = brute::marginalize(joints[layer], sites);
  EXPECT_LT(max_abs_diff(sm.p, ref), kTol) << where;
  EXPECT_NEAR(sum(sm.p), 1.0, kTol) << where;
}

std::string sites_str(const std::vector<long>& s) {
  std::string r = "{";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "}";
}

TEST(Marginals, InitializedModelsAreNormalized) {
  std::uint64_t seed = 11;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    EXPECT_LT(m.normalization_error(), 1e-12) << label(c);
    // The memory estimate train checks before allocating equals what the model holds.
    std::size_t entries = m.tables.top.size();
    for (const cmera::LayerTables& t : m.tables.layers) entries += t.W.size() + t.U.size();
    EXPECT_EQ(m.geometry.table_bytes(m.tied), static_cast<double>(entries * sizeof(double)))
        << label(c);
    // The brute-force joint of every layer is then a distribution too.
    for (const auto& j : brute::layer_joints(m)) EXPECT_NEAR(sum(j.p), 1.0, kTol) << label(c);
  }
}

TEST(Marginals, EveryWindowAtEveryLayerMatchesBruteForce) {
  std::uint64_t seed = 100;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const auto joints = brute::layer_joints(m);
    for (int l = 0; l <= m.depth(); ++l) {
      const long n = m.geometry.sites_at(l);
      for (long s = 0; s < n; ++s) {
        const std::vector<long> w = {s, (s + 1) % n, (s + 2) % n};
        expect_site_marginal(m, joints, l, w, label(c) + " layer " + std::to_string(l) +
                                                  " window " + sites_str(w));
      }
    }
  }
}

TEST(Marginals, PairsAtEveryDistanceMatchBruteForce) {
  std::uint64_t seed = 200;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const auto joints = brute::layer_joints(m);
    for (int l = 0; l <= m.depth(); ++l) {
      const long n = m.geometry.sites_at(l);
      for (long i = 0; i < n; ++i)
        for (long r = 1; r < n; ++r) {
          const std::vector<long> pair = {i, (i + r) % n};
          expect_site_marginal(m, joints, l, pair, label(c) + " layer " + std::to_string(l) +
                                                       " pair " + sites_str(pair));
        }
    }
  }
}

TEST(Marginals, ArbitraryUnsortedSetsMatchBruteForce) {
  std::uint64_t seed = 300;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const auto joints = brute::layer_joints(m);
    const long n = c.sites;
    const std::vector<std::vector<long>> sets = {
        {0, 5, 6},        {1, 2, 9, 13}, {6, 5, 0},       {n - 1, 0, 3, 2},
        {7, 1, n - 2, 4}, {0, n / 2},    {3},             {2, 0, 1, 4, 3},
        {n - 1, n / 2 + 1, 1}};
    for (const auto& s : sets) {
      if (*std::max_element(s.begin(), s.end()) >= n) continue;  // {1, 2, 9, 13} needs N > 13
      expect_site_marginal(m, joints, 0, s, label(c) + " set " + sites_str(s));
    }
    // A layer-1 set, unsorted and wrapping.
    const long n1 = m.geometry.sites_at(1);
    expect_site_marginal(m, joints, 1, {n1 - 1, 1, 0}, label(c) + " layer 1 set");
  }
}

TEST(Marginals, WindowSweepMatchesBruteForce) {
  std::uint64_t seed = 400;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const auto joints = brute::layer_joints(m);
    const long n = c.sites;
    const std::size_t w3 = static_cast<std::size_t>(c.chi[0]) * c.chi[0] * c.chi[0];
    cmera::WindowSweep sweep(m.geometry, 0, n);
    sweep.forward(m);
    for (long k = 0; k < n; ++k) {
      const std::vector<double> got(sweep.bottom(k), sweep.bottom(k) + w3);
      const std::vector<double> ref = brute::marginalize(joints[0], {k, (k + 1) % n, (k + 2) % n});
      EXPECT_LT(max_abs_diff(got, ref), kTol) << label(c) << " sweep window " << k;
      EXPECT_NEAR(sum(got), 1.0, kTol) << label(c) << " sweep window " << k;
    }
  }
}

// A rank's sweep over a block of windows (with its own halo at every layer), including
// blocks that wrap around the periodic boundary, gives the same exact marginals.
TEST(Marginals, PartialWindowSweepsMatchBruteForce) {
  std::uint64_t seed = 450;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const auto joints = brute::layer_joints(m);
    const long n = c.sites;
    const std::size_t w3 = static_cast<std::size_t>(c.chi[0]) * c.chi[0] * c.chi[0];
    const std::vector<std::pair<long, long>> blocks = {{1, 1}, {3, 5}, {n - 2, 4}, {n / 2, n / 2}};
    for (const auto& [first, count] : blocks) {
      cmera::WindowSweep sweep(m.geometry, first, count);
      sweep.forward(m);
      for (long k = 0; k < count; ++k) {
        const long s = (first + k) % n;
        const std::vector<double> got(sweep.bottom(k), sweep.bottom(k) + w3);
        EXPECT_LT(max_abs_diff(got, brute::marginalize(joints[0], {s, (s + 1) % n, (s + 2) % n})),
                  kTol)
            << label(c) << " block (" << first << ", " << count << ") window " << s;
      }
    }
  }
}

TEST(Marginals, OverlappingWindowsAgreeOnSharedSites) {
  std::uint64_t seed = 500;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const long n = c.sites;
    const int d = c.chi[0];
    cmera::WindowSweep sweep(m.geometry, 0, n);
    sweep.forward(m);
    for (long k = 0; k < n; ++k) {
      const long a = (k + 1) % n, b = (k + 2) % n;
      const auto left = cmera::site_marginal(m, 0, {k, a, b});
      const auto right = cmera::site_marginal(m, 0, {a, b, (k + 3) % n});
      // Shared sites (a, b) are positions 1, 2 of the left and 0, 1 of the right window.
      EXPECT_LT(max_abs_diff(brute::marginalize({left.dims, left.p}, {1, 2}),
                             brute::marginalize({right.dims, right.p}, {0, 1})),
                kTol)
          << label(c) << " windows " << k << ", " << k + 1;
      // Same through the sweep's windows: marginalize out the first / last site by hand.
      std::vector<double> from_left(d * d, 0.0), from_right(d * d, 0.0);
      const double* pl = sweep.bottom(k);
      const double* pr = sweep.bottom(a);
      for (int x = 0; x < d; ++x)
        for (int yz = 0; yz < d * d; ++yz) {
          from_left[yz] += pl[x * d * d + yz];
          from_right[yz] += pr[yz * d + x];
        }
      EXPECT_LT(max_abs_diff(from_left, from_right), kTol) << label(c) << " sweep window " << k;
    }
  }
}

}  // namespace
