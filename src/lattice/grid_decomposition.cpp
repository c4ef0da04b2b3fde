// Rank grid and per-layer window regions of the grid MERA (grid_decomposition.hpp,
// docs/design-grid.md §5). Each axis is an independent chain: a BlockPartition of the
// bottom window corners, then the chain's coarse_windows rule (comm.hpp) layer by
// layer, so the grid has no index rule of its own beyond the product of two chains.
#include "cmera/grid_decomposition.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <tuple>
#include <utility>

#include "cmera/error.hpp"

namespace cmera::grid {

namespace {

// The rank grid for `ranks` ranks: the given one, completed or chosen (see the header).
std::pair<int, int> rank_grid(const GridLattice& g, int ranks, int ranks_x, int ranks_y) {
  if (ranks_x < 0 || ranks_y < 0)
    throw Error(fmt::format("grid rank layout {} x {}: counts must be >= 0 (0: chosen)", ranks_x,
                            ranks_y));
  if (ranks_x == 0 && ranks_y == 0) {
    // The factor pair closest to square that fits, the larger factor along the axis with
    // more windows (x on ties): the smallest halo per owned window.
    std::pair<int, int> best{0, 0};
    for (int a = 1; a <= ranks; ++a) {
      if (ranks % a != 0) continue;
      const int big = std::max(a, ranks / a), small = std::min(a, ranks / a);
      const std::pair<int, int> p = g.lx >= g.ly ? std::pair{big, small} : std::pair{small, big};
      if (p.first > g.lx || p.second > g.ly) continue;
      if (best.first == 0 || std::abs(p.first - p.second) < std::abs(best.first - best.second))
        best = p;
    }
    if (best.first == 0)
      throw Error(fmt::format("{} ranks cannot be laid out on the {} x {} bottom windows of the "
                              "grid (at most one rank per window column and row)",
                              ranks, g.lx, g.ly));
    return best;
  }
  if (ranks_x == 0 && ranks % ranks_y == 0) ranks_x = ranks / ranks_y;
  if (ranks_y == 0 && ranks % ranks_x == 0) ranks_y = ranks / ranks_x;
  if (static_cast<long>(ranks_x) * ranks_y != ranks)
    throw Error(fmt::format("grid rank layout {} x {} does not match the {} ranks of the run "
                            "(ranks_x * ranks_y must equal the rank count; 0 for both chooses)",
                            ranks_x, ranks_y, ranks));
  if (ranks_x > g.lx || ranks_y > g.ly)
    throw Error(fmt::format("grid rank layout {} x {} has more ranks along an axis than the {} x "
                            "{} bottom windows (at most one rank per window column and row)",
                            ranks_x, ranks_y, g.lx, g.ly));
  return {ranks_x, ranks_y};
}

}  // namespace

GridRegion GridRegion::whole(const GridLattice& g) {
  return cones_of(g, CyclicRange::make(0, g.lx, g.lx), CyclicRange::make(0, g.ly, g.ly));
}

GridRegion GridRegion::cones_of(const GridLattice& g, const CyclicRange& x0,
                                const CyclicRange& y0) {
  GridRegion r;
  r.x = {x0};
  r.y = {y0};
  for (int l = 0; l < g.depth(); ++l) {
    r.x.push_back(coarse_windows(r.x[l], g.lx_at(l + 1)));
    r.y.push_back(coarse_windows(r.y[l], g.ly_at(l + 1)));
  }
  return r;
}

GridRegion GridRegion::padded(const GridLattice& g, long halo) const {
  GridRegion r;
  r.x = {x[0]};
  r.y = {y[0]};
  auto pad = [halo](const CyclicRange& c, long n) {
    return c.length + 2 * halo >= n ? CyclicRange::make(0, n, n)
                                    : CyclicRange::make(c.start - halo, c.length + 2 * halo, n);
  };
  for (int l = 0; l < g.depth(); ++l) {
    r.x.push_back(pad(coarse_windows(r.x[l], g.lx_at(l + 1)), g.lx_at(l + 1)));
    r.y.push_back(pad(coarse_windows(r.y[l], g.ly_at(l + 1)), g.ly_at(l + 1)));
  }
  return r;
}

GridDecomposition::GridDecomposition(const GridLattice& g, int ranks, int rank, int ranks_x,
                                     int ranks_y) {
  std::tie(px_, py_) = rank_grid(g, ranks, ranks_x, ranks_y);
  const BlockPartition bx{g.lx, px_}, by{g.ly, py_};
  const int rx = rank % px_, ry = rank / px_;
  region_ = GridRegion::cones_of(g, CyclicRange::make(bx.begin(rx), bx.count(rx), g.lx),
                                 CyclicRange::make(by.begin(ry), by.count(ry), g.ly));
}

}  // namespace cmera::grid
