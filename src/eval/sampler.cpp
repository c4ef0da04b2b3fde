// Exact ancestral sampling of a MERA (sampler.hpp): top configuration by inverse CDF,
// then for each layer down every isometry, then every disentangler, each a draw from
// one small conditional row. Rows are d^2 long, so a linear CDF scan beats any
// precomputed alias table; only the (possibly large) top table keeps a CDF, searched
// by bisection. Draw order is fixed, so sample k is a pure function of (seed, k).
#include "cmera/sampler.hpp"

#include <algorithm>

#include "cmera/rng.hpp"

namespace cmera {

namespace {

// Index drawn from the (unnormalized) row p[0..n) with uniform u in [0, 1). Scaling by
// the row sum keeps rounding from running past the end; zero entries are never drawn.
int draw_row(const double* p, int n, double u) {
  double total = 0;
  for (int i = 0; i < n; ++i) total += p[i];
  const double target = u * total;
  double acc = 0;
  int last = 0;
  for (int i = 0; i < n; ++i) {
    if (p[i] <= 0) continue;
    acc += p[i];
    last = i;
    if (target < acc) return i;
  }
  return last;
}

}  // namespace

AncestralSampler::AncestralSampler(const Model& model) : model_(model) {
  const auto& top = model.tables.top;
  top_cdf_.resize(top.size());
  double acc = 0;
  for (std::size_t i = 0; i < top.size(); ++i) {
    acc += top[i];
    top_cdf_[i] = acc;
  }
}

void AncestralSampler::draw(std::uint64_t seed, std::uint64_t k, std::uint8_t* out) const {
  const Geometry& g = model_.geometry;
  auto rng = stream_rng(seed, Stream::kSample, k);

  // Top configuration: first index whose CDF exceeds u * total (skips zero entries).
  const double target = uniform01(rng) * top_cdf_.back();
  std::size_t idx = static_cast<std::size_t>(
      std::upper_bound(top_cdf_.begin(), top_cdf_.end(), target) - top_cdf_.begin());
  idx = std::min(idx, top_cdf_.size() - 1);
  const int T = g.depth();
  const long n_top = g.top_sites();
  const int K_top = g.chi[T];
  std::vector<int> coarse(static_cast<std::size_t>(n_top));
  for (long j = n_top - 1; j >= 0; --j) {
    coarse[j] = static_cast<int>(idx % K_top);
    idx /= K_top;
  }

  std::vector<int> a, x;
  for (int l = T - 1; l >= 0; --l) {
    const LayerTables& t = model_.tables.layers[l];
    const int d = t.d;
    const int row = d * d;
    const long M = t.coarse;
    a.assign(static_cast<std::size_t>(2 * M), 0);
    x.assign(static_cast<std::size_t>(2 * M), 0);
    for (long j = 0; j < M; ++j) {
      const int o = draw_row(t.w(j) + coarse[j] * row, row, uniform01(rng));
      a[2 * j] = o / d;
      a[2 * j + 1] = o % d;
    }
    for (long j = 0; j < M; ++j) {
      const long right = (2 * j + 2) % (2 * M);
      const int o = draw_row(t.u(j) + (a[2 * j + 1] * d + a[right]) * row, row, uniform01(rng));
      x[2 * j + 1] = o / d;
      x[right] = o % d;
    }
    coarse.swap(x);
  }
  for (long i = 0; i < g.sites; ++i) out[i] = static_cast<std::uint8_t>(coarse[i]);
}

}  // namespace cmera
