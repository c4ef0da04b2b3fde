// Exact chi-square tail and quantile for integer degrees of freedom, shared by the
// sampler tests (tests/test_sampler.cpp, tests/test_grid.cpp): the survival function in
// closed form, inverted by bisection, so thresholds carry no table or series error.
#pragma once
#include <cmath>

namespace {

// Upper tail P(X > x) of a chi-square law with integer df: Q(df/2, x/2) with the
// regularized upper gamma Q obtained by the exact recurrence
// Q(a + 1, y) = Q(a, y) + y^a e^-y / Gamma(a + 1), from Q(1, y) = e^-y or
// Q(1/2, y) = erfc(sqrt(y)).
double chi2_survival(double x, int df) {
  const double y = 0.5 * x;
  double a = (df % 2 == 0) ? 1.0 : 0.5;
  double q = (df % 2 == 0) ? std::exp(-y) : std::erfc(std::sqrt(y));
  for (; a < 0.5 * df; a += 1.0) q += std::exp(a * std::log(y) - y - std::lgamma(a + 1.0));
  return q;
}

// x with P(X > x) = alpha, by bisection (survival is decreasing in x).
double chi2_upper_quantile(double alpha, int df) {
  double lo = 0.0, hi = 1.0;
  while (chi2_survival(hi, df) > alpha) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (chi2_survival(mid, df) > alpha ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace
