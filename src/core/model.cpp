// Geometry checks, table allocation and normalization of the classical MERA (model.hpp).
#include "cmera/model.hpp"

#include <cmath>
#include <fmt/format.h>

#include "cmera/error.hpp"

namespace cmera {

namespace {
// The top joint table is dense; beyond this size it no longer fits a node comfortably.
constexpr double kMaxTopEntries = 1 << 24;
}  // namespace

std::size_t Geometry::top_size() const {
  std::size_t n = 1;
  for (long i = 0; i < top_sites(); ++i) n *= static_cast<std::size_t>(chi.back());
  return n;
}

double Geometry::table_bytes(bool tied) const {
  double entries = std::pow(static_cast<double>(chi.back()), static_cast<double>(top_sites()));
  for (int l = 0; l < depth(); ++l) {
    const double d = chi[l], K = chi[l + 1];
    const double count = tied ? 1.0 : static_cast<double>(sites >> (l + 1));
    entries += count * (K * d * d + d * d * d * d);
  }
  return entries * sizeof(double);
}

void Geometry::validate() const {
  if (chi.size() < 2)
    throw Error(fmt::format("model.chi must have at least 2 entries (alphabet and one layer), "
                            "got {}", chi.size()));
  for (int c : chi)
    if (c < 2) throw Error(fmt::format("model.chi entries must be >= 2, got {}", c));
  const int T = depth();
  if (sites <= 0) throw Error(fmt::format("lattice has {} sites", sites));
  if (T >= 62 || sites % (1L << T) != 0)
    throw Error(fmt::format("lattice of {} sites cannot be coarse-grained {} times "
                            "(N must be divisible by 2^depth = 2^{})", sites, T, T));
  if (top_sites() < 3)
    throw Error(fmt::format("depth {} leaves {} top sites for N = {}; the top needs >= 3 "
                            "(use at most {} layers, i.e. len(model.chi) <= {})",
                            T, top_sites(), sites, T - 1, T));
  if (std::pow(static_cast<double>(chi.back()), static_cast<double>(top_sites())) > kMaxTopEntries)
    throw Error(fmt::format("top joint table would have {}^{} entries (> 2^24); add layers "
                            "so that fewer top sites remain", chi.back(), top_sites()));
}

long LayerTables::slot(long j) const {
  if (tied) return 0;
  const long m = j % coarse;
  return m < 0 ? m + coarse : m;
}

Tables Tables::zeros_like(const Tables& t) {
  Tables z = t;
  z.fill(0.0);
  return z;
}

void Tables::fill(double value) {
  for (auto& l : layers) {
    std::fill(l.W.begin(), l.W.end(), value);
    std::fill(l.U.begin(), l.U.end(), value);
  }
  std::fill(top.begin(), top.end(), value);
}

Model Model::uniform(const Geometry& g, bool tied) {
  g.validate();
  Model m;
  m.geometry = g;
  m.tied = tied;
  for (int l = 0; l < g.depth(); ++l) {
    LayerTables t;
    t.d = g.chi[l];
    t.K = g.chi[l + 1];
    t.coarse = g.sites_at(l + 1);
    t.tied = tied;
    const double out2 = 1.0 / (static_cast<double>(t.d) * t.d);
    t.W.assign(t.count() * t.w_size(), out2);
    t.U.assign(t.count() * t.u_size(), out2);
    m.tables.layers.push_back(std::move(t));
  }
  m.tables.top.assign(g.top_size(), 1.0 / static_cast<double>(g.top_size()));
  return m;
}

double row_sum_error(const std::vector<double>& v, std::size_t row) {
  double worst = 0;
  for (std::size_t r = 0; r < v.size(); r += row) {
    double s = 0;
    for (std::size_t i = 0; i < row; ++i) s += v[r + i];
    worst = std::max(worst, std::abs(s - 1.0));
  }
  return worst;
}

double LayerTables::normalization_error() const {
  const std::size_t row = static_cast<std::size_t>(d) * d;
  return std::max(row_sum_error(W, row), row_sum_error(U, row));
}

double Model::normalization_error() const {
  double worst = row_sum_error(tables.top, tables.top.size());
  for (const auto& l : tables.layers) worst = std::max(worst, l.normalization_error());
  return worst;
}

}  // namespace cmera
