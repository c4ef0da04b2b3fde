// The grid's parallel shape (docs/design-grid.md §5): a px x py Cartesian grid of ranks,
// each owning a rectangular block of bottom window corners, and the region of window
// corners its cones reach at every layer (per axis the chain's cone rule,
// docs/design.md §2: the block halved plus a halo of at most two, capped at the layer).
//
// Trade-off: as for chains, a rank recomputes the windows of its cones that its
// neighbours also compute (a halo of <= 2 window rows and columns per layer) instead of
// exchanging them, so the forward and reverse sweeps need no communication and only the
// table gradients are summed over ranks.
#pragma once
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/grid.hpp"

namespace cmera::grid {

// A periodic box of window corners per layer: x[l] x y[l] at layer l. Windows are stored
// in box order, index oy * x[l].length + ox (ox, oy the offsets in the two ranges); for the
// whole lattice that is the site index. The sweeps (GridWindowMarginals, GridSweep) take
// regions made by whole() or cones_of(), whose windows at each layer reach exactly the
// next layer's.
struct GridRegion {
  std::vector<CyclicRange> x, y;  // [layer], 0 .. depth

  static GridRegion whole(const GridLattice& g);
  // The bottom box (x0, y0) and, layer by layer up, the coarse windows its windows'
  // cones reach.
  static GridRegion cones_of(const GridLattice& g, const CyclicRange& x0, const CyclicRange& y0);

  // This region with `halo` more window corners on each side of every layer above the
  // bottom (capped at the layer), still closed under coarse windows: the windows from which
  // the pair terms of the bottom block's sites start (docs/design-grid.md §7).
  GridRegion padded(const GridLattice& g, long halo) const;

  long windows(int layer) const { return x[layer].length * y[layer].length; }
  // Corners may be unwrapped (any integer).
  bool contains(int layer, long wx, long wy) const {
    return x[layer].contains(wx) && y[layer].contains(wy);
  }
  long index(int layer, long wx, long wy) const {  // requires contains(layer, wx, wy)
    return y[layer].offset(wy) * x[layer].length + x[layer].offset(wx);
  }
};

class GridDecomposition {
 public:
  // Rank `rank` of `ranks` on g. ranks_x, ranks_y: the rank grid (0 for both: the most
  // balanced factorization, like MPI_Dims_create, more ranks along the axis with more
  // windows; one 0: ranks divided by the other). Throws cmera::Error for a layout whose
  // product is not `ranks` or with more ranks along an axis than bottom windows there.
  GridDecomposition(const GridLattice& g, int ranks, int rank, int ranks_x = 0, int ranks_y = 0);

  int ranks_x() const { return px_; }
  int ranks_y() const { return py_; }
  // This rank is (rank % ranks_x, rank / ranks_x) in the rank grid (row-major, like sites).
  const GridRegion& region() const { return region_; }
  const CyclicRange& owned_x() const { return region_.x[0]; }
  const CyclicRange& owned_y() const { return region_.y[0]; }

 private:
  int px_ = 1, py_ = 1;
  GridRegion region_;
};

}  // namespace cmera::grid
