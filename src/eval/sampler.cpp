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

JointDraw::JointDraw(const std::vector<double>& table, int K, long n) : K_(K), n_(n) {
  cdf_.resize(table.size());
  double acc = 0;
  for (std::size_t i = 0; i < table.size(); ++i) {
    acc += table[i];
    cdf_[i] = acc;
  }
}

void JointDraw::draw(std::mt19937_64& rng, std::vector<int>& values) const {
  // First index whose CDF exceeds u * total (skips zero entries).
  const double target = uniform01(rng) * cdf_.back();
  std::size_t idx = static_cast<std::size_t>(
      std::upper_bound(cdf_.begin(), cdf_.end(), target) - cdf_.begin());
  idx = std::min(idx, cdf_.size() - 1);
  values.assign(static_cast<std::size_t>(n_), 0);
  for (long j = n_ - 1; j >= 0; --j) {
    values[j] = static_cast<int>(idx % K_);
    idx /= K_;
  }
}

void draw_layer(const LayerTables& t, const std::vector<int>& coarse, std::vector<int>& a,
                std::vector<int>& fine, std::mt19937_64& rng) {
  const int d = t.d;
  const int row = d * d;
  const long M = t.coarse;
  a.assign(static_cast<std::size_t>(2 * M), 0);
  fine.assign(static_cast<std::size_t>(2 * M), 0);
  for (long j = 0; j < M; ++j) {
    const int o = draw_row(t.w(j) + coarse[j] * row, row, uniform01(rng));
    a[2 * j] = o / d;
    a[2 * j + 1] = o % d;
  }
  for (long j = 0; j < M; ++j) {
    const long right = (2 * j + 2) % (2 * M);
    const int o = draw_row(t.u(j) + (a[2 * j + 1] * d + a[right]) * row, row, uniform01(rng));
    fine[2 * j + 1] = o / d;
    fine[right] = o % d;
  }
}

AncestralSampler::AncestralSampler(const Model& model)
    : model_(model),
      top_(model.tables.top, model.geometry.chi.back(), model.geometry.top_sites()) {}

void AncestralSampler::draw(std::uint64_t seed, std::uint64_t k, std::uint8_t* out) const {
  const Geometry& g = model_.geometry;
  auto rng = stream_rng(seed, Stream::kSample, k);
  std::vector<int> coarse, a, x;
  top_.draw(rng, coarse);
  for (int l = g.depth() - 1; l >= 0; --l) {
    draw_layer(model_.tables.layers[l], coarse, a, x, rng);
    coarse.swap(x);
  }
  for (long i = 0; i < g.sites; ++i) out[i] = static_cast<std::uint8_t>(coarse[i]);
}

}  // namespace cmera
