// Swendsen-Wang sampling of the periodic 2D Ising model and its exact references
// (ising2d.hpp). One SW sweep activates each satisfied bond with p = 1 - exp(-2 beta),
// joins clusters by union-find, and gives every cluster a fresh random spin. Trade-off:
// SW touches every bond each sweep, more work than a Wolff flip, but a sweep is one fixed
// pass over the lattice whose random numbers depend only on the chain's own history, so
// chains are reproducible without tuning a flips-per-sweep count to the cluster size.
#include "cmera/ising2d.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fmt/format.h>
#include <limits>
#include <numbers>

#include "cmera/error.hpp"
#include "cmera/rng.hpp"

namespace cmera::ising2d {

namespace {

// Union-find over the sites with path halving; a union hangs the larger root under the
// smaller, so the root of a cluster is its first site in row-major order.
class Clusters {
 public:
  explicit Clusters(std::size_t n) : parent_(n) {}
  void reset() {
    for (std::size_t i = 0; i < parent_.size(); ++i) parent_[i] = static_cast<std::int32_t>(i);
  }
  std::int32_t find(std::int32_t i) {
    while (parent_[i] != i) {
      parent_[i] = parent_[parent_[i]];
      i = parent_[i];
    }
    return i;
  }
  void join(std::int32_t a, std::int32_t b) {
    a = find(a);
    b = find(b);
    if (a < b)
      parent_[b] = a;
    else if (b < a)
      parent_[a] = b;
  }

 private:
  std::vector<std::int32_t> parent_;
};

class SwendsenWang {
 public:
  SwendsenWang(long L, double beta, std::mt19937_64& rng)
      : L_(L), n_(static_cast<std::size_t>(L * L)), rng_(rng), clusters_(n_), spin_(n_),
        new_spin_(n_) {
    // rng() < threshold_ has probability p_bond up to 2^-64. p_bond rounds to 1 for
    // beta >~ 18, where the largest threshold is the nearest representable choice.
    const double scaled = std::ldexp(-std::expm1(-2.0 * beta), 64);
    threshold_ = scaled >= 0x1.0p64 ? std::numeric_limits<std::uint64_t>::max()
                                    : static_cast<std::uint64_t>(scaled);
    for (auto& s : spin_) s = static_cast<std::uint8_t>(rng_() >> 63);
  }

  void sweep() {
    clusters_.reset();
    const auto L = static_cast<std::int32_t>(L_);
    for (std::int32_t y = 0; y < L; ++y) {
      const std::int32_t row = y * L, below = ((y + 1) % L) * L;
      for (std::int32_t x = 0; x < L; ++x) {
        const std::int32_t i = row + x, right = row + (x + 1) % L, down = below + x;
        if (spin_[i] == spin_[right] && rng_() < threshold_) clusters_.join(i, right);
        if (spin_[i] == spin_[down] && rng_() < threshold_) clusters_.join(i, down);
      }
    }
    // A root is the first site of its cluster, so visiting sites in order meets it first.
    const auto n = static_cast<std::int32_t>(n_);
    for (std::int32_t i = 0; i < n; ++i) {
      const std::int32_t r = clusters_.find(i);
      if (r == i) new_spin_[i] = static_cast<std::uint8_t>(rng_() >> 63);
      spin_[i] = new_spin_[r];
    }
  }

  const std::vector<std::uint8_t>& spins() const { return spin_; }

 private:
  long L_;
  std::size_t n_;
  std::mt19937_64& rng_;
  Clusters clusters_;
  std::vector<std::uint8_t> spin_, new_spin_;
  std::uint64_t threshold_ = 0;
};

// sign * exp(log_abs): Kaufman's products are each ~exp(N) and may be negative.
struct SignedLog {
  double log_abs = -std::numeric_limits<double>::infinity();
  int sign = 1;
};

}  // namespace

double parse_beta(const std::string& text) {
  if (text == "critical") return kBetaCritical;
  errno = 0;
  char* end = nullptr;
  const double b = std::strtod(text.c_str(), &end);
  const bool ok = !text.empty() && end == text.c_str() + text.size() && errno == 0 &&
                  std::isfinite(b) && b > 0;
  if (!ok)
    throw Error(fmt::format("--beta must be a positive number or 'critical', got '{}'", text));
  return b;
}

Params resolved(Params p) {
  // L * L sites are indexed by int32 in the union-find.
  if (p.size < 2 || p.size > 46340)
    throw Error(fmt::format("--size must be in [2, 46340], got {}", p.size));
  if (!(std::isfinite(p.beta) && p.beta > 0))
    throw Error(fmt::format("--beta must be a positive number, got {}", p.beta));
  if (p.samples <= 0)
    throw Error(fmt::format("--samples must be a positive integer, got {}", p.samples));
  if (p.chains == 0) p.chains = std::min(p.samples, kDefaultMaxChains);
  if (p.chains < 1 || p.chains > p.samples || p.chains > std::numeric_limits<int>::max())
    throw Error(fmt::format("--chains must be in [1, samples = {}], got {}", p.samples, p.chains));
  if (p.thermalization < 0)
    throw Error(fmt::format("--thermalization must be >= 0, got {}", p.thermalization));
  if (p.sweeps_between < 1)
    throw Error(fmt::format("--sweeps-between must be >= 1, got {}", p.sweeps_between));
  return p;
}

void run_chains(const Params& p, long first_chain, long last_chain, std::uint8_t* out) {
  const BlockPartition rows = rows_of_chains(p);
  const long base = rows.begin(static_cast<int>(first_chain));
  const auto n = static_cast<std::size_t>(p.size * p.size);
  // Chains are independent and write disjoint rows: threads change nothing in the output.
#pragma omp parallel for schedule(dynamic, 1)
  for (long c = first_chain; c < last_chain; ++c) {
    auto rng = stream_rng(p.seed, Stream::kGenerate, static_cast<std::uint64_t>(c));
    SwendsenWang sw(p.size, p.beta, rng);
    for (long t = 0; t < p.thermalization; ++t) sw.sweep();
    for (long r = rows.begin(static_cast<int>(c)); r < rows.end(static_cast<int>(c)); ++r) {
      if (r > rows.begin(static_cast<int>(c)))
        for (long t = 0; t < p.sweeps_between; ++t) sw.sweep();
      std::copy(sw.spins().begin(), sw.spins().end(),
                out + static_cast<std::size_t>(r - base) * n);
    }
  }
}

double energy_per_site(const std::uint8_t* x, long L) {
  long aligned = 0;  // satisfied bonds among the 2N right and down bonds
  for (long y = 0; y < L; ++y)
    for (long c = 0; c < L; ++c) {
      const std::uint8_t s = x[y * L + c];
      aligned += (s == x[y * L + (c + 1) % L]) + (s == x[((y + 1) % L) * L + c]);
    }
  const double n = static_cast<double>(L * L);
  return -(2.0 * static_cast<double>(aligned) - 2.0 * n) / n;
}

double magnetization(const std::uint8_t* x, long L) {
  long up = 0;
  for (long i = 0; i < L * L; ++i) up += x[i];
  const double n = static_cast<double>(L * L);
  return (2.0 * static_cast<double>(up) - n) / n;
}

double onsager_energy_per_site(double beta) {
  // u = -coth 2K [1 + (2/pi)(2 tanh^2 2K - 1) K(k)], k = 2 sinh 2K / cosh^2 2K <= 1.
  // At K_c, k = 1 and K(k) diverges only logarithmically while its factor vanishes.
  const double t = 2.0 * beta;
  const double k = std::min(1.0, 2.0 * std::sinh(t) / (std::cosh(t) * std::cosh(t)));
  const double factor = 2.0 * std::tanh(t) * std::tanh(t) - 1.0;
  const double elliptic = k < 1.0 ? std::comp_ellint_1(k) : 0.0;
  return -(1.0 / std::tanh(t)) * (1.0 + (2.0 / std::numbers::pi) * factor * elliptic);
}

double kaufman_energy_per_site(double beta, long L) {
  // Kaufman (1949), in Beale's form (PRL 76, 78 (1996)) for an m x n torus, m = n = L:
  //   Z = 1/2 (2 sinh 2K)^(mn/2) sum_{i=1..4} Z_i,
  //   Z_1,2 = prod_{r<n} 2 cosh / 2 sinh (m gamma_{2r+1} / 2),
  //   Z_3,4 = prod_{r<n} 2 cosh / 2 sinh (m gamma_{2r} / 2),
  //   cosh gamma_l = cosh 2K coth 2K - cos(pi l / n) (gamma_l > 0), and
  //   gamma_0 = 2K + ln tanh K, negative above T_c (the sign matters in Z_4).
  // e = -(1/N) d ln Z / dK. Each ln Z_i is ~N, so its absolute rounding is ~1e-16 N:
  // harmless in the weights Z_i / Z, but fatal in a difference of two such numbers. So
  // d ln Z_i / dK is summed directly from the factors' ratios f'/f (tanh or coth), and
  // the first factor (r = 0) is differentiated separately, because 2 sinh(m gamma_0 / 2)
  // vanishes at K_c, where its Z_i is zero but its derivative is not.
  const double K = beta, m = static_cast<double>(L);
  const long n = L;
  const double c2 = std::cosh(2 * K), s2 = std::sinh(2 * K);
  const double dc = 2 * c2 * (1 - 1 / (s2 * s2));  // d/dK of cosh 2K coth 2K
  struct Term {
    SignedLog rest, first, dfirst;  // prod_{r>0} f_r (> 0), f_0, and d f_0 / dK
    double dlog_rest = 0;           // d/dK ln |prod_{r>0} f_r|
  };
  std::vector<Term> terms(4);
  for (int i = 0; i < 4; ++i) {
    const bool odd = i < 2, is_sinh = (i % 2) == 1;
    Term& t = terms[i];
    t.rest.log_abs = 0;
    for (long r = 0; r < n; ++r) {
      const long l = 2 * r + (odd ? 1 : 0);
      double gamma = 0, dgamma = 0;
      if (l == 0) {
        gamma = 2 * K + std::log(std::tanh(K));
        dgamma = 2 + 2 / s2;
      } else {
        const double ch = c2 * c2 / s2 - std::cos(std::numbers::pi * static_cast<double>(l) / n);
        gamma = std::acosh(ch);
        dgamma = dc / std::sinh(gamma);
      }
      const double x = m * gamma / 2, dx = m * dgamma / 2;
      // log(2 cosh x) and log(2 |sinh x|) without overflow for large |x|.
      const double ax = std::abs(x);
      const SignedLog cosh2{ax + std::log1p(std::exp(-2 * ax)), 1};
      const SignedLog sinh2{ax + std::log(-std::expm1(-2 * ax)), x < 0 ? -1 : 1};
      const SignedLog f = is_sinh ? sinh2 : cosh2, df_dx = is_sinh ? cosh2 : sinh2;
      if (r == 0) {
        t.first = f;
        t.dfirst = {df_dx.log_abs + std::log(std::abs(dx)), df_dx.sign * (dx < 0 ? -1 : 1)};
      } else {
        // x > 0 here (gamma_l > 0 for l >= 1), so coth x is finite.
        t.rest.log_abs += f.log_abs;
        t.dlog_rest += dx * (is_sinh ? 1 / std::tanh(x) : std::tanh(x));
      }
    }
  }
  double scale = -std::numeric_limits<double>::infinity();
  for (const Term& t : terms) scale = std::max(scale, t.rest.log_abs + t.first.log_abs);
  double z = 0, dz = 0;
  for (const Term& t : terms) {
    const double zi = t.first.sign * std::exp(t.rest.log_abs + t.first.log_abs - scale);
    z += zi;
    dz += zi * t.dlog_rest + t.dfirst.sign * std::exp(t.rest.log_abs + t.dfirst.log_abs - scale);
  }
  return -(m * m / std::tanh(2 * K) + dz / z) / (m * m);
}

double spontaneous_magnetization(double beta) {
  if (beta <= kBetaCritical) return 0.0;
  const double s = std::sinh(2 * beta);
  return std::pow(1.0 - 1.0 / (s * s * s * s), 0.125);
}

}  // namespace cmera::ising2d
