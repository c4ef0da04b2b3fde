// The line-step kernels (src/core/line_product.cpp) against the plain triple loops
// they replace (the HPCG pattern: an optimized kernel next to its reference, tested
// equal), on shapes that fill the kernels' blocks exactly and ones that leave every kind
// of remainder (map rows, spectators, dot-product blocks), with and without accumulation;
// and the adjoints against the forward through the identity <g, A(J)> = <A^T(g), J>.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cmera/line_product.hpp"

namespace {

using cmera::line_apply;
using cmera::line_apply_adjoint_joint;
using cmera::line_apply_adjoint_map;

struct Shape {
  long np, nq, K;
};

// np not a multiple of 4 (the blocks along spectators): 1 and 3 leave only a remainder of
// rows, 6 and 27 both; multiples of 4 (outer products): 4 to 16 one tile of rows, 20 and
// 24 a full tile and a narrower one, 64 four full ones. K: shorter than a block, exactly
// one or several blocks, and with remainders of every block size (2, 4, 8, 32, 64).
const Shape kShapes[] = {{1, 1, 1},   {2, 4, 7},    {3, 3, 8},   {4, 4, 32},   {4, 8, 33},
                         {6, 5, 100}, {8, 8, 256},  {8, 4, 203}, {12, 5, 67},  {16, 16, 75},
                         {20, 3, 130}, {24, 7, 9},  {27, 9, 64}, {9, 27, 41},  {16, 8, 1},
                         {64, 64, 40}, {64, 32, 141}, {2, 2, 1031}};

std::vector<double> random_vector(std::size_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = u(rng);
  return v;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0, scale = 1e-300;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return worst / scale;
}

constexpr double kRounding = 1e-14;  // relative to the largest entry: sums of <= 1031 terms

TEST(LineProduct, ApplyEqualsPlainLoops) {
  std::mt19937_64 rng(11);
  for (const Shape& s : kShapes) {
    const auto C = random_vector(s.np * s.nq, rng), J = random_vector(s.K * s.nq, rng);
    std::vector<double> out(s.np * s.K, 7.0), ref(s.np * s.K, 0.0);
    for (long k = 0; k < s.K; ++k)
      for (long x = 0; x < s.np; ++x)
        for (long q = 0; q < s.nq; ++q) ref[x + s.np * k] += C[x + s.np * q] * J[k + s.K * q];
    line_apply(s.np, s.nq, s.K, C.data(), J.data(), out.data());
    EXPECT_LT(max_rel_diff(out, ref), kRounding) << s.np << " x " << s.nq << ", K = " << s.K;
  }
}

TEST(LineProduct, AdjointsEqualPlainLoopsWithAndWithoutAccumulation) {
  std::mt19937_64 rng(12);
  for (const Shape& s : kShapes)
    for (bool accumulate : {false, true}) {
      const auto C = random_vector(s.np * s.nq, rng), J = random_vector(s.K * s.nq, rng),
                 G = random_vector(s.np * s.K, rng), start_J = random_vector(s.K * s.nq, rng),
                 start_C = random_vector(s.np * s.nq, rng);
      std::vector<double> g_J = start_J, g_C = start_C;
      std::vector<double> ref_J = accumulate ? start_J : std::vector<double>(J.size(), 0.0),
                          ref_C = accumulate ? start_C : std::vector<double>(C.size(), 0.0);
      for (long k = 0; k < s.K; ++k)
        for (long x = 0; x < s.np; ++x)
          for (long q = 0; q < s.nq; ++q) {
            ref_J[k + s.K * q] += G[x + s.np * k] * C[x + s.np * q];
            ref_C[x + s.np * q] += G[x + s.np * k] * J[k + s.K * q];
          }
      line_apply_adjoint_joint(s.np, s.nq, s.K, C.data(), G.data(), g_J.data(), accumulate);
      line_apply_adjoint_map(s.np, s.nq, s.K, G.data(), J.data(), g_C.data(), accumulate);
      EXPECT_LT(max_rel_diff(g_J, ref_J), kRounding) << s.np << " x " << s.nq << ", K = " << s.K;
      EXPECT_LT(max_rel_diff(g_C, ref_C), kRounding) << s.np << " x " << s.nq << ", K = " << s.K;
    }
}

// <G, C J^T> computed three ways: through line_apply, and through each adjoint.
TEST(LineProduct, AdjointIdentity) {
  std::mt19937_64 rng(13);
  for (const Shape& s : kShapes) {
    const auto C = random_vector(s.np * s.nq, rng), J = random_vector(s.K * s.nq, rng),
               G = random_vector(s.np * s.K, rng);
    std::vector<double> out(s.np * s.K), g_J(J.size()), g_C(C.size());
    line_apply(s.np, s.nq, s.K, C.data(), J.data(), out.data());
    line_apply_adjoint_joint(s.np, s.nq, s.K, C.data(), G.data(), g_J.data(), false);
    line_apply_adjoint_map(s.np, s.nq, s.K, G.data(), J.data(), g_C.data(), false);
    double forward = 0, via_J = 0, via_C = 0, scale = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      forward += G[i] * out[i];
      scale += std::abs(G[i] * out[i]);
    }
    for (std::size_t i = 0; i < J.size(); ++i) via_J += g_J[i] * J[i];
    for (std::size_t i = 0; i < C.size(); ++i) via_C += g_C[i] * C[i];
    EXPECT_NEAR(via_J, forward, 1e-13 * scale) << s.np << " x " << s.nq << ", K = " << s.K;
    EXPECT_NEAR(via_C, forward, 1e-13 * scale) << s.np << " x " << s.nq << ", K = " << s.K;
  }
}

}  // namespace
