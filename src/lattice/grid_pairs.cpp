// Exact marginals of small site sets of the grid MERA (grid_pairs.hpp, docs/design-grid.md
// §6): walk the set's parents upward until they fit one 3 x 3 window (or reach the top),
// start from that window's cached marginal, and descend layer by layer through one line
// conditional per touched column, then per touched row. A conditional is the chain's
// general cone of one line (ConePlan on a one-layer chain) evaluated on unit vectors, so
// no second copy of the 1D contraction exists here. The reverse mode for the pair terms
// (docs/design-grid.md §7) records the same steps on a tape while pair_backward runs
// pair(), and each step has its adjoint beside it (apply_line / apply_line_adjoint read the
// joint as one matrix, as_line_matrix; project and its adjoint share one odometer). A line
// step is a small-by-long matrix product (line_product.hpp): the joint's consumed labels
// are ordered to lead, so most steps read the joint where it lies.
#include "cmera/grid_pairs.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <Eigen/Core>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>

#include "cmera/error.hpp"
#include "cmera/line_product.hpp"
#include "cmera/memory.hpp"
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

// Entries of a joint of these dims.
std::size_t power_of(const std::vector<int>& dims) {
  std::size_t p = 1;
  for (int d : dims) p *= static_cast<std::size_t>(d);
  return p;
}

// One line of a cone step: its index (y of a row, x of an intermediate column), the
// set's sites on it (ascending), and their parents along it (the 1D cone rule).
struct StepLine {
  long line;
  std::vector<long> sites, parents;
};

// One layer of a site set's cone (docs/design-grid.md §2): the set's rows with their x's
// and intermediate parents, then the intermediate columns with their y's and coarse
// parents, each by ascending line. Flat vectors, not maps of vectors: the pair terms'
// memory checks and first evaluation take this step hundreds of thousands of times.
struct Step {
  std::vector<StepLine> rows, columns;
};

// The (line, site) pairs as lines, both ascending.
std::vector<StepLine> group_lines(std::vector<std::pair<long, long>> line_site) {
  std::sort(line_site.begin(), line_site.end());
  std::vector<StepLine> lines;
  for (const auto& [line, site] : line_site) {
    if (lines.empty() || lines.back().line != line) lines.push_back({line, {}, {}});
    lines.back().sites.push_back(site);
  }
  return lines;
}

Step cone_step(const GridLattice& g, int layer, const std::vector<GridSite>& set) {
  const Geometry row_line{g.lx_at(layer), {g.chi[layer], g.intermediate_chi(layer)}};
  const Geometry column_line{g.ly_at(layer), {g.intermediate_chi(layer), g.chi[layer + 1]}};
  std::vector<std::pair<long, long>> line_site;
  for (const GridSite& s : set) line_site.push_back({s.second, s.first});
  Step st{group_lines(std::move(line_site)), {}};
  line_site.clear();
  for (StepLine& row : st.rows) {
    row.parents = cone_parents(row_line, 0, row.sites);
    for (long c : row.parents) line_site.push_back({c, row.line});
  }
  st.columns = group_lines(std::move(line_site));
  for (StepLine& column : st.columns) column.parents = cone_parents(column_line, 0, column.sites);
  return st;
}

// Walks the entries of j in blocks: the innermost labels form blocks of up to kBlock
// entries whose offsets under the strides sa and sb of j's labels (0 for a label an index
// ignores) are tabulated once, and an odometer steps the outer labels, giving each block's
// base offsets a and b. No division and almost no bookkeeping per entry (an odometer
// over every label cost ~10 ns an entry, and these joints reach chi^18 entries).
struct BlockWalk {
  static constexpr std::size_t kBlock = 256;
  const std::vector<int>& dims;
  std::size_t entries;
  const std::vector<std::size_t>&sa, &sb;
  std::size_t block = 1, inner;
  std::vector<std::size_t> offset_a, offset_b;
  std::vector<int> value;
  std::size_t a = 0, b = 0;

  BlockWalk(const StepIndex& joint, const std::vector<std::size_t>& stride_a,
            const std::vector<std::size_t>& stride_b)
      : dims(joint.dims), entries(joint.entries), sa(stride_a), sb(stride_b), inner(joint.dims.size()) {
    // Tabulating a block costs one odometer step per entry, and so does stepping to the
    // next block: blocks near the square root of the joint's size take the fewest steps.
    const std::size_t n = inner;
    const auto fits = [&](std::size_t b) { return b <= kBlock && b * b <= entries; };
    while (inner > 0 && fits(block * static_cast<std::size_t>(dims[inner - 1])))
      block *= static_cast<std::size_t>(dims[--inner]);
    offset_a.resize(block);
    offset_b.resize(block);
    value.assign(n, 0);
    for (std::size_t t = 0; t < block; ++t) {
      offset_a[t] = a;
      offset_b[t] = b;
      step(n, inner);
    }
    a = b = 0;  // the block's odometer wrapped to zero
  }
  // f(base, a, b) for each block in order: its entries base + t sit at a + offset_a[t] and
  // b + offset_b[t], t < block.
  template <class F>
  void for_each_block(F&& f) {
    for (std::size_t base = 0; base < entries; base += block, step(inner, 0)) f(base, a, b);
  }

 private:
  void step(std::size_t end, std::size_t begin) {  // odometer over labels [begin, end)
    for (std::size_t k = end; k-- > begin;) {
      a += sa[k];
      b += sb[k];
      if (++value[k] < dims[k]) return;
      a -= sa[k] * static_cast<std::size_t>(dims[k]);
      b -= sb[k] * static_cast<std::size_t>(dims[k]);
      value[k] = 0;
    }
  }
};

// Calls f(i, a, b) for every entry i of a joint (its dims and entries in `joint`) in order,
// a and b its indices under sa and sb.
template <class F>
void odometer(const StepIndex& joint, const std::vector<std::size_t>& sa,
              const std::vector<std::size_t>& sb, F&& f) {
  BlockWalk w(joint, sa, sb);
  const std::size_t block = w.block, *oa = w.offset_a.data(), *ob = w.offset_b.data();
  w.for_each_block([&](std::size_t base, std::size_t a, std::size_t b) {
    for (std::size_t t = 0; t < block; ++t) f(base + t, a + oa[t], b + ob[t]);
  });
}

// One line step's index maps over j (`index`: q indexes the consumed labels in the given
// order, k the kept ones, j's other labels in j's order; when the consumed labels are j's
// first ones, in order, entry i of j is q * (kept states) + k already), and the kept
// labels with their dims.
struct LineIndex {
  StepIndex index;
  std::vector<long> kept_labels;
  std::vector<int> kept_dims;
};

LineIndex line_index(const SetJoint& j, const std::vector<long>& consumed) {
  const std::size_t n = j.labels.size();
  LineIndex li;
  StepIndex& ix = li.index;
  ix.dims = j.dims;
  ix.qstride.assign(n, 0);
  ix.kstride.assign(n, 0);
  std::size_t st = 1;
  for (std::size_t k = consumed.size(); k-- > 0;) {
    const auto at = std::find(j.labels.begin(), j.labels.end(), consumed[k]) - j.labels.begin();
    ix.qstride[at] = st;
    st *= static_cast<std::size_t>(j.dims[at]);
    ix.leading = ix.leading && static_cast<std::size_t>(at) == k;
  }
  ix.entries = st;
  const auto is_consumed = [&](long label) {
    return std::find(consumed.begin(), consumed.end(), label) != consumed.end();
  };
  for (std::size_t i = n; i-- > 0;)
    if (!is_consumed(j.labels[i])) {
      ix.kstride[i] = ix.kept;
      ix.kept *= static_cast<std::size_t>(j.dims[i]);
      li.kept_labels.push_back(j.labels[i]);
      li.kept_dims.push_back(j.dims[i]);
    }
  ix.entries *= ix.kept;
  std::reverse(li.kept_labels.begin(), li.kept_labels.end());  // back to j's order
  std::reverse(li.kept_dims.begin(), li.kept_dims.end());
  return li;
}

// A joint j (index ix) as the column-major matrix J[k, q] (kept states x consumed
// states): j itself when the consumed labels lead, else gathered into `buf`.
const double* as_line_matrix(const StepIndex& ix, const double* j, std::vector<double>& buf) {
  if (ix.leading) return j;
  buf.resize(ix.entries);
  odometer(ix, ix.qstride, ix.kstride,
           [&](std::size_t i, std::size_t q, std::size_t k) { buf[q * ix.kept + k] = j[i]; });
  return buf.data();
}

// The conditional as the column-major matrix C[x, q] (np x nq): cond itself, laid out
// cond[q * np + x], or when `transposed` (laid out cond[x * nq + q], a line's conditional
// read upwards, as pull_up does) a transposed copy in `buf`.
const double* as_map_matrix(const double* cond, long np, long nq, bool transposed,
                            std::vector<double>& buf) {
  if (!transposed) return cond;
  buf.resize(static_cast<std::size_t>(np * nq));
  for (long q = 0; q < nq; ++q)
    for (long x = 0; x < np; ++x) buf[q * np + x] = cond[x * nq + q];
  return buf.data();
}

// The labels and dims of a line step's result (no values): j's kept labels, then
// `produced` (alphabet d).
SetJoint line_output(const LineIndex& ix, const std::vector<long>& produced, int d) {
  SetJoint out{ix.kept_labels, ix.kept_dims, {}};
  out.labels.insert(out.labels.end(), produced.begin(), produced.end());
  out.dims.insert(out.dims.end(), produced.size(), d);
  return out;
}

// Sums the consumed labels of j (index ix) out against the conditional C (see
// as_map_matrix) and appends np produced states: out[x, k] = sum_q C[x, q] J[k, q], one
// line_apply instead of a short loop per entry of j. The produced labels go last
// (line_output), so when the next step consumes labels that follow this step's in j, they
// lead the result and need no gather (GridSetMarginals::descend orders a half-step's
// labels so).
void apply_line(const StepIndex& ix, const double* j, std::size_t np, const double* cond,
                bool transposed, LineBuffers& buf, double* out) {
  const auto kept = static_cast<long>(ix.kept), nq = static_cast<long>(ix.entries) / kept,
             n_p = static_cast<long>(np);
  line_apply(n_p, nq, kept, as_map_matrix(cond, n_p, nq, transposed, buf.map),
             as_line_matrix(ix, j, buf.joint), out);
}

// The adjoint of apply_line: given g_out = dL/d(out) (G_out[x, k]), adds dL/dj = G_out^T C
// to g_j and dL/dcond = G_out J to g_cond, laid out as cond (np = the produced values per
// consumed state), or writes them over g_j and g_cond where `set_j` and `set_cond` (their
// first contribution: no zeroing pass).
void apply_line_adjoint(const StepIndex& ix, const double* j, std::size_t np,
                        const double* cond, bool transposed, const double* g_out, double* g_j,
                        bool set_j, double* g_cond, bool set_cond, LineBuffers& buf) {
  const auto kept = static_cast<long>(ix.kept), nq = static_cast<long>(ix.entries) / kept,
             n_p = static_cast<long>(np);
  const double* J = as_line_matrix(ix, j, buf.joint);
  if (transposed) {
    buf.g_map.resize(static_cast<std::size_t>(n_p * nq));
    line_apply_adjoint_map(n_p, nq, kept, g_out, J, buf.g_map.data(), false);
    for (long q = 0; q < nq; ++q)
      for (long x = 0; x < n_p; ++x)
        g_cond[x * nq + q] = (set_cond ? 0.0 : g_cond[x * nq + q]) + buf.g_map[q * n_p + x];
  } else {
    line_apply_adjoint_map(n_p, nq, kept, g_out, J, g_cond, !set_cond);
  }
  // dL/dJ, into g_j where J is j itself, else into buf.g_joint and scattered back.
  const double* C = as_map_matrix(cond, n_p, nq, transposed, buf.map);
  if (ix.leading) {
    line_apply_adjoint_joint(n_p, nq, kept, C, g_out, g_j, !set_j);
    return;
  }
  buf.g_joint.resize(ix.entries);
  line_apply_adjoint_joint(n_p, nq, kept, C, g_out, buf.g_joint.data(), false);
  if (set_j) {
    odometer(ix, ix.qstride, ix.kstride, [&](std::size_t i, std::size_t q, std::size_t k) {
      g_j[i] = buf.g_joint[q * ix.kept + k];
    });
  } else {
    odometer(ix, ix.qstride, ix.kstride, [&](std::size_t i, std::size_t q, std::size_t k) {
      g_j[i] += buf.g_joint[q * ix.kept + k];
    });
  }
}

// The index of j's marginal on `labels` (all in j, in that order): the strides of j's
// labels in it (0 for the others) and its size.
StepIndex project_index(const SetJoint& j, const std::vector<long>& labels) {
  StepIndex ix;
  ix.dims = j.dims;
  ix.entries = power_of(j.dims);
  ix.qstride.assign(j.labels.size(), 0);
  ix.size = 1;
  for (std::size_t k = labels.size(); k-- > 0;) {
    const auto at = std::find(j.labels.begin(), j.labels.end(), labels[k]) - j.labels.begin();
    ix.qstride[at] = ix.size;
    ix.size *= static_cast<std::size_t>(j.dims[at]);
  }
  return ix;
}

// The marginal of j (index ix, project_index) into out[ix.size].
void project(const StepIndex& ix, const double* j, double* out) {
  std::fill_n(out, ix.size, 0.0);
  odometer(ix, ix.qstride, ix.qstride,
           [&](std::size_t i, std::size_t o, std::size_t) { out[o] += j[i]; });
  work_count() += ix.entries;
}

std::vector<double> project(const SetJoint& j, const std::vector<long>& labels) {
  const StepIndex ix = project_index(j, labels);
  std::vector<double> out(ix.size);
  project(ix, j.p.data(), out.data());
  return out;
}

// to += from (an empty `to` starts at zero).
void add_to(std::vector<double>& to, std::span<const double> from) {
  if (to.empty()) to.assign(from.size(), 0.0);
  for (std::size_t k = 0; k < from.size(); ++k) to[k] += from[k];
}

// Entry of the marginal on `place` (window places, first most significant) that each
// entry of a 3 x 3 window over alphabet K adds to.
std::vector<std::size_t> window_entries(int K, const std::vector<int>& place) {
  // Weight of each window place in the set's index (0 for places outside the set); the
  // table is built place by place, most significant first, extending every prefix by its
  // K digits in place (backwards, so no prefix is overwritten before it is read).
  std::array<std::size_t, 9> weight{};
  std::size_t w = 1;
  for (std::size_t i = place.size(); i-- > 0; w *= static_cast<std::size_t>(K))
    weight[static_cast<std::size_t>(place[i])] = w;
  std::vector<std::size_t> to(grid_window_size(K), 0);
  std::size_t filled = 1;
  for (int p = 0; p < 9; ++p, filled *= static_cast<std::size_t>(K))
    for (std::size_t i = filled; i-- > 0;)
      for (int a = K - 1; a >= 0; --a) to[i * K + a] = to[i] + a * weight[p];
  return to;
}

std::vector<long> labels_of(const std::vector<GridSite>& set) {
  std::vector<long> l;
  for (const GridSite& s : set) l.push_back(var(0, s.first, s.second));
  return l;
}

// Labels of the sites of `layer`, each moved by (sx, sy) (wrapped), in the same order.
std::vector<long> shifted_labels(const GridLattice& g, int layer, const std::vector<GridSite>& set,
                                 long sx, long sy) {
  std::vector<long> l;
  for (const GridSite& s : set)
    l.push_back(var(0, wrap(s.first + sx, g.lx_at(layer)), wrap(s.second + sy, g.ly_at(layer))));
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
    : m_(m), windows_(windows) {}

// Tied models' per-layer sum of every window (pair_sum's start), built on first use: it
// needs every window of every layer, which a region's marginals (the pair terms of one
// rank) do not hold.
const std::vector<double>& GridSetMarginals::window_sum(int layer) {
  const GridLattice& g = m_.lattice;
  if (window_sums_.empty()) {
    window_sums_.resize(static_cast<std::size_t>(g.depth()) + 1);
    for (int l = 0; l <= g.depth(); ++l) {
      std::vector<double>& sum = window_sums_[l];
      sum.assign(grid_window_size(g.chi[l]), 0.0);
      for (long y = 0; y < g.ly_at(l); ++y)
        for (long x = 0; x < g.lx_at(l); ++x) {
          const double* w = windows_.window(l, x, y);
          for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += w[i];
        }
    }
  }
  return window_sums_[layer];
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
  for (const StepLine& column : st.columns)
    for (long q : column.parents) up.push_back({column.line, q});
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

std::vector<int> GridSetMarginals::window_places(int layer, long wx, long wy,
                                                 const std::vector<GridSite>& set) const {
  const GridLattice& g = m_.lattice;
  std::vector<int> place;
  for (const GridSite& s : set)
    place.push_back(window_place(static_cast<int>(wrap(s.first - wx, g.lx_at(layer))),
                                 static_cast<int>(wrap(s.second - wy, g.ly_at(layer)))));
  return place;
}

const double* GridSetMarginals::start_window(int layer, long wx, long wy) const {
  if (!windows_.region().contains(layer, wx, wy))
    throw Error(fmt::format("grid joint: window ({}, {}) of layer {} is outside the region "
                            "whose window marginals were computed",
                            wx, wy, layer));
  return windows_.window(layer, wx, wy);
}

SetJoint GridSetMarginals::from_window(int layer, const double* rho, long wx, long wy,
                                       const std::vector<GridSite>& set) {
  const int K = m_.lattice.chi[layer];
  SetJoint j{labels_of(set), std::vector<int>(set.size(), K), {}};
  if (sizing_) return sized(std::move(j));
  TapeOp op{TapeOp::Kind::kWindow};
  op.layer = layer;
  op.wx = wx;
  op.wy = wy;
  op.places = window_places(layer, wx, wy, set);
  compute(op, rho, nullptr, j.p);
  return record(sized(std::move(j)), std::move(op));
}

const std::vector<std::size_t>& GridSetMarginals::window_entries_of(int K, const std::vector<int>& places) {
  auto [hit, fresh] = window_entries_.try_emplace({K, places});
  if (fresh) hit->second = window_entries(K, places);
  return hit->second;
}

std::size_t GridSetMarginals::result_size(const TapeOp& op) const {
  const GridLattice& g = m_.lattice;
  switch (op.kind) {
    case TapeOp::Kind::kWindow:
      return power(g.chi[op.layer], op.places.size());
    case TapeOp::Kind::kTop:
      return power(g.chi[g.depth()], op.top_sites.size());
    case TapeOp::Kind::kConstant:
      return op.np * op.np;
    case TapeOp::Kind::kLine:
    case TapeOp::Kind::kJoint:
      return op.index.kept * op.np;
    case TapeOp::Kind::kProject:
      return op.index.size;
  }
  return 0;
}

void GridSetMarginals::compute(const TapeOp& op, const double* in, const double* cond,
                               std::vector<double>& out) {
  out.resize(result_size(op));
  compute(op, in, cond, out.data());
}

void GridSetMarginals::compute(const TapeOp& op, const double* in, const double* cond, double* out) {
  using Kind = TapeOp::Kind;
  const std::size_t size = result_size(op);
  switch (op.kind) {
    case Kind::kWindow: {
      const std::vector<std::size_t>& to = window_entries_of(m_.lattice.chi[op.layer], op.places);
      std::fill_n(out, size, 0.0);
      for (std::size_t w = 0; w < to.size(); ++w) out[to[w]] += in[w];
      work_count() += to.size();
      break;
    }
    case Kind::kTop: {
      const std::vector<double>& p = top_marginal(in, op.top_sites);
      std::copy(p.begin(), p.end(), out);
      break;
    }
    case Kind::kConstant: {  // the identity [np x np]: a site's value given itself
      std::fill_n(out, size, 0.0);
      for (std::size_t x = 0; x < op.np; ++x) out[x * op.np + x] = 1.0;
      break;
    }
    case Kind::kLine:
      apply_line(op.index, in, op.np, conditional(op.key).data(), op.transposed, scratch_, out);
      break;
    case Kind::kJoint:
      apply_line(op.index, in, op.np, cond, false, scratch_, out);
      break;
    case Kind::kProject:
      project(op.index, in, out);
      break;
  }
}

std::vector<long> GridSetMarginals::top_sites_of(const std::vector<GridSite>& set) const {
  const GridLattice& g = m_.lattice;
  std::vector<long> sites;
  for (const GridSite& s : set) sites.push_back(g.site(g.depth(), s.first, s.second));
  return sites;
}

SetJoint GridSetMarginals::from_top(const std::vector<GridSite>& set,
                                    const std::vector<double>& top) {
  const GridLattice& g = m_.lattice;
  const int K = g.chi[g.depth()];
  SetJoint j{labels_of(set), std::vector<int>(set.size(), K), {}};
  if (sizing_) return sized(std::move(j));
  TapeOp op{TapeOp::Kind::kTop};
  op.top_sites = top_sites_of(set);
  compute(op, top.data(), nullptr, j.p);
  return record(sized(std::move(j)), std::move(op));
}

const std::vector<double>& GridSetMarginals::top_marginal(const double* top,
                                                          const std::vector<long>& sites) {
  auto key = std::make_pair(top, sites);
  auto hit = top_marginals_.find(key);
  if (hit != top_marginals_.end()) return hit->second;
  const GridLattice& g = m_.lattice;
  const int K = g.chi[g.depth()];
  std::vector<double> p(power(K, sites.size()));
  table_marginal(K, g.top_sites(), sites, top, p.data());
  constexpr std::size_t kCachedEntries = std::size_t{1} << 24;  // 128 MiB
  if (top_marginal_entries_ + p.size() > kCachedEntries) {
    top_marginals_.clear();
    top_marginal_entries_ = 0;
  }
  top_marginal_entries_ += p.size();
  return top_marginals_.emplace(std::move(key), std::move(p)).first->second;
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

PairAdjoints::LineKey GridSetMarginals::line_key(int layer, int dir, long line,
                                                const std::vector<long>& fine) const {
  const LineTables& lines = dir == 0 ? m_.layers[layer].y : m_.layers[layer].x;
  const long key = lines.tied ? 0 : wrap(line, static_cast<long>(lines.lines.size()));
  return {layer, dir, key, fine};
}

// The one-layer chain of a line (its half-step's tables), built once.
const Model& GridSetMarginals::line_chain(int layer, int dir, long line_key) {
  const auto key = std::make_tuple(layer, dir, line_key);
  auto hit = lines_.find(key);
  if (hit != lines_.end()) return hit->second;
  const LineTables& lines = dir == 0 ? m_.layers[layer].y : m_.layers[layer].x;
  const LayerTables& t = lines.line(line_key);
  Model chain;
  chain.geometry = Geometry{2 * t.coarse, {t.d, t.K}};
  chain.tied = t.tied;
  chain.tables.layers = {t};
  return lines_[key] = std::move(chain);
}

const std::vector<double>& GridSetMarginals::conditional(const PairAdjoints::LineKey& key) {
  const auto hit = conditionals_.find(key);
  if (hit != conditionals_.end()) return hit->second;
  const auto& [layer, dir, lkey, fine] = key;
  const Model& chain = line_chain(layer, dir, lkey);
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

// conditional() in reverse: sum_q sum_x G[q][x] d cond[q][x] / d(tables), through the same
// plan run on each unit vector again (backward_local needs its forward's stages).
void GridSetMarginals::add_table_gradient(const PairAdjoints& adj, GridModel& grad) {
  for (const auto& [key, G] : adj.conditionals) {
    const auto& [layer, dir, lkey, fine] = key;
    const Model& chain = line_chain(layer, dir, lkey);
    ConePlan plan(chain.geometry, 0, fine, 1);
    const int K = chain.geometry.chi[1];
    const std::size_t nq = power(K, plan.top_sites().size()), np = G.size() / nq;
    Tables g = Tables::zeros_like(chain.tables);
    std::vector<double> unit(nq, 0.0), gq(np);
    for (std::size_t q = 0; q < nq; ++q) {
      unit[q] = 1.0;
      plan.forward(chain, unit.data());
      unit[q] = 0.0;
      std::copy_n(G.begin() + static_cast<long>(q * np), np, gq.begin());
      plan.backward_local(chain, gq);
      plan.add_gradient(g);
    }
    LineTables& lines = dir == 0 ? grad.layers[layer].y : grad.layers[layer].x;
    LayerTables& to = lines.line(lkey);
    for (std::size_t k = 0; k < to.W.size(); ++k) to.W[k] += g.layers[0].W[k];
    for (std::size_t k = 0; k < to.U.size(); ++k) to.U[k] += g.layers[0].U[k];
  }
  const GridLattice& gl = m_.lattice;
  for (const auto& [sites, gm] : adj.top_marginals)
    table_marginal_adjoint(gl.chi[gl.depth()], gl.top_sites(), sites, gm.data(), grad.top.data(), 0,
                           grad.top.size());
}

SetJoint GridSetMarginals::record(SetJoint out, TapeOp op) {
  if (!recording_) return out;
  const bool in_place = op.kind == TapeOp::Kind::kLine || op.kind == TapeOp::Kind::kJoint;
  if (in_place && op.index.leading) {  // its input is read in place: the tape needs no strides
    op.index.qstride = {};
    op.index.kstride = {};
  }
  out.id = static_cast<int>(tape_.size());
  tape_.push_back(std::move(op));
  values_.emplace_back();  // filled by keep, when a step reads it
  return out;
}

void GridSetMarginals::keep(const SetJoint& j) {
  if (j.id < 0 || values_[j.id].size > 0) return;
  std::copy(j.p.begin(), j.p.end(), values_[j.id].resize(j.p.size()));
}

SetJoint GridSetMarginals::line_step(SetJoint j, const std::vector<long>& consumed,
                                     const std::vector<long>& produced, int d, int layer, int dir,
                                     long line, const std::vector<long>& fine, bool transposed) {
  LineIndex li = line_index(j, consumed);
  SetJoint out = line_output(li, produced, d);
  if (sizing_) return sized(std::move(out));
  TapeOp op{TapeOp::Kind::kLine, j.id};
  op.np = power(d, produced.size());
  op.index = std::move(li.index);
  op.key = line_key(layer, dir, line, fine);
  op.transposed = transposed;
  compute(op, j.p.data(), nullptr, out.p);
  keep(j);
  return record(sized(std::move(out)), std::move(op));
}

SetJoint GridSetMarginals::joint_step(const SetJoint& j, const std::vector<long>& consumed,
                                      const std::vector<long>& produced, int d, SetJoint cond) {
  LineIndex li = line_index(j, consumed);
  SetJoint out = line_output(li, produced, d);
  if (sizing_) return sized(std::move(out));
  TapeOp op{TapeOp::Kind::kJoint, j.id, cond.id};
  op.np = power(d, produced.size());
  op.index = std::move(li.index);
  compute(op, j.p.data(), cond.p.data(), out.p);
  keep(j);
  keep(cond);
  return record(sized(std::move(out)), std::move(op));
}

SetJoint GridSetMarginals::project_step(SetJoint j, const std::vector<long>& labels) {
  SetJoint out{labels, {}, {}};
  for (long v : labels)
    out.dims.push_back(j.dims[std::find(j.labels.begin(), j.labels.end(), v) - j.labels.begin()]);
  if (sizing_) return sized(std::move(out));
  TapeOp op{TapeOp::Kind::kProject, j.id};
  op.index = project_index(j, labels);
  compute(op, j.p.data(), nullptr, out.p);
  keep(j);
  return record(sized(std::move(out)), std::move(op));
}

void GridSetMarginals::replay(const std::vector<TapeOp>& tape) {
  values_.resize(tape.size());
  for (std::size_t k = 0; k < tape.size(); ++k) {
    const TapeOp& op = tape[k];
    const double* in = op.kind == TapeOp::Kind::kWindow ? start_window(op.layer, op.wx, op.wy)
                       : op.kind == TapeOp::Kind::kTop  ? m_.top.data()
                       : op.in >= 0                     ? values_[op.in].data()
                                                        : nullptr;
    compute(op, in, op.cond >= 0 ? values_[op.cond].data() : nullptr,
            values_[k].resize(result_size(op)));
  }
}

void GridSetMarginals::release_large_buffers() {
  for (StepBuffer& v : values_)
    if (v.capacity > kKeptEntries) v = StepBuffer{};
}

// The tape backwards from g = dL/d(last value): each step's adjoint is complete once every
// later step has run, and adds into its inputs' adjoints or into `adj`. values_ holds every
// value a step reads.
void GridSetMarginals::reverse(const std::vector<TapeOp>& tape, const std::vector<double>& g,
                               PairAdjoints& adj) {
  const GridLattice& gl = m_.lattice;
  adjoints_.resize(tape.size());
  live_.assign(tape.size(), 0);
  // The adjoint of value id, and whether this is its first contribution (then written over:
  // its buffer holds whatever the last pair left).
  auto adjoint_sized = [&](std::size_t id, std::size_t size, bool* first) -> double* {
    *first = !live_[id];
    live_[id] = 1;
    return *first ? adjoints_[id].resize(size) : adjoints_[id].data();
  };
  auto adjoint_of = [&](int id, bool* first) { return adjoint_sized(id, values_[id].size, first); };
  bool first;
  std::copy(g.begin(), g.end(), adjoint_sized(tape.size() - 1, g.size(), &first));
  for (std::size_t k = tape.size(); k-- > 0;) {
    if (!live_[k]) continue;
    const TapeOp& op = tape[k];
    const double* go = adjoints_[k].data();
    switch (op.kind) {
      case TapeOp::Kind::kWindow: {
        const int K = gl.chi[op.layer];
        std::vector<double>& gw = adj.windows[{op.layer, op.wx, op.wy}];
        if (gw.empty()) gw.assign(grid_window_size(K), 0.0);
        const std::vector<std::size_t>& to = window_entries_of(K, op.places);
        for (std::size_t w = 0; w < to.size(); ++w) gw[w] += go[to[w]];
        work_count() += to.size();
        break;
      }
      case TapeOp::Kind::kTop:
        add_to(adj.top_marginals[op.top_sites], {go, adjoints_[k].size});
        break;
      case TapeOp::Kind::kConstant:
        break;
      case TapeOp::Kind::kLine: {
        const std::vector<double>& c = conditionals_.at(op.key);
        std::vector<double>& gc = adj.conditionals[op.key];
        if (gc.empty()) gc.assign(c.size(), 0.0);
        double* gi = adjoint_of(op.in, &first);
        apply_line_adjoint(op.index, values_[op.in].data(), op.np, c.data(), op.transposed, go, gi,
                           first, gc.data(), false, scratch_);
        break;
      }
      case TapeOp::Kind::kJoint: {
        bool first_cond;
        double* gi = adjoint_of(op.in, &first);
        double* gc = adjoint_of(op.cond, &first_cond);
        apply_line_adjoint(op.index, values_[op.in].data(), op.np, values_[op.cond].data(), false,
                           go, gi, first, gc, first_cond, scratch_);
        break;
      }
      case TapeOp::Kind::kProject: {
        const StepIndex& ix = op.index;
        double* gi = adjoint_of(op.in, &first);
        if (first) {  // every entry of the input is visited once
          odometer(ix, ix.qstride, ix.qstride,
                   [&](std::size_t i, std::size_t o, std::size_t) { gi[i] = go[o]; });
        } else {
          odometer(ix, ix.qstride, ix.qstride,
                   [&](std::size_t i, std::size_t o, std::size_t) { gi[i] += go[o]; });
        }
        work_count() += ix.entries;
        break;
      }
    }
    // A large adjoint goes as soon as it is spent, so the next one reuses its memory.
    if (adjoints_[k].capacity > kKeptEntries) adjoints_[k] = StepBuffer{};
  }
}

// Each half-step first orders the joint's labels as its lines consume them (the rest
// after): apply_line appends what it produces, so every line step then finds its consumed
// labels leading and gathers nothing. One permutation per half-step instead of a gather
// per line (the joints reach chi^18 entries).
SetJoint GridSetMarginals::descend(int layer, SetJoint coarse,
                                   const std::vector<GridSite>& set) {
  const GridLattice& g = m_.lattice;
  const Step st = cone_step(g, layer, set);
  struct Line {
    long line;
    std::vector<long> consumed, produced;
    const std::vector<long>& fine;
  };
  std::vector<Line> columns, rows;
  for (const StepLine& column : st.columns) {  // y half-step, column line c
    const long c = column.line;
    columns.push_back({c, {}, {}, column.sites});
    for (long q : column.parents) columns.back().consumed.push_back(var(0, c, q));
    for (long y : column.sites) columns.back().produced.push_back(var(1, c, y));
  }
  for (const StepLine& row : st.rows) {  // x half-step, row line y
    const long y = row.line;
    rows.push_back({y, {}, {}, row.sites});
    for (long c : row.parents) rows.back().consumed.push_back(var(1, c, y));
    for (long x : row.sites) rows.back().produced.push_back(var(2, x, y));
  }
  const auto half_step = [&](SetJoint j, const std::vector<Line>& lines, int dir, int d) {
    std::vector<long> order;
    for (const Line& ln : lines) order.insert(order.end(), ln.consumed.begin(), ln.consumed.end());
    for (long v : j.labels)
      if (std::find(order.begin(), order.end(), v) == order.end()) order.push_back(v);
    if (order != j.labels) j = project_step(std::move(j), order);
    for (const Line& ln : lines)
      j = line_step(std::move(j), ln.consumed, ln.produced, d, layer, dir, ln.line, ln.fine, false);
    return j;
  };
  SetJoint j = half_step(half_step(std::move(coarse), columns, 0, g.intermediate_chi(layer)), rows, 1, g.chi[layer]);
  // A renaming: the step that reads j keeps it with these labels (keep).
  for (long& v : j.labels) v = var(0, var_x(v), var_y(v));
  return j;
}

std::vector<double> GridSetMarginals::finish(int from, SetJoint joint,
                                             const std::vector<std::vector<GridSite>>& sets,
                                             const std::vector<GridSite>& order) {
  const GridLattice& g = m_.lattice;
  int layer = 0;
  while (sets[layer].empty()) ++layer;
  for (int l = from - 1; l >= layer; --l) joint = descend(l, std::move(joint), sets[l]);
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
  // Sizing: a site's pull-up (its cone is its parents' chain) recurs in every pair it is in
  // (the memory checks size thousands of classes that share their first site): sized once.
  const auto key = std::make_tuple(s.first, s.second, top);
  JointSizes outer;
  if (sizing_) {
    if (const auto hit = pull_up_sizes_.find(key); hit != pull_up_sizes_.end()) {
      add_sizes(hit->second.second);
      SetJoint out = hit->second.first;
      out.labels.push_back(value_label);
      out.dims.push_back(d);
      return out;
    }
    outer = take_sizes();
  }
  SetJoint f{{var(0, s.first, s.second), value_label}, {d, d}, {}};
  TapeOp identity{TapeOp::Kind::kConstant};
  identity.np = static_cast<std::size_t>(d);
  compute(identity, nullptr, nullptr, f.p);
  f = record(std::move(f), std::move(identity));
  for (int l = 0; l < top; ++l) {
    const Step st = cone_step(g, l, cone[l]);
    const int mid = g.intermediate_chi(l), K = g.chi[l + 1];
    for (const StepLine& row : st.rows) {
      std::vector<long> fine, up;
      for (long x : row.sites) fine.push_back(var(0, x, row.line));
      for (long c : row.parents) up.push_back(var(1, c, row.line));
      f = line_step(std::move(f), fine, up, mid, l, 1, row.line, row.sites, true);
    }
    for (const StepLine& column : st.columns) {
      std::vector<long> fine, up;
      for (long y : column.sites) fine.push_back(var(1, column.line, y));
      for (long q : column.parents) up.push_back(var(0, column.line, q));
      f = line_step(std::move(f), fine, up, K, l, 0, column.line, column.sites, true);
    }
  }
  std::vector<long> order = labels_of(cone[top]);
  order.push_back(value_label);
  SetJoint out = project_step(std::move(f), order);
  if (sizing_) {
    const JointSizes mine = take_sizes();
    SetJoint shape{out.labels, out.dims, {}};
    shape.labels.pop_back();
    shape.dims.pop_back();
    if (pull_up_sizes_.size() >= (std::size_t{1} << 16)) pull_up_sizes_.clear();  // a few MB
    pull_up_sizes_.emplace(key, std::make_pair(std::move(shape), mine));
    add_sizes(outer);
    add_sizes(mine);
  }
  return out;
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
std::vector<double> GridSetMarginals::contract_pair(const SetJoint& joint, const PairCones& c,
                                                    long sx, long sy) {
  const GridLattice& g = m_.lattice;
  const long value_a = var(3, 0, 0), value_b = var(3, 1, 0);
  const auto contract = [&](const SetJoint& j, const std::vector<std::vector<GridSite>>& cone, long value) {
    return joint_step(j, shifted_labels(g, c.meet, cone[c.meet], sx, sy), {value}, g.chi[0],
                      pull_up(cone, c.meet, value));
  };
  return project_step(contract(contract(joint, c.a, value_a), c.b, value_b), {value_a, value_b}).p;
}

// phi = F f, the pulled-up expectation of f of the site of class (x, y) mod 2^meet,
// indexed by its cone at `meet` (pull_up's order). Kept until f changes or the kept
// vectors pass 2^24 entries (a class's phi has chi_meet^9 at most).
const GridSetMarginals::Expectation& GridSetMarginals::expectation(int meet, GridSite site_class,
                                                                  const std::vector<double>& f) {
  if (f != expectation_f_ || expectation_entries_ > (std::size_t{1} << 24)) {
    expectations_.clear();
    expectation_entries_ = 0;
    expectation_f_ = f;
  }
  auto [hit, fresh] = expectations_.try_emplace({meet, site_class.first, site_class.second});
  Expectation& e = hit->second;
  if (!fresh) return e;
  std::vector<std::vector<GridSite>> cone = {{site_class}};
  for (int l = 0; l < meet; ++l) cone.push_back(parents(l, cone.back()));
  const int d = m_.lattice.chi[0];
  const SetJoint F = pull_up(cone, meet, var(3, 0, 0));  // [cone state][value]
  e.cone = cone[meet];
  e.phi.assign(F.p.size() / d, 0.0);
  for (std::size_t q = 0; q < e.phi.size(); ++q)
    for (int x = 0; x < d; ++x) e.phi[q] += F.p[q * d + x] * f[x];
  expectation_entries_ += e.phi.size();
  return e;
}

// sum rho_meet(cone_a, cone_b) phi_a(cone_a) phi_b(cone_b) as phi_a . w, w = rho phi_b
// summed over cone b's states. w is kept with
// the joint: pairs at other offsets whose b site has the same class and place in the
// same joint reuse it, and each then costs a dot product of chi^9 entries instead of a
// pass over the joint's chi^18.
double GridSetMarginals::contract_product(SharedJoint& shared, int layer, GridSite a, GridSite b,
                                          long sx, long sy, const std::vector<double>& f) {
  const GridLattice& g = m_.lattice;
  const long block = 1L << layer;
  // A site's class, and its cone's labels in the joint (in phi's order): the class
  // representative's cone, moved by the site's block at `layer` and by (sx, sy).
  const auto place = [&](GridSite site, GridSite* site_class) {
    const long x = wrap(site.first, g.lx), y = wrap(site.second, g.ly);
    *site_class = {x % block, y % block};
    return shifted_labels(g, layer, expectation(layer, *site_class, f).cone, x / block + sx,
                          y / block + sy);
  };
  GridSite class_a, class_b;
  const std::vector<long> labels_a = place(a, &class_a);
  const std::vector<long> labels_b = place(b, &class_b);
  auto [hit, fresh] = shared.reduced.try_emplace({labels_b, class_b});
  SetJoint& w = hit->second;
  if (fresh) {
    // The joint as the matrix J[k, q] (a's states x b's), gathered once per place of b:
    // then each class of b is a product of J with its phi, streaming through J (a pass
    // over the joint with both index maps per entry took 3x as long).
    auto [matrix, gather] = shared.by_b.try_emplace(labels_b);
    if (gather) {
      const LineIndex ix = line_index(shared.joint, labels_b);
      matrix->second.labels = ix.kept_labels;
      matrix->second.dims = ix.kept_dims;
      std::vector<double> buf;
      const double* J = as_line_matrix(ix.index, shared.joint.p.data(), buf);
      matrix->second.p = J == buf.data() ? std::move(buf) : shared.joint.p;
      shared_entries_ += matrix->second.p.size();
    }
    const SetJoint& J = matrix->second;
    const std::vector<double>& phi_b = expectation(layer, class_b, f).phi;
    const auto nq = static_cast<Eigen::Index>(phi_b.size());
    const auto nk = static_cast<Eigen::Index>(J.p.size()) / nq;
    w = SetJoint{J.labels, J.dims, std::vector<double>(static_cast<std::size_t>(nk))};
    Eigen::Map<Eigen::VectorXd>(w.p.data(), nk).noalias() =
        Eigen::Map<const Eigen::MatrixXd>(J.p.data(), nk, nq) * Eigen::Map<const Eigen::VectorXd>(phi_b.data(), nq);
    work_count() += J.p.size();
    shared_entries_ += w.p.size();
  }
  const std::vector<double>& phi_a = expectation(layer, class_a, f).phi;
  const StepIndex ia = line_index(w, labels_a).index;
  double sum = 0;
  odometer(ia, ia.qstride, ia.kstride,
           [&](std::size_t i, std::size_t q, std::size_t) { sum += w.p[i] * phi_a[q]; });
  work_count() += w.p.size();
  return sum;
}

std::vector<double> GridSetMarginals::marginal(int layer, const std::vector<GridSite>& sites) {
  long wx, wy;
  const auto sets = walk(layer, sites, &wx, &wy);
  const int from = static_cast<int>(sets.size()) - 1;
  return finish(from,
                wx >= 0 ? from_window(from, start_window(from, wx, wy), wx, wy, sets[from])
                        : from_top(sets[from], m_.top),
                sets, sites);
}

std::vector<double> GridSetMarginals::pair(long x, long y, long dx, long dy) {
  const std::vector<GridSite> order = {{x, y}, {x + dx, y + dy}};
  long wx, wy;
  const auto sets = walk(0, order, &wx, &wy);
  const int from = static_cast<int>(sets.size()) - 1;
  SetJoint joint = wx >= 0 ? from_window(from, start_window(from, wx, wy), wx, wy, sets[from])
                           : from_top(sets[from], m_.top);
  const PairCones cones = pair_cones(from, order[0], order[1]);
  for (int l = from - 1; l >= cones.meet; --l) joint = descend(l, std::move(joint), sets[l]);
  return contract_pair(joint, cones, 0, 0);
}

GridSetMarginals::JointSizes GridSetMarginals::pair_sizes(long x, long y, long dx, long dy) {
  sizing_ = true;
  take_sizes();
  try {
    pair(x, y, dx, dy);
  } catch (...) {
    sizing_ = false;
    throw;
  }
  sizing_ = false;
  return take_sizes();
}

GridSetMarginals::JointSizes GridSetMarginals::take_sizes() {
  const JointSizes s = sizes_;
  sizes_ = {};
  return s;
}

void GridSetMarginals::add_sizes(const JointSizes& s) {
  sizes_.largest = std::max(sizes_.largest, s.largest);
  sizes_.total += s.total;
  sizes_.steps += s.steps;
  sizes_.tape_bytes += s.tape_bytes;
}

SetJoint GridSetMarginals::sized(SetJoint j) {
  const std::size_t entries = power_of(j.dims);
  sizes_.largest = std::max(sizes_.largest, entries);
  sizes_.total += entries;
  ++sizes_.steps;
  // A step's index holds its input's dims and up to two strides per label (the input has
  // up to four labels more than the result: a line's consumed sites), and a line key, a
  // window's places or the top sites, of a few entries.
  sizes_.tape_bytes += sizeof(TapeOp) + 8 * sizeof(long) +
                       (j.dims.size() + 4) * (sizeof(int) + 2 * sizeof(std::size_t));
  return j;
}

std::vector<double> GridSetMarginals::pair_backward(
    long x, long y, long dx, long dy,
    const std::function<std::vector<double>(const std::vector<double>&)>& g_of_p,
    PairAdjoints& adj, PairTape* tape) {
  std::vector<double> p;
  if (tape && !tape->empty()) {
    replay(tape->ops_);
    p.assign(values_.back().data(), values_.back().data() + values_.back().size);
    reverse(tape->ops_, g_of_p(p), adj);
  } else {
    tape_.clear();
    values_.clear();
    recording_ = true;
    try {
      p = pair(x, y, dx, dy);
    } catch (...) {
      recording_ = false;
      throw;
    }
    recording_ = false;
    reverse(tape_, g_of_p(p), adj);
    if (tape) {
      tape->ops_ = std::move(tape_);
      tape->ops_.shrink_to_fit();
    }
    tape_.clear();
  }
  release_large_buffers();
  return p;
}

std::size_t PairTape::bytes() const {
  std::size_t n = ops_.capacity() * sizeof(TapeOp);
  for (const TapeOp& op : ops_)
    n += op.index.dims.capacity() * sizeof(int) +
         (op.index.qstride.capacity() + op.index.kstride.capacity()) * sizeof(std::size_t) +
         std::get<3>(op.key).capacity() * sizeof(long) + op.places.capacity() * sizeof(int) +
         op.top_sites.capacity() * sizeof(long);
  return n;
}

void add_window_adjoints(const WindowAdjoints& from, WindowAdjoints& to) {
  for (const auto& [key, v] : from) add_to(to[key], v);
}

void PairAdjoints::add(const PairAdjoints& other) {
  add_window_adjoints(other.windows, windows);
  for (const auto& [key, v] : other.conditionals) add_to(conditionals[key], v);
  for (const auto& [key, v] : other.top_marginals) add_to(top_marginals[key], v);
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
  for (const PairClass& c : classes(dx, dy))
    add(contract_pair(translation_sum(c.layer, c.shape).joint, pair_cones(c.layer, c.a, c.b), c.sx, c.sy));
  return total;
}

double GridSetMarginals::product_sum(long dx, long dy, const std::vector<double>& f) {
  const int d = m_.lattice.chi[0];
  if (!m_.tied) {
    const std::vector<double> p = pair_sum(dx, dy);
    double sum = 0;
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) sum += f[a] * f[b] * p[a * d + b];
    return sum;
  }
  double sum = 0;
  for (const PairClass& c : classes(dx, dy)) sum += product_term(c, f);
  return sum;
}

double GridSetMarginals::product_term(const PairClass& c, const std::vector<double>& f) {
  return contract_product(translation_sum(c.layer, c.shape), c.layer, c.a, c.b, c.sx, c.sy, f);
}

// The joint of `set` (sites of `layer`, sorted; see canonical) summed over every
// translation of that layer, labelled by the set's own sites. A set in one window: that
// marginal of the sum of the layer's windows (at the top: of the top table summed over
// its translations). Else, with tied tables, translating by 2t at this layer is
// translating by t at the next, so the sum over translations splits by parity p into
// sum_p descend_p(sum of the joint of parents(set + p) over the next layer's
// translations): four one-layer descents of the same function one layer up, where sets
// are smaller and shared by more shapes. Kept (shared_) until the kept entries pass
// 2^25: pairs at many offsets and positions meet in the same shapes.
GridSetMarginals::SharedJoint& GridSetMarginals::translation_sum(int layer,
                                                                 const std::vector<GridSite>& set) {
  constexpr std::size_t kSharedEntries = std::size_t{1} << 25;  // 256 MiB
  const GridLattice& g = m_.lattice;
  const auto key = std::make_pair(layer, set);
  if (const auto hit = shared_.find(key); hit != shared_.end()) return hit->second;
  SetJoint sum;
  long wx, wy;
  if (fits_window(layer, set, &wx, &wy)) {
    sum = from_window(layer, window_sum(layer).data(), wx, wy, set);
  } else if (layer == g.depth()) {
    sum = from_top(set, top_sum());
  } else {
    sum = SetJoint{labels_of(set), std::vector<int>(set.size(), g.chi[layer]), {}};
    sum.p.assign(power(g.chi[layer], set.size()), 0.0);
    for (long py = 0; py < 2; ++py)
      for (long px = 0; px < 2; ++px) {
        std::vector<GridSite> moved;
        for (const GridSite& s : set) moved.push_back({wrap(s.first + px, g.lx_at(layer)), wrap(s.second + py, g.ly_at(layer))});
        std::sort(moved.begin(), moved.end());
        long ux, uy;
        const std::vector<GridSite> up = canonical(layer + 1, parents(layer, moved), &ux, &uy);
        SetJoint coarse = translation_sum(layer + 1, up).joint;  // a copy: descend consumes it
        coarse.labels = shifted_labels(g, layer + 1, up, ux, uy);
        const SetJoint fine = descend(layer, std::move(coarse), moved);
        add_to(sum.p, project(fine, shifted_labels(g, layer, set, px, py)));
      }
  }
  if (shared_entries_ + sum.p.size() > kSharedEntries) {
    shared_.clear();
    shared_entries_ = 0;
  }
  shared_entries_ += sum.p.size();
  return shared_.emplace(key, SharedJoint{std::move(sum), {}, {}}).first->second;
}

// `set` moved so that on each axis its sites start after the widest gap between them
// (ties: the first), sorted; (*sx, *sy) moves it back. Translates of one set map to one
// canonical set, so translation_sum shares them.
std::vector<GridSite> GridSetMarginals::canonical(int layer, const std::vector<GridSite>& set,
                                                  long* sx, long* sy) const {
  const GridLattice& g = m_.lattice;
  const auto start = [](std::vector<long> coords, long n) {
    std::sort(coords.begin(), coords.end());
    coords.erase(std::unique(coords.begin(), coords.end()), coords.end());
    long best = coords.front(), widest = -1;
    for (std::size_t i = 0; i < coords.size(); ++i) {
      const long next = coords[(i + 1) % coords.size()];
      const long gap = wrap(next - coords[i] - 1, n);
      if (gap > widest) {
        widest = gap;
        best = next;
      }
    }
    return best;
  };
  std::vector<long> xs, ys;
  for (const GridSite& s : set) {
    xs.push_back(s.first);
    ys.push_back(s.second);
  }
  *sx = start(xs, g.lx_at(layer));
  *sy = start(ys, g.ly_at(layer));
  std::vector<GridSite> moved;
  for (const GridSite& s : set) moved.push_back({wrap(s.first - *sx, g.lx_at(layer)), wrap(s.second - *sy, g.ly_at(layer))});
  std::sort(moved.begin(), moved.end());
  return moved;
}

std::vector<PairClass> GridSetMarginals::classes(long dx, long dy) const {
  const GridLattice& g = m_.lattice;
  std::vector<PairClass> out;
  // Classes of the left site a = (ax, ay) mod 2^l: their members' cones (and their
  // partners') up to layer l are translates of each other, so at layer l, where they are
  // disjoint, the pairs factorize through the joint of the two cones (docs/design-grid.md
  // §6) and the class sums that joint over every translation of layer l. A class stops
  // there once some of its four classes mod 2^(l+1) has the cones meet at l + 1, or at
  // the top; else it splits. The joint is labelled by the union's canonical translate, so
  // translates of one shape share it.
  // A class: its layer l, left site a (its representative) and the two cones at layer l,
  // each a product of 1D cones (the parents of a product set X x Y are Px(X) x Py(Y),
  // docs/design-grid.md §6), kept per axis: two 1D parent steps per cone and layer
  // instead of a 2D cone step.
  struct Node {
    int l;
    GridSite a;
    std::array<std::vector<long>, 2> cone_a, cone_b;  // x's, y's
  };
  // Each axis of each layer as a one-layer line (only its length matters to cone_parents),
  // built once: the tree calls parents_1d four times per child.
  std::vector<std::array<Geometry, 2>> lines;
  for (int l = 0; l < g.depth(); ++l) lines.push_back({Geometry{g.lx_at(l), {2, 2}}, Geometry{g.ly_at(l), {2, 2}}});
  const auto parents_1d = [&](int layer, int axis, const std::vector<long>& sites, long shift) {
    const long n = axis == 0 ? g.lx_at(layer) : g.ly_at(layer);
    std::vector<long> moved;
    for (long s : sites) moved.push_back(wrap(s + shift, n));
    return cone_parents(lines[layer][axis], 0, moved);  // sorted
  };
  const auto disjoint = [](const std::vector<long>& p, const std::vector<long>& q) {
    for (long v : p)
      if (std::binary_search(q.begin(), q.end(), v)) return false;
    return true;
  };
  std::vector<Node> open = {{0, {0, 0}, {{{0}, {0}}}, {{{wrap(dx, g.lx)}, {wrap(dy, g.ly)}}}}};
  while (!open.empty()) {
    const Node node = std::move(open.back());
    open.pop_back();
    const int l = node.l;
    // The four classes mod 2^(l+1): a moved by 2^l per axis moves the cones at layer l by
    // one site, and their parents are the cones at l + 1.
    std::vector<Node> children;
    bool split = l < g.depth();
    for (long sy = 0; split && sy <= 1; ++sy)
      for (long sx = 0; split && sx <= 1; ++sx) {
        Node child{l + 1, {node.a.first + (sx << l), node.a.second + (sy << l)}, {}, {}};
        for (int axis = 0; axis < 2; ++axis) {
          const long shift = axis == 0 ? sx : sy;
          child.cone_a[axis] = parents_1d(l, axis, node.cone_a[axis], shift);
          child.cone_b[axis] = parents_1d(l, axis, node.cone_b[axis], shift);
        }
        split = disjoint(child.cone_a[0], child.cone_b[0]) || disjoint(child.cone_a[1], child.cone_b[1]);
        children.push_back(std::move(child));
      }
    if (split) {
      for (Node& child : children) open.push_back(std::move(child));
      continue;
    }
    std::vector<GridSite> both;
    for (const auto* cone : {&node.cone_a, &node.cone_b})
      for (long y : (*cone)[1])
        for (long x : (*cone)[0]) both.push_back({x, y});
    long cx, cy;
    std::vector<GridSite> shape = canonical(l, both, &cx, &cy);
    out.push_back({l, node.a, {node.a.first + dx, node.a.second + dy}, -cx, -cy, std::move(shape)});
  }
  return out;
}

void require_pair_joint_memory(const Comm& comm, double entries_per_thread, double rank_bytes,
                               std::string_view subject, std::string_view remedy) {
  require_memory(comm, 8.0 * static_cast<double>(omp_get_max_threads()) * entries_per_thread + rank_bytes,
                 subject,
                 fmt::format("for its pair joints, which grow as chi^18 where a pair's two cones "
                             "meet (docs/design-grid.md §4); {}",
                             remedy));
}

namespace {

// Collective: refuses (cmera::Error on every rank) a model_correlation along (dx, dy) whose
// pair joints, on every thread at once, would not fit in the node's memory (index work
// only). `probes` holds (x, y, k) for the pairs {(x, y), (x, y) + k (dx, dy)} it will
// compute, up to their joints' sizes: a tied model's class representatives, an untied
// model's pairs one per residue of x and y modulo 2^depth (the rest repeat their sizes).
// The probes are dealt to ranks and threads (a 256 x 256 grid's tied classes took longer
// to size on every rank than to evaluate); the worst is the largest joint, the first such
// probe in list order, whatever the rank and thread count.
void require_correlation_memory(const Comm& comm, const GridModel& m, const GridWindowMarginals& windows,
                                long dx, long dy, const std::vector<std::array<long, 3>>& probes) {
  const auto n = static_cast<long>(probes.size());
  const long start = comm.rank(), stride = comm.size();
  long long largest = 0, first = n;  // this rank's worst: its size, and its probe
  ThreadErrors errors;
#pragma omp parallel
  {
    GridSetMarginals sizer(m, windows);
    long long mine = 0, at = n;
#pragma omp for schedule(dynamic, 16) nowait
    for (long i = start; i < n; i += stride) errors.run([&] {
      const auto& [x, y, k] = probes[static_cast<std::size_t>(i)];
      const auto s = static_cast<long long>(sizer.pair_sizes(x, y, k * dx, k * dy).largest);
      if (s > mine || (s == mine && i < at)) {
        mine = s;
        at = i;
      }
    });
#pragma omp critical
    if (mine > largest || (mine == largest && at < first)) {
      largest = mine;
      first = at;
    }
  }
  // A probe that failed on one rank fails on all (the others must not wait in the reduction).
  std::string failure;
  try {
    errors.rethrow();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  comm.check(failure.empty(), failure);
  const long long worst = comm.max(largest);
  const std::vector<long long> firsts = comm.allgather(largest == worst ? first : n);
  const long worst_index = static_cast<long>(*std::min_element(firsts.begin(), firsts.end()));
  const long worst_k = worst_index < n ? probes[static_cast<std::size_t>(worst_index)][2] : 0;
  // Per thread, no tape: the joint kept for its shape, its gathered copy, and a descent's
  // input and output.
  require_pair_joint_memory(
      comm, 4.0 * static_cast<double>(worst), 0.0,
      fmt::format("the model's C(r) along ({}, {}) at chi = [{}] (r = {} builds a joint of {} "
                  "entries)",
                  dx, dy, fmt::join(m.lattice.chi, ", "), worst_k, worst),
      "eval --max-distance R keeps to r <= R");
}

}  // namespace

std::vector<double> model_correlation(const Comm& comm, const GridModel& m,
                                      const GridWindowMarginals& windows, long dx, long dy,
                                      long max_steps) {
  const GridLattice& g = m.lattice;
  const int d = g.chi[0];
  auto spin = [&](int x) { return d == 2 ? 2.0 * x - 1.0 : static_cast<double>(x); };
  std::vector<double> spins;
  for (int x = 0; x < d; ++x) spins.push_back(spin(x));
  const double sites = static_cast<double>(g.sites_at(0));
  std::vector<double> c(static_cast<std::size_t>(std::max(0L, max_steps)), 0.0);
  const auto coincide = [&](long k) { return wrap(k * dx, g.lx) == 0 && wrap(k * dy, g.ly) == 0; };
  // The pair coincides: <s_i^2>, from place 0 of every bottom window.
  const auto square_sum = [&] {
    double sum = 0;
    const std::size_t per = grid_window_size(d) / d;
    for (long y = 0; y < g.ly; ++y)
      for (long x = 0; x < g.lx; ++x) {
        const double* w = windows.window(0, x, y);
        for (std::size_t i = 0; i < grid_window_size(d); ++i)
          sum += spin(static_cast<int>(i / per)) * spin(static_cast<int>(i / per)) * w[i];
      }
    return sum;
  };
  if (!m.tied) {
    std::vector<std::array<long, 3>> probes;
    const long px = std::min(1L << g.depth(), g.lx), py = std::min(1L << g.depth(), g.ly);
    for (long k = 1; k <= max_steps; ++k) {
      if (coincide(k)) continue;
      for (long y = 0; y < py; ++y)
        for (long x = 0; x < px; ++x) probes.push_back({x, y, k});
    }
    require_correlation_memory(comm, m, windows, dx, dy, probes);
    const long first = 1 + comm.rank(), stride = comm.size();
    ThreadErrors errors;
#pragma omp parallel
    {
      GridSetMarginals sets(m, windows);
#pragma omp for schedule(dynamic, 1)
      for (long k = first; k <= max_steps; k += stride) errors.run([&] {
        c[static_cast<std::size_t>(k - 1)] =
            (coincide(k) ? square_sum() : sets.product_sum(k * dx, k * dy, spins)) / sites;
      });
    }
    errors.rethrow();
    comm.sum_inplace(c.data(), c.size());  // one rank's value and zeros: exact
    return c;
  }
  // Tied: every rank lists the classes of every step (a few parents() per class). A class
  // costs a dot product once its shape's translation sum and reductions exist, and those
  // serve every step whose classes have that shape, so the shapes (not the steps) are
  // dealt to the ranks, heaviest first to the least loaded, and to a rank's threads, each
  // with its own caches. Each class's value comes from one thread (the same numbers
  // whichever), the values are summed over ranks (one nonzero each: exact) and each C(k)
  // adds its classes in list order: bitwise equal at any rank and thread count.
  GridSetMarginals lister(m, windows);
  std::vector<PairClass> terms;
  std::vector<std::size_t> step_begin;
  std::vector<std::array<long, 3>> probes;  // each class's representative, for the check
  for (long k = 1; k <= max_steps; ++k) {
    step_begin.push_back(terms.size());
    if (coincide(k)) continue;
    std::vector<PairClass> more = lister.classes(k * dx, k * dy);
    for (const PairClass& c : more) probes.push_back({c.a.first, c.a.second, k});
    terms.insert(terms.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  step_begin.push_back(terms.size());
  require_correlation_memory(comm, m, windows, dx, dy, probes);
  std::map<std::pair<int, std::vector<GridSite>>, std::size_t> shape_of;
  std::vector<std::vector<std::size_t>> members;  // the classes of each shape
  // Its cost: a pass over the joint per class and place of b (contract_product's w), a dot
  // product of the joint's square root per class.
  std::vector<std::set<std::array<long, 4>>> b_places;
  std::vector<double> cost;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const PairClass& t = terms[i];
    const auto [it, fresh] = shape_of.try_emplace({t.layer, t.shape}, members.size());
    if (fresh) {
      members.emplace_back();
      b_places.emplace_back();
      cost.push_back(0);
    }
    members[it->second].push_back(i);
    const long bx = wrap(t.b.first, g.lx), by = wrap(t.b.second, g.ly), block = 1L << t.layer;
    b_places[it->second].insert({bx % block, by % block, wrap(bx / block + t.sx, g.lx_at(t.layer)),
                                 wrap(by / block + t.sy, g.ly_at(t.layer))});
    cost[it->second] += std::sqrt(static_cast<double>(power(g.chi[t.layer], t.shape.size())));
  }
  for (std::size_t id = 0; id < members.size(); ++id) {
    const PairClass& t = terms[members[id].front()];
    cost[id] += static_cast<double>(b_places[id].size() * power(g.chi[t.layer], t.shape.size()));
  }
  std::vector<std::size_t> order(members.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return cost[x] > cost[y]; });
  std::vector<double> load(static_cast<std::size_t>(comm.size()), 0.0);
  std::vector<std::size_t> mine;
  for (std::size_t id : order) {
    const auto owner = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[owner] += cost[id];
    if (owner == static_cast<std::size_t>(comm.rank())) mine.push_back(id);
  }
  std::vector<double> value(terms.size(), 0.0);
  ThreadErrors errors;
#pragma omp parallel
  {
    GridSetMarginals sets(m, windows);
#pragma omp for schedule(dynamic, 1)
    for (std::size_t j = 0; j < mine.size(); ++j) errors.run([&] {
      for (std::size_t i : members[mine[j]]) value[i] = sets.product_term(terms[i], spins);
    });
  }
  errors.rethrow();
  comm.sum_inplace(value.data(), value.size());
  for (long k = 1; k <= max_steps; ++k) {
    double sum = 0;
    if (coincide(k)) {
      sum = square_sum();
    } else {
      for (std::size_t i = step_begin[k - 1]; i < step_begin[k]; ++i) sum += value[i];
    }
    c[static_cast<std::size_t>(k - 1)] = sum / sites;
  }
  return c;
}

}  // namespace cmera::grid
