// Exact marginals of small site sets of the grid MERA (grid_pairs.hpp, docs/design-grid.md
// §6): walk the set's parents upward until they fit one 3 x 3 window (or reach the top),
// start from that window's cached marginal, and descend layer by layer through one line
// conditional per touched column, then per touched row. A conditional is the chain's
// general cone of one line (ConePlan on a one-layer chain) evaluated on unit vectors, so
// no second copy of the 1D contraction exists here.
#include "cmera/grid_pairs.hpp"


#include <algorithm>
#include <fmt/format.h>

#include "cmera/error.hpp"
#include "cmera/siteset.hpp"

namespace cmera::grid {

namespace {

using cone::wrap;

// A variable of one descend: stage 0 = a site of the coarser layer (before) or of the
// finer layer (after), 1 = of the intermediate grid, 2 = of the finer layer (during).
long var(int stage, long x, long y) { return (static_cast<long>(stage) << 40) | (y << 20) | x; }
long var_x(long v) { return v & 0xfffff; }
long var_y(long v) { return (v >> 20) & 0xfffff; }

std::size_t power(int base, std::size_t n) {
  std::size_t p = 1;
  for (std::size_t i = 0; i < n; ++i) p *= static_cast<std::size_t>(base);
  return p;
}

// One layer of a site set's cone (docs/design-grid.md §2): the set's rows with their x's,
// each row's intermediate parents (the 1D cone rule along the row), the intermediate
// columns with their y's and each column's coarse parents (the 1D rule along the column).
struct Step {
  std::map<long, std::vector<long>> rows, row_parents, columns, column_parents;
};

Step cone_step(const GridLattice& g, int layer, const std::vector<GridSite>& set) {
  Step st;
  for (const GridSite& s : set) st.rows[s.second].push_back(s.first);
  const Geometry row_line{g.lx_at(layer), {g.chi[layer], g.intermediate_chi(layer)}};
  const Geometry column_line{g.ly_at(layer), {g.intermediate_chi(layer), g.chi[layer + 1]}};
  for (auto& [y, xs] : st.rows) {
    std::sort(xs.begin(), xs.end());
    st.row_parents[y] = cone_parents(row_line, 0, xs);
    for (long c : st.row_parents[y]) st.columns[c].push_back(y);
  }
  for (auto& [c, ys] : st.columns) {
    std::sort(ys.begin(), ys.end());
    st.column_parents[c] = cone_parents(column_line, 0, ys);
  }
  return st;
}

// Sums `consumed` (labels of j) out against cond[consumed values][produced values] and
// appends `produced` (alphabet d): one line's conditional applied to a joint. An odometer
// over the input entries carries the kept and consumed indices, so an entry costs O(1)
// besides the produced values.
SetJoint apply_line(const SetJoint& j, const std::vector<long>& consumed,
                    const std::vector<long>& produced, int d, const std::vector<double>& cond) {
  const int n = static_cast<int>(j.labels.size());
  std::vector<std::size_t> qstride(n, 0), kstride(n, 0);
  std::size_t st = 1;
  for (std::size_t k = consumed.size(); k-- > 0;) {
    const auto at = std::find(j.labels.begin(), j.labels.end(), consumed[k]) - j.labels.begin();
    qstride[at] = st;
    st *= static_cast<std::size_t>(j.dims[at]);
  }
  SetJoint out;
  st = 1;
  for (int i = n - 1; i >= 0; --i)
    if (qstride[i] == 0 && std::find(consumed.begin(), consumed.end(), j.labels[i]) == consumed.end()) {
      kstride[i] = st;
      st *= static_cast<std::size_t>(j.dims[i]);
    }
  for (int i = 0; i < n; ++i)
    if (std::find(consumed.begin(), consumed.end(), j.labels[i]) == consumed.end()) {
      out.labels.push_back(j.labels[i]);
      out.dims.push_back(j.dims[i]);
    }
  for (long v : produced) {
    out.labels.push_back(v);
    out.dims.push_back(d);
  }
  const std::size_t np = power(d, produced.size());
  out.p.assign(st * np, 0.0);
  std::vector<int> value(n, 0);
  std::size_t q = 0, k = 0;
  for (std::size_t i = 0; i < j.p.size(); ++i) {
    const double w = j.p[i];
    if (w != 0.0) {
      const double* c = cond.data() + q * np;
      double* o = out.p.data() + k * np;
      for (std::size_t x = 0; x < np; ++x) o[x] += w * c[x];
    }
    for (int a = n - 1; a >= 0; --a) {
      q += qstride[a];
      k += kstride[a];
      if (++value[a] < j.dims[a]) break;
      q -= qstride[a] * j.dims[a];
      k -= kstride[a] * j.dims[a];
      value[a] = 0;
    }
  }
  return out;
}

// The marginal of j on `labels` (all in j), in that order.
std::vector<double> project(const SetJoint& j, const std::vector<long>& labels) {
  const int n = static_cast<int>(j.labels.size());
  std::vector<std::size_t> ostride(n, 0);
  std::size_t size = 1;
  for (std::size_t k = labels.size(); k-- > 0;) {
    const auto at = std::find(j.labels.begin(), j.labels.end(), labels[k]) - j.labels.begin();
    ostride[at] = size;
    size *= static_cast<std::size_t>(j.dims[at]);
  }
  std::vector<double> out(size, 0.0);
  std::vector<int> value(n, 0);
  std::size_t o = 0;
  for (std::size_t i = 0; i < j.p.size(); ++i) {
    out[o] += j.p[i];
    for (int a = n - 1; a >= 0; --a) {
      o += ostride[a];
      if (++value[a] < j.dims[a]) break;
      o -= ostride[a] * j.dims[a];
      value[a] = 0;
    }
  }
  return out;
}

std::vector<long> labels_of(const std::vector<GridSite>& set) {
  std::vector<long> l;
  for (const GridSite& s : set) l.push_back(var(0, s.first, s.second));
  return l;
}

// Corner c of a 3-site interval of a periodic axis of n sites holding every coordinate,
// or -1.
long interval_corner(const std::vector<long>& coords, long n) {
  for (long c : coords) {
    bool all = true;
    for (long v : coords) all = all && wrap(v - c, n) <= 2;
    if (all) return c;
  }
  return -1;
}

}  // namespace

GridSetMarginals::GridSetMarginals(const GridModel& m, const GridWindowMarginals& windows)
    : m_(m), windows_(windows) {
  if (!m.tied) return;
  const GridLattice& g = m.lattice;
  window_sums_.resize(static_cast<std::size_t>(g.depth()) + 1);
  for (int l = 0; l <= g.depth(); ++l) {
    std::vector<double>& sum = window_sums_[l];
    sum.assign(grid_window_size(g.chi[l]), 0.0);
    for (long y = 0; y < g.ly_at(l); ++y)
      for (long x = 0; x < g.lx_at(l); ++x) {
        const double* w = windows.window(l, x, y);
        for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += w[i];
      }
  }
}

bool GridSetMarginals::fits_window(int layer, const std::vector<GridSite>& set, long* wx,
                                   long* wy) const {
  std::vector<long> xs, ys;
  for (const GridSite& s : set) {
    xs.push_back(s.first);
    ys.push_back(s.second);
  }
  *wx = interval_corner(xs, m_.lattice.lx_at(layer));
  *wy = interval_corner(ys, m_.lattice.ly_at(layer));
  return *wx >= 0 && *wy >= 0;
}

std::vector<GridSite> GridSetMarginals::parents(int layer, const std::vector<GridSite>& set) const {
  const Step st = cone_step(m_.lattice, layer, set);
  std::vector<GridSite> up;
  for (const auto& [c, qs] : st.column_parents)
    for (long q : qs) up.push_back({c, q});
  std::sort(up.begin(), up.end());
  return up;
}

std::vector<std::vector<GridSite>> GridSetMarginals::walk(int layer,
                                                          const std::vector<GridSite>& sites,
                                                          long* wx, long* wy) const {
  const GridLattice& g = m_.lattice;
  std::vector<std::vector<GridSite>> sets(static_cast<std::size_t>(layer) + 1);
  for (const GridSite& s : sites)
    sets[layer].push_back({wrap(s.first, g.lx_at(layer)), wrap(s.second, g.ly_at(layer))});
  std::sort(sets[layer].begin(), sets[layer].end());
  if (std::adjacent_find(sets[layer].begin(), sets[layer].end()) != sets[layer].end())
    throw Error(fmt::format("grid marginal: sites must be distinct modulo the {} x {} grid of "
                            "layer {}",
                            g.lx_at(layer), g.ly_at(layer), layer));
  for (int l = layer;; ++l) {
    if (fits_window(l, sets[l], wx, wy)) return sets;
    if (l == g.depth()) {
      *wx = *wy = -1;
      return sets;
    }
    sets.push_back(parents(l, sets[l]));
  }
}

SetJoint GridSetMarginals::from_window(int layer, const double* rho, long wx, long wy,
                                       const std::vector<GridSite>& set) const {
  const GridLattice& g = m_.lattice;
  const int K = g.chi[layer];
  std::vector<int> place;
  for (const GridSite& s : set)
    place.push_back(window_place(static_cast<int>(wrap(s.first - wx, g.lx_at(layer))),
                                 static_cast<int>(wrap(s.second - wy, g.ly_at(layer)))));
  SetJoint j{labels_of(set), std::vector<int>(set.size(), K), {}};
  j.p.assign(power(K, set.size()), 0.0);
  const std::size_t n = grid_window_size(K);
  int digit[9];
  for (std::size_t w = 0; w < n; ++w) {
    std::size_t rest = w;
    for (int p = 8; p >= 0; --p) {
      digit[p] = static_cast<int>(rest % K);
      rest /= K;
    }
    std::size_t o = 0;
    for (int p : place) o = o * K + digit[p];
    j.p[o] += rho[w];
  }
  return j;
}

SetJoint GridSetMarginals::from_top(const std::vector<GridSite>& set,
                                    const std::vector<double>& top) const {
  const GridLattice& g = m_.lattice;
  const int T = g.depth(), K = g.chi[T];
  std::vector<long> sites;
  for (const GridSite& s : set) sites.push_back(g.site(T, s.first, s.second));
  SetJoint j{labels_of(set), std::vector<int>(set.size(), K), {}};
  j.p.assign(power(K, set.size()), 0.0);
  table_marginal(K, g.top_sites(), sites, top.data(), j.p.data());
  return j;
}

// Sum of the top table over every translation of the top grid: the marginal of a set on
// it is the sum of the set's marginals at every translation, in one pass over the table.
const std::vector<double>& GridSetMarginals::top_sum() {
  if (!top_sum_.empty()) return top_sum_;
  const GridLattice& g = m_.lattice;
  const int T = g.depth();
  const std::size_t K = static_cast<std::size_t>(g.chi[T]);
  const long nx = g.lx_at(T), ny = g.ly_at(T), n = g.top_sites();
  top_sum_.assign(m_.top.size(), 0.0);
  std::vector<long> moved;  // [translation][site]: the site that moves onto it
  for (long ty = 0; ty < ny; ++ty)
    for (long tx = 0; tx < nx; ++tx)
      for (long s = 0; s < n; ++s) moved.push_back(g.site(T, s % nx + tx, s / nx + ty));
  std::vector<int> digit(static_cast<std::size_t>(n));
  for (std::size_t flat = 0; flat < m_.top.size(); ++flat) {
    std::size_t rest = flat;
    for (long s = n - 1; s >= 0; --s) {
      digit[s] = static_cast<int>(rest % K);
      rest /= K;
    }
    for (const long* from = moved.data(); from < moved.data() + moved.size(); from += n) {
      std::size_t to = 0;
      for (long s = 0; s < n; ++s) to = to * K + static_cast<std::size_t>(digit[from[s]]);
      top_sum_[to] += m_.top[flat];
    }
  }
  return top_sum_;
}

const std::vector<double>& GridSetMarginals::conditional(int layer, int dir, long line,
                                                         const std::vector<long>& fine) {
  const LineTables& lines = dir == 0 ? m_.layers[layer].y : m_.layers[layer].x;
  const long line_key = lines.tied ? 0 : wrap(line, static_cast<long>(lines.lines.size()));
  const auto key = std::make_tuple(layer, dir, line_key, fine);
  const auto hit = conditionals_.find(key);
  if (hit != conditionals_.end()) return hit->second;
  const auto chain_key = std::make_tuple(layer, dir, line_key);
  if (!lines_.count(chain_key)) {
    const LayerTables& t = lines.line(line);
    Model chain;
    chain.geometry = Geometry{2 * t.coarse, {t.d, t.K}};
    chain.tied = t.tied;
    chain.tables.layers = {t};
    lines_[chain_key] = std::move(chain);
  }
  const Model& chain = lines_[chain_key];
  ConePlan plan(chain.geometry, 0, fine, 1);
  const int K = chain.geometry.chi[1];
  const std::size_t nq = power(K, plan.top_sites().size());
  std::vector<double> unit(nq, 0.0), cond;
  for (std::size_t q = 0; q < nq; ++q) {
    unit[q] = 1.0;
    const std::vector<double>& p = plan.forward(chain, unit.data());
    cond.insert(cond.end(), p.begin(), p.end());
    unit[q] = 0.0;
  }
  return conditionals_[key] = std::move(cond);
}

SetJoint GridSetMarginals::descend(int layer, const SetJoint& coarse,
                                   const std::vector<GridSite>& set) {
  const GridLattice& g = m_.lattice;
  const Step st = cone_step(g, layer, set);
  SetJoint j = coarse;
  for (const auto& [c, ys] : st.columns) {  // y half-step, column line c
    std::vector<long> consumed, produced;
    for (long q : st.column_parents.at(c)) consumed.push_back(var(0, c, q));
    for (long y : ys) produced.push_back(var(1, c, y));
    j = apply_line(j, consumed, produced, g.intermediate_chi(layer), conditional(layer, 0, c, ys));
  }
  for (const auto& [y, xs] : st.rows) {  // x half-step, row line y
    std::vector<long> consumed, produced;
    for (long c : st.row_parents.at(y)) consumed.push_back(var(1, c, y));
    for (long x : xs) produced.push_back(var(2, x, y));
    j = apply_line(j, consumed, produced, g.chi[layer], conditional(layer, 1, y, xs));
  }
  for (long& v : j.labels) v = var(0, var_x(v), var_y(v));
  return j;
}

std::vector<double> GridSetMarginals::finish(int from, SetJoint joint,
                                             const std::vector<std::vector<GridSite>>& sets,
                                             const std::vector<GridSite>& order) {
  const GridLattice& g = m_.lattice;
  int layer = 0;
  while (sets[layer].empty()) ++layer;
  for (int l = from - 1; l >= layer; --l) joint = descend(l, joint, sets[l]);
  std::vector<GridSite> wrapped;
  for (const GridSite& s : order)
    wrapped.push_back({wrap(s.first, g.lx_at(layer)), wrap(s.second, g.ly_at(layer))});
  return project(joint, labels_of(wrapped));
}

// The conditional of a set's values given the pulled-up site: F[cone state][x], the site's
// indicator carried up to `top` through the transposed line conditionals (rows first, then
// columns: the reverse of descend). Labels: the cone at `top`, then the site's value.
SetJoint GridSetMarginals::pull_up(const std::vector<std::vector<GridSite>>& cone, int top,
                                   long value_label) {
  const GridLattice& g = m_.lattice;
  const int d = g.chi[0];
  const GridSite s = cone[0][0];
  SetJoint f{{var(0, s.first, s.second), value_label}, {d, d}, std::vector<double>(d * d, 0.0)};
  for (int x = 0; x < d; ++x) f.p[x * d + x] = 1.0;
  auto transposed = [](const std::vector<double>& c, std::size_t rows) {
    const std::size_t cols = c.size() / rows;
    std::vector<double> t(c.size());
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t k = 0; k < cols; ++k) t[k * rows + r] = c[r * cols + k];
    return t;
  };
  for (int l = 0; l < top; ++l) {
    const Step st = cone_step(g, l, cone[l]);
    const int mid = g.intermediate_chi(l), K = g.chi[l + 1];
    for (const auto& [y, xs] : st.rows) {
      std::vector<long> fine, up;
      for (long x : xs) fine.push_back(var(0, x, y));
      for (long c : st.row_parents.at(y)) up.push_back(var(1, c, y));
      f = apply_line(f, fine, up, mid, transposed(conditional(l, 1, y, xs), power(mid, up.size())));
    }
    for (const auto& [c, ys] : st.columns) {
      std::vector<long> fine, up;
      for (long y : ys) fine.push_back(var(1, c, y));
      for (long q : st.column_parents.at(c)) up.push_back(var(0, c, q));
      f = apply_line(f, fine, up, K, transposed(conditional(l, 0, c, ys), power(K, up.size())));
    }
  }
  std::vector<long> order = labels_of(cone[top]);
  order.push_back(value_label);
  return {order, std::vector<int>(order.size(), 0), project(f, order)};
}

// The two sites' own cones from layer 0 up to `meet`, the highest layer (at most `from`)
// up to which they share no site. Below it they descend independently
// (docs/design-grid.md §6), so each site's conditional given its cone there (pull_up) is
// contracted with the joint of the union instead of descending the union further.
GridSetMarginals::PairCones GridSetMarginals::pair_cones(int from, GridSite a, GridSite b) const {
  const GridLattice& g = m_.lattice;
  PairCones c{0, {{{wrap(a.first, g.lx), wrap(a.second, g.ly)}}},
              {{{wrap(b.first, g.lx), wrap(b.second, g.ly)}}}};
  auto disjoint = [](const std::vector<GridSite>& p, const std::vector<GridSite>& q) {
    for (const GridSite& s : p)
      if (std::binary_search(q.begin(), q.end(), s)) return false;
    return true;
  };
  while (c.meet < from) {
    std::vector<GridSite> pa = parents(c.meet, c.a.back()), pb = parents(c.meet, c.b.back());
    if (!disjoint(pa, pb)) break;
    c.a.push_back(std::move(pa));
    c.b.push_back(std::move(pb));
    ++c.meet;
  }
  return c;
}

// p(x_a, x_b) = sum rho_meet(cone_a, cone_b) F_a(cone_a, x_a) F_b(cone_b, x_b), with `joint`
// the union's joint at the meeting layer, its sites shifted by (sx, sy) from the cones'.
std::vector<double> GridSetMarginals::contract_pair(SetJoint joint, const PairCones& c, long sx,
                                                    long sy) {
  const GridLattice& g = m_.lattice;
  const long value_a = var(3, 0, 0), value_b = var(3, 1, 0);
  for (const auto& [cone, value] : {std::make_pair(&c.a, value_a), std::make_pair(&c.b, value_b)}) {
    const SetJoint f = pull_up(*cone, c.meet, value);
    std::vector<GridSite> shifted;
    for (const GridSite& s : (*cone)[c.meet])
      shifted.push_back({wrap(s.first + sx, g.lx_at(c.meet)), wrap(s.second + sy, g.ly_at(c.meet))});
    joint = apply_line(joint, labels_of(shifted), {value}, g.chi[0], f.p);
  }
  return project(joint, {value_a, value_b});
}

std::vector<double> GridSetMarginals::marginal(int layer, const std::vector<GridSite>& sites) {
  long wx, wy;
  const auto sets = walk(layer, sites, &wx, &wy);
  const int from = static_cast<int>(sets.size()) - 1;
  const SetJoint start = wx >= 0 ? from_window(from, windows_.window(from, wx, wy), wx, wy, sets[from])
                                 : from_top(sets[from], m_.top);
  return finish(from, start, sets, sites);
}

std::vector<double> GridSetMarginals::pair(long x, long y, long dx, long dy) {
  const std::vector<GridSite> order = {{x, y}, {x + dx, y + dy}};
  long wx, wy;
  const auto sets = walk(0, order, &wx, &wy);
  const int from = static_cast<int>(sets.size()) - 1;
  const SetJoint start = wx >= 0 ? from_window(from, windows_.window(from, wx, wy), wx, wy, sets[from])
                                 : from_top(sets[from], m_.top);
  const PairCones cones = pair_cones(from, order[0], order[1]);
  SetJoint joint = start;
  for (int l = from - 1; l >= cones.meet; --l) joint = descend(l, joint, sets[l]);
  return contract_pair(std::move(joint), cones, 0, 0);
}

std::vector<double> GridSetMarginals::pair_sum(long dx, long dy) {
  const GridLattice& g = m_.lattice;
  const std::size_t dd = static_cast<std::size_t>(g.chi[0]) * g.chi[0];
  std::vector<double> total(dd, 0.0);
  auto add = [&](const std::vector<double>& p) {
    for (std::size_t k = 0; k < dd; ++k) total[k] += p[k];
  };
  if (!m_.tied) {
    for (long y = 0; y < g.ly; ++y)
      for (long x = 0; x < g.lx; ++x) add(pair(x, y, dx, dy));
    return total;
  }
  // Translation classes (docs/design-grid.md §6): sites A = (ax, ay) mod 2^l all walk the
  // same sets up to layer l, shifted; a class whose walk stops at layer l (the pair's sets
  // fit a window there, or l is the top) is one leaf, and its members' starting windows
  // at l are every window of l (or every translation of the top), so the leaf starts from
  // their sum. Other classes split into their four classes mod 2^(l+1).
  // A leaf's joint at the meeting layer depends on its sets from there up only through
  // their shape: every window of the start layer is summed, so the sets may be shifted to
  // start at window (0, 0) (by 2^(n - l) times that at layer l below the start layer n,
  // which keeps every parity). Leaves of one shape share that joint (most of the cost);
  // the top's translation sum is shift-invariant as it is.
  std::map<std::tuple<int, int, std::vector<GridSite>>, SetJoint> shared;
  std::size_t shared_entries = 0;
  constexpr std::size_t kSharedEntries = std::size_t{1} << 25;  // 256 MiB
  const auto leaf = [&](long ax, long ay) {
    const std::vector<GridSite> order = {{ax, ay}, {ax + dx, ay + dy}};
    long wx, wy;
    auto sets = walk(0, order, &wx, &wy);
    const int from = static_cast<int>(sets.size()) - 1;
    const PairCones cones = pair_cones(from, order[0], order[1]);
    const long ux = wx >= 0 ? -wx : 0, uy = wy >= 0 ? -wy : 0;
    for (int l = cones.meet; l <= from; ++l)
      for (GridSite& s : sets[l])
        s = {wrap(s.first + (ux << (from - l)), g.lx_at(l)),
             wrap(s.second + (uy << (from - l)), g.ly_at(l))};
    for (int l = cones.meet; l <= from; ++l) std::sort(sets[l].begin(), sets[l].end());
    const auto key = std::make_tuple(from, cones.meet, sets[cones.meet]);
    auto hit = shared.find(key);
    if (hit == shared.end()) {
      SetJoint joint = wx >= 0 ? from_window(from, window_sums_[from].data(), 0, 0, sets[from])
                               : from_top(sets[from], top_sum());
      for (int l = from - 1; l >= cones.meet; --l) joint = descend(l, joint, sets[l]);
      if (shared_entries + joint.p.size() > kSharedEntries) {
        shared.clear();
        shared_entries = 0;
      }
      shared_entries += joint.p.size();
      hit = shared.emplace(key, std::move(joint)).first;
    }
    return contract_pair(hit->second, cones, ux << (from - cones.meet), uy << (from - cones.meet));
  };
  std::vector<std::tuple<int, long, long>> open = {{0, 0, 0}};
  while (!open.empty()) {
    const auto [l, ax, ay] = open.back();
    open.pop_back();
    long wx, wy;
    const int stop = static_cast<int>(walk(0, {{ax, ay}, {ax + dx, ay + dy}}, &wx, &wy).size()) - 1;
    if (stop <= l) {
      add(leaf(ax, ay));
      continue;
    }
    const long step = 1L << l;
    for (long sy : {step, 0L})
      for (long sx : {step, 0L}) open.emplace_back(l + 1, ax + sx, ay + sy);
  }
  return total;
}

std::vector<double> model_correlation(const GridModel& m, long dx, long dy, long max_steps) {
  const GridLattice& g = m.lattice;
  GridWindowMarginals windows(g);
  windows.forward(m);
  const int d = g.chi[0];
  auto spin = [&](int x) { return d == 2 ? 2.0 * x - 1.0 : static_cast<double>(x); };
  const double sites = static_cast<double>(g.sites_at(0));
  std::vector<double> c(static_cast<std::size_t>(std::max(0L, max_steps)), 0.0);
#pragma omp parallel
  {
    GridSetMarginals sets(m, windows);
#pragma omp for schedule(dynamic, 1)
    for (long k = 1; k <= max_steps; ++k) {
      double sum = 0;
      if (wrap(k * dx, g.lx) == 0 && wrap(k * dy, g.ly) == 0) {
        // The pair coincides: <s_i^2>, from place 0 of every bottom window.
        const std::size_t per = grid_window_size(d) / d;
        for (long y = 0; y < g.ly; ++y)
          for (long x = 0; x < g.lx; ++x) {
            const double* w = windows.window(0, x, y);
            for (std::size_t i = 0; i < grid_window_size(d); ++i)
              sum += spin(static_cast<int>(i / per)) * spin(static_cast<int>(i / per)) * w[i];
          }
      } else {
        const std::vector<double> p = sets.pair_sum(k * dx, k * dy);
        for (int a = 0; a < d; ++a)
          for (int b = 0; b < d; ++b) sum += spin(a) * spin(b) * p[a * d + b];
      }
      c[static_cast<std::size_t>(k - 1)] = sum / sites;
    }
  }
  return c;
}

}  // namespace cmera::grid
