// Objective and exact gradient of the grid MERA (docs/design-grid.md §5, the
// chain's docs/design.md §3-4 carried to 3 x 3 windows): objective = sum over
// bottom windows w of sum_x q_w(x) log p_w(x), with p_w the exact window
// marginals of GridWindowMarginals and q_w the window's empirical histogram;
// its gradient with respect to every table by a reverse sweep that runs the
// forward's kernels backwards (grid::ascend_rows / ascend_columns around
// kernels::ascend_pair), layer by layer from the bottom up.
//
// Trade-off: the sweep keeps every window marginal of every layer (8 chi_l^9
// bytes per site of each layer, docs/design-grid.md §4) and recomputes each
// window's inner half-step stages during the reverse pass rather than storing
// them: memory stays at one set of window marginals, at the price of about one
// extra forward per gradient.
#pragma once
#include <cstdint>
#include <vector>

#include "cmera/grid.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/model.hpp"

namespace cmera::grid {

// Empirical 3 x 3 window histograms of layer 0: one per window corner (x, y),
// in site order, each [chi_0^9] with place 3 dy + dx most significant
// (grid_window_size).
class GridWindowStats {
 public:
  explicit GridWindowStats(const GridLattice& g);
  // Adds `weight` to the cell seen by every window of one configuration (site
  // (x, y) at y * Lx + x, values < chi_0).
  void add(const std::uint8_t* config, double weight);
  const double* window(long x, long y) const;
  double* window(long x, long y);

 private:
  GridLattice lattice_;
  std::vector<double> q_;
};

// A grid model of the same shape as m with every entry 0 (gradients).
GridModel zeros_like(const GridModel& m);

// The grid's tables as a chain `Tables` with one LayerTables per line (layer by
// layer, y lines then x lines) and the grid's top, so that the chain's row-wise
// optimizers (optimizer.hpp: EM, Adam) update a grid unchanged; and back.
Tables as_chain_tables(const GridModel& m);
void from_chain_tables(const Tables& t, GridModel& m);

class GridSweep {
 public:
  explicit GridSweep(const GridLattice& g);
  // Every window marginal of every layer (GridWindowMarginals::forward).
  void forward(const GridModel& m);
  // sum_w sum_x q_w(x) log p_w(x) over the bottom windows (cells with q = 0
  // skipped).
  double objective(const GridWindowStats& q) const;
  // Adds d objective / d(table entry) to grad (zeros_like(m) shape), for the
  // model of the last forward(). Threads split the windows; the result is
  // bitwise the same at any thread count.
  void gradient(const GridModel& m, const GridWindowStats& q, GridModel& grad);
  const GridWindowMarginals& marginals() const { return rho_; }
  long kernel_calls() const { return kernel_calls_; }  // 1D kernel calls of the last gradient()

 private:
  void reverse_layer(const GridModel& m, int layer, GridLayerTables& grad);
  void ensure_workers();  // one per thread of the coming parallel regions
  double* g_window(std::vector<double>& g, int layer, long x, long y) const;

  struct Worker {  // one per thread
    GridScratch s;
    std::vector<double> g_mid;  // dL/d(intermediate window)
  };
  GridLattice lattice_;
  GridWindowMarginals rho_;
  std::vector<double> g_fine_, g_coarse_;  // dL/d(window) of layers l and l+1
  std::vector<Worker> workers_;
  long kernel_calls_ = 0;
};

}  // namespace cmera::grid
