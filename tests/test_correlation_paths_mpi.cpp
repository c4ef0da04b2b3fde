// The tied fast path of the model's C(r) (translation sums, one-layer descents, lag sums
// by FFT or by dot products; correlation.hpp) against second code paths, at whatever rank
// count ctest runs: the per-position path (one joint per cone pair from the top, one dot
// product per pair) on lattices whose rings exceed 32 sites (so the fast path's one-layer
// descents run), with its lag sums forced all-FFT, all-direct and chosen by cost,
// including N that are not powers of two and growing/shrinking alphabets; and the plain
// one-general-cone-per-pair reference, independent of both, on a subset of distances.
// Untied models must route to the per-position path. Tolerance 1e-12 absolute (C is
// O(1); the FFT's error is a few 1e-16 of the scale).
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>

#include "model_cases.hpp"
#include "cmera/comm.hpp"
#include "cmera/correlation.hpp"
#include "cmera/siteset.hpp"
#include "cmera/statistics.hpp"

namespace cmera {
namespace {

constexpr double kTol = 1e-12;

using Case = testing::ModelCase;

TEST(CorrelationPaths, TiedFastPathEqualsPerPositionPath) {
  const Comm comm(MPI_COMM_WORLD);
  std::uint64_t seed = 900;
  const std::vector<Case> cases = {{256, {2, 2, 2, 2, 2, 2, 2}, true},     // 4 top sites
                                   {384, {2, 3, 3, 3, 3, 3, 3, 3}, true},  // N = 3 * 2^7
                                   {320, {3, 2, 2, 2, 2, 2, 2}, true},     // N = 5 * 2^6
                                   {512, {2, 4, 4, 4, 4, 4, 4, 4}, true}};
  for (const Case& c : cases) {
    const Model m = testing::random_model(c, seed++);
    for (long max_r : {c.sites / 2, c.sites - 1, 37L}) {
      const std::vector<double> ref = model_correlation_by_position(comm, m, max_r);
      ASSERT_EQ(ref.size(), static_cast<std::size_t>(max_r));
      double largest = 0;
      for (double x : ref) largest = std::max(largest, std::abs(x));
      EXPECT_GT(largest, 1e-3) << testing::label(c);  // a model with correlations to check
      for (LagSums how : {LagSums::kAuto, LagSums::kFft, LagSums::kDirect}) {
        const std::vector<double> fast = model_correlation(comm, m, max_r, how);
        ASSERT_EQ(fast.size(), ref.size());
        for (long r = 1; r <= max_r; ++r)
          EXPECT_NEAR(fast[r - 1], ref[r - 1], kTol)
              << testing::label(c) << " r=" << r << " R=" << max_r << " sums " << static_cast<int>(how);
      }
    }
  }
}

// The independent reference on a few distances (it costs one cone per pair): nearest
// neighbours, distances meeting at middle layers, and the far end of the ring.
TEST(CorrelationPaths, TiedFastPathEqualsOneConePerPair) {
  const Comm comm(MPI_COMM_WORLD);
  const Case c{768, {2, 3, 3, 3, 3, 3, 3, 3, 3}, true};
  const Model m = testing::random_model(c, 950);
  const std::vector<double> fast = model_correlation(comm, m, c.sites - 1, LagSums::kFft);
  const std::vector<long> rs = {1, 2, 3, 17, 64, 255, 384, 511, 767};
  for (std::size_t k = comm.rank(); k < rs.size(); k += comm.size())
    EXPECT_NEAR(fast[rs[k] - 1], testing::correlation_one_cone_per_pair(m, rs[k]), kTol) << "r=" << rs[k];
}

// Untied models have no translation structure: model_correlation is the per-position path.
TEST(CorrelationPaths, UntiedModelsTakeThePerPositionPath) {
  const Comm comm(MPI_COMM_WORLD);
  const Case c{128, {2, 3, 3, 3, 3}, false};
  const Model m = testing::random_model(c, 960);
  const std::vector<double> a = model_correlation(comm, m, c.sites / 2);
  const std::vector<double> b = model_correlation_by_position(comm, m, c.sites / 2);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace cmera
