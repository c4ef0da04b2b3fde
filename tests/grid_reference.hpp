// Shared references for grid tests (docs/design-grid.md §3): brute force and the general 2D
// cone for the marginal of ANY site set of a grid model, sharing no code with
// src/lattice/grid_kernels.cpp or src/lattice/grid_pairs.cpp.
//
// - brute force (small grids, depth 1): the joint of any 2D site set by dense
//   contraction of the top table with every column's FULL conditional
//   P(column of the intermediate grid | column of the top), then every touched row's full
//   conditional, each line's conditional enumerated by the full-joint reference of
//   tests/brute_force.hpp. No cone rule anywhere: lines untouched by the set only drop
//   out because their conditionals sum to 1.
// - a general 2D cone (any grid, any depth), always from the top table: parents of a site
//   set found line by line with the chain's cone_parents, each line's restricted
//   conditional by the chain's general ConePlan on a one-layer chain whose top is a point
//   mass.
//
// Trade-off: header-only helpers in an unnamed namespace (each test file gets its own
// copy), plain and slow on purpose: they are the truth, not a second fast path.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "brute_force.hpp"
#include "cmera/grid.hpp"
#include "cmera/init.hpp"
#include "cmera/siteset.hpp"

namespace {

using cmera::GridLattice;
using cmera::GridModel;
using cmera::LayerTables;

struct GridCase {
  long lx, ly;
  std::vector<int> chi;
  bool tied;
  std::vector<int> intermediate = {};  // GridLattice::intermediate (empty: chi[l])
};

std::string label(const GridCase& c) {
  std::string s = std::to_string(c.lx) + "x" + std::to_string(c.ly) + " chi=[";
  for (std::size_t i = 0; i < c.chi.size(); ++i) s += (i ? "," : "") + std::to_string(c.chi[i]);
  s += "]";
  for (std::size_t i = 0; i < c.intermediate.size(); ++i)
    s += (i ? "," : " intermediate=[") + std::to_string(c.intermediate[i]) + (i + 1 == c.intermediate.size() ? "]" : "");
  return s + (c.tied ? " tied" : " untied");
}

GridModel random_grid(const GridCase& c, std::uint64_t seed) {
  return cmera::initialize_grid_model(GridLattice{c.lx, c.ly, c.chi, c.intermediate}, c.tied,
                                      cmera::InitKind::kRandom, 1.0, seed);
}

// Every table entry of a grid model (lines of each layer, y then x, W then U; the top),
// in a fixed order, so that a model and its gradient can be walked in step.
std::vector<double*> entries(GridModel& m) {
  std::vector<double*> out;
  for (auto& l : m.layers)
    for (cmera::LineTables* dir : {&l.y, &l.x})
      for (LayerTables& t : dir->lines)
        for (std::vector<double>* v : {&t.W, &t.U})
          for (double& x : *v) out.push_back(&x);
  for (double& x : m.top) out.push_back(&x);
  return out;
}

std::size_t power(int base, std::size_t n) {
  std::size_t p = 1;
  for (std::size_t i = 0; i < n; ++i) p *= static_cast<std::size_t>(base);
  return p;
}

// A variable of the network: stage 0 = a site of layer l+1, 1 = of the intermediate grid,
// 2 = of layer l (only distinct within one descend).
long var(int stage, long x, long y) { return (static_cast<long>(stage) << 40) | (y << 20) | x; }

// Dense joint over labelled variables, row-major, labels[0] most significant.
struct Joint {
  std::vector<long> labels;
  std::vector<int> dims;
  std::vector<double> p;
};

// Sums out `consumed` (all in j.labels) against cond[consumed values][produced values] and
// appends `produced` (alphabet d): one line's conditional applied to the joint.
Joint apply_line(const Joint& j, const std::vector<long>& consumed,
                 const std::vector<long>& produced, int d, const std::vector<double>& cond) {
  Joint out;
  std::vector<int> pos_consumed;
  for (long c : consumed)
    pos_consumed.push_back(
        static_cast<int>(std::find(j.labels.begin(), j.labels.end(), c) - j.labels.begin()));
  std::vector<int> kept;
  for (int i = 0; i < static_cast<int>(j.labels.size()); ++i)
    if (std::find(pos_consumed.begin(), pos_consumed.end(), i) == pos_consumed.end()) {
      kept.push_back(i);
      out.labels.push_back(j.labels[i]);
      out.dims.push_back(j.dims[i]);
    }
  for (long pr : produced) {
    out.labels.push_back(pr);
    out.dims.push_back(d);
  }
  const std::size_t np = power(d, produced.size());
  std::size_t kept_size = 1;
  for (int i : kept) kept_size *= static_cast<std::size_t>(j.dims[i]);
  out.p.assign(kept_size * np, 0.0);
  // Odometer over the input entries (last label fastest) carrying the consumed and kept
  // indices along, so an entry costs O(1) besides the produced values.
  const int n = static_cast<int>(j.labels.size());
  std::vector<std::size_t> qstride(n, 0), kstride(n, 0);
  for (std::size_t st = 1, k = pos_consumed.size(); k-- > 0;) {
    qstride[pos_consumed[k]] = st;
    st *= static_cast<std::size_t>(j.dims[pos_consumed[k]]);
  }
  for (std::size_t st = 1, k = kept.size(); k-- > 0;) {
    kstride[kept[k]] = st;
    st *= static_cast<std::size_t>(j.dims[kept[k]]);
  }
  std::vector<int> value(n, 0);
  std::size_t q = 0, k = 0;
  for (std::size_t i = 0; i < j.p.size(); ++i) {
    if (j.p[i] != 0.0)
      for (std::size_t x = 0; x < np; ++x) out.p[k * np + x] += j.p[i] * cond[q * np + x];
    for (int m = n - 1; m >= 0; --m) {
      q += qstride[m];
      k += kstride[m];
      if (++value[m] < j.dims[m]) break;
      q -= qstride[m] * j.dims[m];
      k -= kstride[m] * j.dims[m];
      value[m] = 0;
    }
  }
  return out;
}

// Reorders (and marginalizes) a joint onto `labels`.
std::vector<double> project(const Joint& j, const std::vector<long>& labels) {
  std::vector<int> pos;
  std::size_t size = 1;
  for (long l : labels) {
    pos.push_back(
        static_cast<int>(std::find(j.labels.begin(), j.labels.end(), l) - j.labels.begin()));
    size *= static_cast<std::size_t>(j.dims[pos.back()]);
  }
  std::vector<double> out(size, 0.0);
  std::vector<int> value(j.labels.size());
  for (std::size_t i = 0; i < j.p.size(); ++i) {
    std::size_t rest = i;
    for (int m = static_cast<int>(j.labels.size()) - 1; m >= 0; --m) {
      value[m] = static_cast<int>(rest % j.dims[m]);
      rest /= j.dims[m];
    }
    std::size_t o = 0;
    for (int p : pos) o = o * j.dims[p] + value[p];
    out[o] += j.p[i];
  }
  return out;
}

// One line's 1D layer as a one-layer chain whose top is set to a point mass.
cmera::Model line_chain(const LayerTables& t) {
  cmera::Model c;
  c.geometry = cmera::Geometry{2 * t.coarse, {t.d, t.K}};
  c.tied = t.tied;
  c.tables.layers = {t};
  c.tables.top.assign(power(t.K, static_cast<std::size_t>(t.coarse)), 0.0);
  return c;
}

// Reference marginals of a grid model, either mode; caches full line conditionals.
class Reference {
 public:
  Reference(const GridModel& m, bool cones) : m_(m), cones_(cones) {}

  // Joint of `sites` ((x, y) pairs, distinct) at `layer`, in the given order.
  std::vector<double> marginal(int layer, const std::vector<std::pair<long, long>>& sites) {
    std::vector<long> labels;
    for (const auto& s : sites) labels.push_back(var(0, s.first, s.second));
    return project(joint(layer, labels), labels);
  }

 private:
  const GridLattice& g() const { return m_.lattice; }

  // Joint over stage-0 labels of `layer` (any order), unordered output.
  Joint joint(int layer, const std::vector<long>& labels) {
    const int T = g().depth();
    if (layer == T) return top_joint(labels);
    const long mx = g().lx_at(layer + 1), my = g().ly_at(layer + 1);
    const long nx = g().lx_at(layer), ny = g().ly_at(layer);
    // Rows touched and their sites; intermediate parents of each row.
    std::map<long, std::vector<long>> rows, mid_cols;
    for (long v : labels) rows[(v >> 20) & 0xfffff].push_back(v & 0xfffff);
    std::map<long, std::vector<long>> row_parents;
    for (auto& [y, xs] : rows) {
      std::sort(xs.begin(), xs.end());
      row_parents[y] = parents(xs, nx, g().chi[layer], g().intermediate_chi(layer));
      for (long c : row_parents[y]) mid_cols[c].push_back(y);
    }
    std::map<long, std::vector<long>> col_parents;
    std::vector<long> coarse;
    for (auto& [c, ys] : mid_cols) {
      std::sort(ys.begin(), ys.end());
      col_parents[c] = parents(ys, ny, g().intermediate_chi(layer), g().chi[layer + 1]);
      for (long q : col_parents[c]) coarse.push_back(var(0, c, q));
    }
    Joint j = joint(layer + 1, coarse);
    for (auto& [c, ys] : mid_cols) {  // y half-step, column c
      std::vector<long> consumed, produced;
      for (long q : col_parents[c]) consumed.push_back(var(0, c, q));
      for (long y : ys) produced.push_back(var(1, c, y));
      j = apply_line(j, consumed, produced, g().intermediate_chi(layer),
                     conditional(layer, 0, c, col_parents[c], ys, my));
    }
    for (auto& [y, xs] : rows) {  // x half-step, row y
      std::vector<long> consumed, produced;
      for (long c : row_parents[y]) consumed.push_back(var(1, c, y));
      for (long x : xs) produced.push_back(var(2, x, y));
      j = apply_line(j, consumed, produced, g().chi[layer],
                     conditional(layer, 1, y, row_parents[y], xs, mx));
    }
    for (long& l : j.labels) l = var(0, l & 0xfffff, (l >> 20) & 0xfffff);  // now layer's sites
    return j;
  }

  Joint top_joint(const std::vector<long>& labels) {
    const int T = g().depth();
    Joint full;
    for (long y = 0; y < g().ly_at(T); ++y)
      for (long x = 0; x < g().lx_at(T); ++x) {
        full.labels.push_back(var(0, x, y));
        full.dims.push_back(g().chi[T]);
      }
    full.p = m_.top;
    Joint j;
    j.labels = labels;
    j.dims.assign(labels.size(), g().chi[T]);
    j.p = project(full, labels);
    return j;
  }

  // Parents on the coarse line (M = n / 2 sites) of fine sites `xs` of a line of n sites:
  // the chain's cone rule, or every coarse site for brute force.
  std::vector<long> parents(const std::vector<long>& xs, long n, int d, int K) const {
    if (cones_) return cmera::cone_parents(cmera::Geometry{n, {d, K}}, 0, xs);
    std::vector<long> all(static_cast<std::size_t>(n / 2));
    for (long i = 0; i < n / 2; ++i) all[i] = i;
    return all;
  }

  // P(fine sites xs | coarse sites qs) of line `line` of direction dir (0: y, 1: x) of
  // `layer`; coarse sites outside qs at 0 (they do not matter when qs holds the cone).
  std::vector<double> conditional(int layer, int dir, long line, const std::vector<long>& qs,
                                  const std::vector<long>& xs, long M) {
    const LayerTables& t = dir == 0 ? m_.layers[layer].y.line(line) : m_.layers[layer].x.line(line);
    const auto key = std::make_tuple(layer, dir, m_.tied ? 0 : line);
    if (!chains_.count(key)) chains_[key] = line_chain(t);
    cmera::Model& chain = chains_[key];
    const std::size_t nq = power(t.K, qs.size()), nx = power(t.d, xs.size());
    std::vector<double> out(nq * nx);
    // Flat index in the chain's top table of coarse configuration q: qs from q, others 0.
    auto top_index = [&](std::size_t q) {
      std::vector<int> yv(static_cast<std::size_t>(M), 0);
      for (long k = static_cast<long>(qs.size()) - 1; k >= 0; --k) {
        yv[qs[k]] = static_cast<int>(q % t.K);
        q /= t.K;
      }
      std::size_t top = 0;
      for (long s = 0; s < M; ++s) top = top * t.K + yv[s];
      return top;
    };
    if (cones_) {
      cmera::ConePlan plan(chain.geometry, 0, xs);
      for (std::size_t q = 0; q < nq; ++q) {
        const std::size_t top = top_index(q);
        chain.tables.top[top] = 1.0;
        const auto& p = plan.forward(chain);
        std::copy(p.begin(), p.end(), out.begin() + q * nx);
        chain.tables.top[top] = 0.0;
      }
    } else {
      const std::vector<double>& full = full_conditional(key, chain);
      const std::size_t line_size = power(t.d, static_cast<std::size_t>(2 * M));
      for (std::size_t q = 0; q < nq; ++q) {
        const auto first = full.begin() + static_cast<long>(top_index(q) * line_size);
        const brute::Dense fine{std::vector<int>(static_cast<std::size_t>(2 * M), t.d),
                                std::vector<double>(first, first + static_cast<long>(line_size))};
        const auto p = brute::marginalize(fine, xs);
        std::copy(p.begin(), p.end(), out.begin() + q * nx);
      }
    }
    return out;
  }

  // [coarse config][full fine line] by the full-joint reference, once per line.
  using Key = std::tuple<int, int, long>;  // (layer, direction, line; 0 when tied)
  const std::vector<double>& full_conditional(const Key& key, cmera::Model& chain) {
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    std::vector<double> table;
    for (std::size_t y = 0; y < chain.tables.top.size(); ++y) {
      chain.tables.top[y] = 1.0;
      const auto joints = brute::layer_joints(chain);
      table.insert(table.end(), joints[0].p.begin(), joints[0].p.end());
      chain.tables.top[y] = 0.0;
    }
    return cache_[key] = std::move(table);
  }

  const GridModel& m_;
  bool cones_;
  std::map<Key, std::vector<double>> cache_;
  std::map<Key, cmera::Model> chains_;
};

}  // namespace
