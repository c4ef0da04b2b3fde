// Ancestral samples reproduce the exact marginals (docs/design.md §2) within statistical error:
// Pearson chi-square tests of empirical 3-site windows (including wrapping ones) and
// far pairs against site_marginal, for a tied and an untied random model. The threshold
// is the exact chi-square quantile (survival function in closed form for integer
// degrees of freedom, inverted by bisection) at a Bonferroni-corrected level, so the
// whole test raises a false alarm with probability <= 1e-6 (to the accuracy of the
// asymptotic chi-square law, good here: every expected count is > 5000). The
// seed is fixed, so the outcome is deterministic; a control shows the same test rejects
// samples of a different model. Trade-off: 200000 samples make it ~1 s but limit power
// to deviations of order sqrt(cells / 200000) ~ 0.5% in probability.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <string>

#include "cmera/init.hpp"
#include "cmera/sampler.hpp"
#include "cmera/siteset.hpp"
#include "chi_square.hpp"

namespace {

using cmera::Model;

struct Tally {
  std::vector<long> sites;
  std::vector<long> counts;
};

// Pearson statistic of counts against exact probabilities; df = cells - 1.
double pearson(const std::vector<long>& counts, const std::vector<double>& p, long samples,
               double* min_expected) {
  double x2 = 0;
  *min_expected = 1e300;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double e = p[i] * static_cast<double>(samples);
    *min_expected = std::min(*min_expected, e);
    x2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return x2;
}

constexpr long kSites = 12;
constexpr long kSamples = 200000;
constexpr std::uint64_t kSeed = 20240611;

// Windows at both ends (wrapping), in the middle, and pairs with disjoint cones.
const std::vector<std::vector<long>> kSets = {{0, 1, 2},  {4, 5, 6}, {7, 8, 9}, {10, 11, 0},
                                              {11, 0, 1}, {0, 6},    {2, 9}};
constexpr int kModels = 2;
// Bonferroni: kModels * kSets.size() tests share the overall false-alarm rate 1e-6.
const double kPerTestAlpha = 1e-6 / (kModels * static_cast<double>(kSets.size()));

std::vector<Tally> tally(const Model& m, std::uint64_t seed) {
  const cmera::AncestralSampler sampler(m);
  std::vector<Tally> t;
  for (const auto& s : kSets) t.push_back({s, std::vector<long>(1u << s.size(), 0)});
  std::vector<std::uint8_t> x(kSites);
  for (long k = 0; k < kSamples; ++k) {
    sampler.draw(seed, static_cast<std::uint64_t>(k), x.data());
    for (auto& ts : t) {
      std::size_t idx = 0;
      for (long site : ts.sites) idx = 2 * idx + x[site];
      ++ts.counts[idx];
    }
  }
  return t;
}

Model model(bool tied, std::uint64_t seed) {
  return cmera::initialize_model(cmera::Geometry{kSites, {2, 2}}, tied, cmera::InitKind::kRandom,
                                 1.0, seed);
}

TEST(Sampler, ChiSquareQuantileIsExact) {
  // Reference values from standard tables.
  EXPECT_NEAR(chi2_upper_quantile(0.05, 1), 3.841458820694124, 1e-9);
  EXPECT_NEAR(chi2_upper_quantile(0.05, 3), 7.814727903251178, 1e-9);
  EXPECT_NEAR(chi2_upper_quantile(1e-3, 7), 24.32188634, 1e-7);
  EXPECT_NEAR(chi2_survival(2.0, 2), std::exp(-1.0), 1e-15);
}

TEST(Sampler, ReproducesExactMarginals) {
  for (bool tied : {false, true}) {
    const Model m = model(tied, tied ? 31 : 32);
    const auto tallies = tally(m, kSeed);
    for (const auto& ts : tallies) {
      const auto exact = cmera::site_marginal(m, 0, ts.sites);
      const int df = static_cast<int>(exact.p.size()) - 1;
      double min_e = 0;
      const double x2 = pearson(ts.counts, exact.p, kSamples, &min_e);
      const double threshold = chi2_upper_quantile(kPerTestAlpha, df);
      ASSERT_GE(min_e, 5.0) << "chi-square approximation needs expected counts >= 5";
      EXPECT_LT(x2, threshold) << (tied ? "tied" : "untied") << " set starting at "
                               << ts.sites[0] << ": X^2 = " << x2 << ", df = " << df;
      std::string set;
      for (long site : ts.sites) set += (set.empty() ? "" : ",") + std::to_string(site);
      std::printf("  %-6s {%-8s} X^2 = %6.2f (df %d, threshold %.2f, min expected %.0f)\n",
                  tied ? "tied" : "untied", set.c_str(), x2, df, threshold, min_e);
    }
  }
}

TEST(Sampler, TestRejectsAnotherModel) {
  const Model drawn = model(false, 32);
  const Model other = model(false, 33);
  const auto tallies = tally(drawn, kSeed);
  const auto exact = cmera::site_marginal(other, 0, tallies[0].sites);
  double min_e = 0;
  const double x2 = pearson(tallies[0].counts, exact.p, kSamples, &min_e);
  EXPECT_GT(x2, chi2_upper_quantile(kPerTestAlpha, 7));
}

TEST(Sampler, SampleDependsOnlyOnSeedAndIndex) {
  const Model m = model(true, 5);
  const cmera::AncestralSampler a(m), b(m);
  std::vector<std::uint8_t> x(kSites), y(kSites), z(kSites);
  a.draw(kSeed, 17, x.data());
  b.draw(kSeed, 3, z.data());  // other draws in between must not matter
  b.draw(kSeed, 17, y.data());
  EXPECT_EQ(x, y);
  // Different indices give different streams: over 64 indices some sample must differ.
  bool differs = false;
  for (std::uint64_t k = 0; k < 64 && !differs; ++k) {
    b.draw(kSeed, k + 100, z.data());
    differs = (z != x);
  }
  EXPECT_TRUE(differs);
}

}  // namespace
