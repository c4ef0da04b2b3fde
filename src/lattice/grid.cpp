// Grid lattice checks, window index rules, table allocation and initialization of the 2D
// MERA (grid.hpp, docs/design-grid.md §1-§3). The index rules are the chain's
// (cone::coarse_window, docs/design.md §2) applied once per direction; nothing here
// knows how a window is contracted.
#include "cmera/grid.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "cmera/error.hpp"
#include "cmera/rng.hpp"

namespace cmera {

namespace {
// Same bound as the chain's top (src/model.cpp): the dense top joint must fit a node
// comfortably, 2^24 doubles = 128 MiB.
constexpr double kMaxTopEntries = 1 << 24;

double top_entries(const GridLattice& g) {
  return std::pow(static_cast<double>(g.chi.back()), static_cast<double>(g.top_sites()));
}

// Tables of one line's half-step: M coarse sites, alphabet K -> d.
LayerTables line_tables(int d, int K, long M, bool tied) {
  LayerTables t;
  t.d = d;
  t.K = K;
  t.coarse = M;
  t.tied = tied;
  const double out2 = 1.0 / (static_cast<double>(d) * d);
  t.W.assign(t.count() * t.w_size(), out2);
  t.U.assign(t.count() * t.u_size(), out2);
  return t;
}

LineTables half_step(int d, int K, long lines, long M, bool tied) {
  LineTables h;
  h.tied = tied;
  h.lines.assign(static_cast<std::size_t>(tied ? 1 : lines), line_tables(d, K, M, tied));
  return h;
}
}  // namespace

std::size_t GridLattice::top_size() const {
  std::size_t n = 1;
  for (long i = 0; i < top_sites(); ++i) n *= static_cast<std::size_t>(chi.back());
  return n;
}

void GridLattice::validate() const {
  if (chi.size() < 2)
    throw Error(
        fmt::format("model.chi must have at least 2 entries (alphabet and one layer), "
                    "got {}",
                    chi.size()));
  for (int c : chi)
    if (c < 2) throw Error(fmt::format("model.chi entries must be >= 2, got {}", c));
  const int T = depth();
  if (intermediate.size() > static_cast<std::size_t>(T))
    throw Error(fmt::format("model.intermediate_chi has {} entries, more than the {} steps of a "
                            "depth-{} model",
                            intermediate.size(), T, T));
  for (int c : intermediate)
    if (c < 2) throw Error(fmt::format("model.intermediate_chi entries must be >= 2, got {}", c));
  if (lx <= 0 || ly <= 0) throw Error(fmt::format("grid of {} x {} sites", lx, ly));
  if (T >= 62 || lx % (1L << T) != 0 || ly % (1L << T) != 0)
    throw Error(
        fmt::format("grid of {} x {} sites cannot be coarse-grained {} times (Lx and "
                    "Ly must be divisible by 2^depth = 2^{})",
                    lx, ly, T, T));
  if (lx_at(T) < 3 || ly_at(T) < 3)
    throw Error(
        fmt::format("depth {} leaves a {} x {} top grid for a {} x {} lattice; the top "
                    "needs at least 3 x 3 sites (use fewer layers)",
                    T, lx_at(T), ly_at(T), lx, ly));
  if (top_entries(*this) > kMaxTopEntries)
    throw Error(
        fmt::format("the top joint table over the {} x {} top grid would have {}^{} = "
                    "{:.3g} entries ({:.3g} GiB; the limit is 2^24 entries, 128 MiB); "
                    "add layers so that a smaller top grid remains",
                    lx_at(T), ly_at(T), chi.back(), top_sites(), top_entries(*this),
                    top_entries(*this) * sizeof(double) / (1 << 30)));
}

std::vector<int> GridLattice::intermediate_alphabets() const {
  std::vector<int> out;
  for (int l = 0; l < depth(); ++l) out.push_back(intermediate_chi(l));
  return out;
}

int GridLattice::max_alphabet() const {
  int most = 0;
  for (int c : chi) most = std::max(most, c);
  for (int c : intermediate) most = std::max(most, c);
  return most;
}

double GridLattice::table_bytes(bool tied) const {
  double entries = top_entries(*this);
  for (int l = 0; l < depth(); ++l) {
    const double d = chi[l], m = intermediate_chi(l), K = chi[l + 1];
    const double y_count = tied ? 1.0 : static_cast<double>(sites_at(l + 1));
    const double x_count = tied ? 1.0 : static_cast<double>(lx_at(l + 1) * ly_at(l));
    entries += y_count * (K * m * m + m * m * m * m) + x_count * (m * d * d + d * d * d * d);
  }
  return entries * sizeof(double);
}

GridWindowCone grid_window_cone(const GridLattice& g, int layer, long x, long y) {
  GridWindowCone c;
  c.x = cone::wrap(x, g.lx_at(layer));
  c.y = cone::wrap(y, g.ly_at(layer));
  // floor((s - 1) / 2) of docs/design.md §2, once per direction; s = 0 wraps to the last
  // coarse window (the lattice sizes are even, so parity survives the wrap).
  c.cx = cone::wrap(cone::coarse_window(c.x), g.lx_at(layer + 1));
  c.cy = cone::wrap(cone::coarse_window(c.y), g.ly_at(layer + 1));
  c.odd_x = c.x % 2 == 1;
  c.odd_y = c.y % 2 == 1;
  return c;
}

GridModel GridModel::uniform(const GridLattice& g, bool tied) {
  g.validate();
  GridModel m;
  m.lattice = g;
  m.tied = tied;
  for (int l = 0; l < g.depth(); ++l) {
    const int d = g.chi[l], mid = g.intermediate_chi(l), K = g.chi[l + 1];
    GridLayerTables t;
    t.y = half_step(mid, K, g.lx_at(l + 1), g.ly_at(l + 1), tied);
    t.x = half_step(d, mid, g.ly_at(l), g.lx_at(l + 1), tied);
    m.layers.push_back(std::move(t));
  }
  m.top.assign(g.top_size(), 1.0 / static_cast<double>(g.top_size()));
  return m;
}

double GridModel::normalization_error() const {
  double worst = row_sum_error(top, top.size());
  for (const auto& l : layers)
    for (const LineTables* h : {&l.y, &l.x})
      for (const auto& t : h->lines) worst = std::max(worst, t.normalization_error());
  return worst;
}

GridModel initialize_grid_model(const GridLattice& g, bool tied, InitKind kind, double noise,
                                std::uint64_t seed) {
  GridModel m = GridModel::uniform(g, tied);
  if (kind == InitKind::kUniform) return m;
  // Stream index: (layer, direction, line) packed, so a line's start does not depend on
  // how many lines the other layers have.
  auto stream = [&](int l, int direction, std::size_t line) {
    return stream_rng(seed, Stream::kInit,
                      (static_cast<std::uint64_t>(l) << 40) |
                          (static_cast<std::uint64_t>(direction) << 39) | line);
  };
  for (int l = 0; l < g.depth(); ++l)
    for (int direction = 0; direction < 2; ++direction) {
      LineTables& h = direction == 0 ? m.layers[l].y : m.layers[l].x;
      for (std::size_t i = 0; i < h.lines.size(); ++i) {
        auto rng = stream(l, direction, i);
        initialize_layer(h.lines[i], kind, noise, rng);
      }
    }
  auto rng = stream(g.depth(), 0, 0);
  random_row(m.top.data(), m.top.size(), rng);
  return m;
}

}  // namespace cmera
