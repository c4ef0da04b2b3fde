// Exact 3 x 3 window marginals of the grid MERA (docs/design-grid.md §3). A window of
// layer l depends only on one 3 x 3 window of layer l+1; one layer down is the chain's
// 1D window kernel (kernels::descend_pair, docs/design.md §2) applied to the window's three
// columns (y half-step), then to its three rows (x half-step), each time with the other
// six places as spectators.
//
// Trade-off: the kernel is called once per value of the six spectator places (chi^6
// calls of O(chi^5) per column or row, O(chi^11) per window), not assembled into a
// chi^3 x chi^3 matrix (O(chi^12) to apply): no second copy of the 1D contraction, and
// the adjoint for training (ascend_columns / ascend_rows) is the same loop around
// kernels::ascend_pair.
#pragma once
#include <map>
#include <tuple>
#include <vector>

#include "cmera/grid.hpp"
#include "cmera/grid_decomposition.hpp"
#include "cmera/window_kernels.hpp"

namespace cmera::grid {

// Scratch for one thread; kernel_calls counts 1D kernel calls, descend_pair and
// ascend_pair alike (operation count).
struct GridScratch {
  kernels::WindowScratch window;
  std::vector<double> stage, g_stage, mid, gather, g_gather, child;
  long kernel_calls = 0;
  void reserve(int chi_max);
};

// Marginal `fine` [chi_l^9] of the window with corner (x, y) of `layer`, from the
// marginal `rho` [chi_{l+1}^9] of its coarse window (grid_window_cone). Linear in rho.
void descend_window(const GridModel& m, int layer, long x, long y, const double* rho, double* fine,
                    GridScratch& s);

// The two half-steps of descend_window on their own. descend_columns writes the
// intermediate window [intermediate_chi^9] (columns cx .. cx+2, rows y .. y+2), which
// depends on x only through cx, so the windows x = 2 cx + 1 and 2 cx + 2 share it;
// descend_rows takes it to the window at (x, y).
void descend_columns(const GridModel& m, int layer, long x, long y, const double* rho, double* mid,
                     GridScratch& s);
void descend_rows(const GridModel& m, int layer, long x, long y, const double* mid, double* fine,
                  GridScratch& s);

// Adjoints of descend_columns / descend_rows (the same loops around kernels::ascend_pair,
// in reverse step order): given dL/d(output window), add dL/d(input window) to g_rho /
// g_mid and dL/d(table) to the lines' tables in `grad` (shaped as m.layers[layer]).
// They recompute the half-step's inner stages (in s.stage) instead of storing them.
void ascend_columns(const GridModel& m, int layer, long x, long y, const double* rho,
                    const double* g_mid, double* g_rho, GridLayerTables& grad, GridScratch& s);
void ascend_rows(const GridModel& m, int layer, long x, long y, const double* mid,
                 const double* g_fine, double* g_mid, GridLayerTables& grad, GridScratch& s);

// Marginal [chi_T^9] of the top window with corner (x, y), from the top joint table, and
// its adjoint (adds g_rho's entries to every top-table entry that maps onto them).
void top_window(const GridModel& m, long x, long y, double* rho);
void top_window_adjoint(const GridLattice& g, long x, long y, const double* g_rho, double* g_top);

// The windows of a region (grid_decomposition.hpp; by default every window of every
// layer), from the top down; threads split each layer's windows (each writes only its own
// window, so the result does not depend on the thread count).
// Adjoints dL/d(window marginal) of some windows, by (layer, corner x, corner y), each
// [chi_layer^9]: what other terms of an objective (the pair terms) feed into the window
// sweep's reverse pass.
using WindowAdjoints = std::map<std::tuple<int, long, long>, std::vector<double>>;

class GridWindowMarginals {
 public:
  explicit GridWindowMarginals(const GridLattice& g);
  GridWindowMarginals(const GridLattice& g, const GridRegion& region);
  void forward(const GridModel& m);
  // A window of the region (corner unwrapped or not).
  const double* window(int layer, long x, long y) const;
  const GridRegion& region() const { return region_; }
  long kernel_calls() const { return kernel_calls_; }  // of the last forward()

 private:
  double* slot(int layer, long x, long y);  // the writable window
  GridLattice lattice_;
  GridRegion region_;
  std::vector<std::vector<double>> rho_;  // per layer, [region index][chi_l^9]
  long kernel_calls_ = 0;
};

}  // namespace cmera::grid
