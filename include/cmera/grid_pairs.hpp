// Exact two-site marginals of the grid MERA at any offset, and the model's correlation
// function along a lattice direction (docs/design-grid.md §6). The joint of a small site
// set S of layer l follows from the joint of its parent set at layer l+1 (the chain's cone
// rule once per direction, docs/design-grid.md §2) through one conditional per touched
// column line and per touched row line; a pair's site sets are followed upward only until
// they fit one 3 x 3 window, whose cached marginal (GridWindowMarginals) starts the
// descent, or reach the top table.
//
// Trade-off: each line's conditional P(fine sites | their parents) is the chain's general
// cone (ConePlan, docs/design.md §2) applied to unit vectors and cached per (line, set),
// not a hand-written kernel per shape: a pair's sets take many shapes (two disjoint cones
// of up to 3 x 3 sites, or their overlapping union), and the general cone serves them all
// with one code path, at the price of dense joints of up to chi^18 entries near the layer
// where the two cones meet (below it each site's own conditional is pulled up instead).
// For tied models the sum over translations starts from the sum of all windows of a layer,
// so one descent serves every site of a translation class, and classes whose sets have
// the same shape share it.
#pragma once
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "cmera/grid.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/model.hpp"

namespace cmera::grid {

// A site (x, y) of one layer, wrapped.
using GridSite = std::pair<long, long>;

// Dense joint over labelled variables (sites of a layer, or of the intermediate grid during
// a descend), row-major, first label most significant.
struct SetJoint {
  std::vector<long> labels;
  std::vector<int> dims;
  std::vector<double> p;
};

class GridSetMarginals {
 public:
  // `windows` must hold the window marginals of `m` (GridWindowMarginals::forward(m));
  // both must outlive this object. Not thread-safe (caches): one per thread.
  GridSetMarginals(const GridModel& m, const GridWindowMarginals& windows);

  // Joint [chi_0^2] of bottom sites (x, y) and (x + dx, y + dy) (distinct modulo the
  // lattice), the first site most significant.
  std::vector<double> pair(long x, long y, long dx, long dy);
  // Sum over every bottom site i of the joint of (i, i + (dx, dy)) [chi_0^2]. Tied models:
  // one descent per translation class that the pair's cones distinguish (docs/design-grid.md
  // §6); untied: one pair() per site.
  std::vector<double> pair_sum(long dx, long dy);

  // Joint of any set of distinct sites of `layer`, in the given order (each site's
  // alphabet chi_layer, first most significant).
  std::vector<double> marginal(int layer, const std::vector<GridSite>& sites);

 private:
  // Site sets of the upward walk: sets[l] for l = 0..top, sets[l+1] the parents of sets[l].
  std::vector<std::vector<GridSite>> walk(int layer, const std::vector<GridSite>& sites,
                                          long* wx, long* wy) const;
  bool fits_window(int layer, const std::vector<GridSite>& set, long* wx, long* wy) const;
  std::vector<GridSite> parents(int layer, const std::vector<GridSite>& set) const;
  SetJoint from_window(int layer, const double* rho, long wx, long wy,
                    const std::vector<GridSite>& set) const;
  SetJoint from_top(const std::vector<GridSite>& set, const std::vector<double>& top) const;
  const std::vector<double>& top_sum();
  SetJoint descend(int layer, const SetJoint& coarse, const std::vector<GridSite>& set);
  const std::vector<double>& conditional(int layer, int dir, long line,
                                         const std::vector<long>& fine);
  SetJoint pull_up(const std::vector<std::vector<GridSite>>& cone, int top, long value_label);
  struct PairCones {  // the sites' own cones, layers 0..meet
    int meet;
    std::vector<std::vector<GridSite>> a, b;
  };
  PairCones pair_cones(int from, GridSite a, GridSite b) const;
  std::vector<double> contract_pair(SetJoint joint, const PairCones& c, long sx, long sy);
  std::vector<double> finish(int from, SetJoint joint, const std::vector<std::vector<GridSite>>& sets,
                             const std::vector<GridSite>& order);

  const GridModel& m_;
  const GridWindowMarginals& windows_;
  std::vector<std::vector<double>> window_sums_;  // tied: per layer, sum of all windows
  std::vector<double> top_sum_;  // tied: sum of the top table over its translations
  std::map<std::tuple<int, int, long>, Model> lines_;  // one-layer chain per line
  std::map<std::tuple<int, int, long, std::vector<long>>, std::vector<double>> conditionals_;
};

// Exact C(k) = (1/N) sum_i <s_i s_{i + k (dx, dy)}> for k = 1..max_steps, s = 2x - 1 for a
// binary alphabet and s = x otherwise (not connected), as the chain's correlation
// (docs/design.md §3). Threads split the translation classes (tied) or sites (untied); the
// sums run in a fixed order, so the result does not depend on the thread count.
std::vector<double> model_correlation(const GridModel& m, long dx, long dy, long max_steps);

}  // namespace cmera::grid
