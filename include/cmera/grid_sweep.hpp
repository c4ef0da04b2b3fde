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

#include "cmera/comm.hpp"
#include "cmera/grid.hpp"
#include "cmera/grid_decomposition.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/model.hpp"

namespace cmera::grid {

// Empirical 3 x 3 window histograms of a box of layer-0 windows (by default all of
// them), in box order (GridRegion), each [chi_0^9] with place 3 dy + dx most significant
// (grid_window_size).
class GridWindowStats {
 public:
  explicit GridWindowStats(const GridLattice& g);
  // The windows with corners x x y (a rank's owned block).
  GridWindowStats(const GridLattice& g, const CyclicRange& x, const CyclicRange& y);
  // Adds `weight` to the cell seen by every window of the box in one whole configuration
  // (site (x, y) at y * Lx + x, values < chi_0). The plain reference of count.
  void add(const std::uint8_t* config, double weight);
  // The sites the windows read: their corners plus two lines, capped at the whole ring
  // (then a window's far sites wrap inside it).
  CyclicRange box_x() const;
  CyclicRange box_y() const;
  // Adds 1 to every window's cell in samples first, first + step, ... < samples of
  // `boxes`, each the box_x() x box_y() sites of one sample (rows of box_x()), values <
  // chi_0. On the threads of the caller, each window written by one thread.
  void count(const std::uint8_t* boxes, long samples, long first, long step);
  // Bytes count() allocates beside the histograms of nx x ny windows: each thread's 32-bit
  // counters for a band of up to four rows of windows (memory checks before the pass).
  static double count_scratch_bytes(const GridLattice& g, long nx, long ny);
  const GridLattice& lattice() const { return lattice_; }
  const CyclicRange& x() const { return x_; }
  const CyclicRange& y() const { return y_; }
  // A window of the box (corner unwrapped or not).
  const double* window(long x, long y) const;
  double* window(long x, long y);

 private:
  GridLattice lattice_;
  CyclicRange x_, y_;
  std::vector<double> q_;
};

// A grid model of the same shape as m with every entry 0 (gradients).
GridModel zeros_like(const GridModel& m);

// The grid's tables as a chain `Tables` with one LayerTables per line (layer by
// layer, y lines then x lines) and the grid's top, so that the chain's row-wise
// optimizers (optimizer.hpp: EM, Adam) update a grid unchanged; and back.
Tables as_chain_tables(const GridModel& m);
void from_chain_tables(const Tables& t, GridModel& m);

// The sweep over a region of windows (grid_decomposition.hpp): the forward computes the
// region's windows, the objective and the gradient take the region's bottom windows only;
// its table gradient is that part of the objective's, to be summed over the ranks whose
// bottom blocks tile the lattice. GridSweep(g) is the whole lattice on one process.
class GridSweep {
 public:
  explicit GridSweep(const GridLattice& g);
  GridSweep(const GridLattice& g, const GridRegion& region);
  // Every window marginal of the region at every layer (GridWindowMarginals::forward).
  void forward(const GridModel& m);
  // sum_w sum_x q_w(x) log p_w(x) over the region's bottom windows (cells with q = 0
  // skipped); q must hold them.
  double objective(const GridWindowStats& q) const;
  // Adds d objective / d(table entry) to grad (zeros_like(m) shape), for the
  // model of the last forward(); `extra` (if given) adds those window adjoints, at any
  // layer, to the objective's (every window must lie in the region). Threads split the
  // windows; the result is bitwise the same at any thread count.
  void gradient(const GridModel& m, const GridWindowStats& q, GridModel& grad,
                const WindowAdjoints* extra = nullptr);
  const GridWindowMarginals& marginals() const { return rho_; }
  long kernel_calls() const { return kernel_calls_; }  // 1D kernel calls of the last gradient()

 private:
  void reverse_layer(const GridModel& m, int layer, GridLayerTables& grad);
  void add_extra(const WindowAdjoints* extra, int layer);
  void ensure_workers();  // one per thread of the coming parallel regions
  double* g_window(std::vector<double>& g, int layer, long x, long y) const;

  struct Worker {  // one per thread
    GridScratch s;
    std::vector<double> g_mid;  // dL/d(intermediate window)
  };
  GridLattice lattice_;
  GridRegion region_;
  GridWindowMarginals rho_;
  std::vector<double> g_fine_, g_coarse_;  // dL/d(window) of the region at layers l and l+1
  std::vector<Worker> workers_;
  long kernel_calls_ = 0;
};

}  // namespace cmera::grid
