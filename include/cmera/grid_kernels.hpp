// Exact 3 x 3 window marginals of the grid MERA (docs/design-grid.md §3). A window of
// layer l depends only on one 3 x 3 window of layer l+1; one layer down is the chain's
// 1D window kernel (kernels::descend_pair, docs/design.md §2) applied to the window's three
// columns (y half-step), then to its three rows (x half-step), each time with the other
// six places as spectators.
//
// Trade-off: each line step is the line's 1D map as a dense chi^3 x chi^3 matrix applied
// to all spectators in one matrix product (O(chi^12) per window) rather than one kernel
// call per spectator (O(chi^11)): the product runs at matrix-multiply speed and moves no
// data between calls: 2.1x faster at chi = 2 and 6.7x with an intermediate alphabet of 4
// (docs/design-grid.md §3). The maps come from the chain's own kernel on unit windows,
// so there is still one 1D contraction.
#pragma once
#include <array>
#include <map>
#include <tuple>
#include <vector>

#include "cmera/grid.hpp"
#include "cmera/grid_decomposition.hpp"
#include "cmera/window_kernels.hpp"

namespace cmera::grid {

// Scratch for one thread; kernel_calls counts 1D kernel calls, descend_pair and
// ascend_pair alike, which build the line maps and take their adjoints.
struct GridScratch {
  kernels::WindowScratch window;
  // stage / g_stage: a half-step's inner tensors and their adjoints; mid: an intermediate
  // window; spare, grouped_*: tensors with the columns' places grouped; unit / g_unit: a
  // unit coarse line window; maps: the three line steps' maps [chi^3 x chi^3] and g_map
  // the adjoint of one (grid_kernels.cpp).
  std::vector<double> stage, g_stage, mid, spare, grouped_in, grouped_out, g_grouped_in, unit,
      g_unit, g_map;
  std::array<std::vector<double>, 3> maps;
  long kernel_calls = 0;
  // Sized for every layer and intermediate alphabet of g (GridLattice::max_alphabet).
  void reserve(const GridLattice& g);
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

// Adjoints of descend_columns / descend_rows (the same line steps transposed, in reverse
// step order, and kernels::ascend_pair through each line's map): given dL/d(output
// window), add dL/d(input window) to g_rho / g_mid and dL/d(table) to the lines' tables in
// `grad` (shaped as m.layers[layer]). They recompute the half-step's maps and inner stages
// (in s.maps, s.stage) instead of storing them.
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
