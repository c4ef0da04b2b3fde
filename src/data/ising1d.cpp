// Exact samples and correlations of the periodic 1D Ising chain (ising1d.hpp).
// Sampling draws i.i.d. bonds and rejects configurations with an odd number of broken
// bonds: exact, and at least half of the tries are accepted, so it costs O(n) per sample
// on average. That trades a few wasted random numbers for not having to build the
// transfer-matrix conditionals of the closed chain.
#include "cmera/ising1d.hpp"

#include <cmath>
#include <fmt/format.h>

#include "cmera/error.hpp"
#include "cmera/rng.hpp"

namespace cmera::ising1d {

double correlation(double u, long n, long r) {
  r = ((r % n) + n) % n;
  const double un = std::pow(u, static_cast<double>(n));
  return (std::pow(u, static_cast<double>(r)) + std::pow(u, static_cast<double>(n - r))) /
         (1.0 + un);
}

double bond_parameter_for(double t, long n) {
  if (n < 2) throw Error(fmt::format("Ising chain needs at least 2 sites, got {}", n));
  if (!(t >= 0.0 && t < 1.0))
    throw Error(fmt::format("nearest-neighbour correlation must lie in [0, 1), got {}", t));
  // correlation(u, n, 1) increases with u (GKS inequality), from 0 at u = 0 to 1 at u = 1.
  double lo = 0.0, hi = 1.0;
  while (hi - lo > 1e-15) {
    const double mid = 0.5 * (lo + hi);
    if (correlation(mid, n, 1) < t)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

void draw(double u, long n, std::uint64_t seed, std::uint64_t k, std::uint8_t* out) {
  auto rng = stream_rng(seed, Stream::kGenerate, k);
  const double p_aligned = 0.5 * (1.0 + u);
  std::vector<int> bond(static_cast<std::size_t>(n));
  for (;;) {
    int broken = 0;
    for (long i = 0; i < n; ++i) {
      bond[i] = (uniform01(rng) < p_aligned) ? 1 : -1;
      broken += (bond[i] < 0);
    }
    if (broken % 2 == 0) break;
  }
  int s = (uniform01(rng) < 0.5) ? 1 : -1;
  for (long i = 0; i < n; ++i) {
    out[i] = static_cast<std::uint8_t>((s + 1) / 2);
    s *= bond[i];
  }
}

}  // namespace cmera::ising1d
