// The training objective of a grid model over a rank layout (docs/design-grid.md §5, §7): the
// statistics pass over a [S, Ly, Lx] dataset and the window objective with its exact
// gradient (and the pair terms of grid_pair_terms.hpp), reduced over ranks, behind the
// three calls the trainer makes. Ranks own
// blocks of bottom windows (GridDecomposition); every rank gets the global objective and
// the global gradient.
//
// Trade-off: one class hides the decomposition, the statistics and the sweep from the
// trainer, so the chain and grid training loops share everything above the objective
// (candidates, optimizer, checkpoints, stops) at the price of one virtual-free adapter per
// lattice.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/grid.hpp"

namespace cmera {
class DatasetReader;
}

namespace cmera::grid {

class GridDecomposition;
class GridWindowStats;

// Collective: the statistics pass's counting, shared by training and eval. Reads the box of
// parts[0]'s windows (every part must hold the same block) of every sample of `data`, at
// most `block` samples per read, and counts sample k into parts[k % parts.size()]
// (GridWindowStats::count); the caller normalizes. A value outside the alphabet is one
// error naming the sample and site, raised on every rank after the same reads.
void count_grid_windows(const Comm& comm, const DatasetReader& data, long block,
                        std::span<GridWindowStats> parts);

struct GridObjectiveOptions {
  long chunk_samples = 4096;  // samples per collective read of the statistics pass
  int ranks_x = 0, ranks_y = 0;  // rank grid; 0: chosen like MPI_Dims_create
  // Pair terms (grid_pair_terms.hpp): off when `pairs` is false; distances empty: dyadic
  // 1, 2, 4, ... up to each axis's L/2; stride 0: automatic (grid_pair_stride);
  // pair_diagonal_distances: pairs along (1, 1) and (1, -1) at these distances (none if
  // empty).
  bool pairs = false;
  std::vector<long> pair_distances;
  std::vector<long> pair_diagonal_distances;
  long pair_stride = 0;
  double pair_weight = 1.0;
  // Window and pair statistics averaged with their flips (average_with_flip,
  // objective.symmetry = "spin_flip").
  bool spin_flip = false;
};

class GridObjective {
 public:
  // Collective. Reads `path`'s /configs [S, Ly, Lx] (Lx, Ly must equal g's; values must be
  // < g.chi[0]; both checked with one clear error naming the file).
  GridObjective(const Comm& comm, const GridLattice& g, const std::string& path,
                const GridObjectiveOptions& options = {});
  ~GridObjective();
  GridObjective(const GridObjective&) = delete;
  GridObjective& operator=(const GridObjective&) = delete;

  long samples() const;
  // Collective: (1/N) [sum over bottom windows w of sum_x q_w(x) log p_w(x) + sum over pair
  // terms of their weight * sum_x q log p] (global; docs/design-grid.md §7).
  double objective(const GridModel& m);
  long pair_terms() const;  // global count
  long pair_stride() const;
  // KL per window (nats) of the model last passed to objective(): -objective - entropy.
  double kl_per_window() const;
  // Collective: d objective / d(table entry) of the model last passed to objective(),
  // complete (summed over ranks) on every rank; grad is zeros_like(m) shaped and is
  // overwritten.
  void gradient(const GridModel& m, GridModel& grad);

  // This rank's share: its block and cones, the histograms of its owned windows
  // (normalized), and the data's mean window entropy (global, nats).
  const GridDecomposition& decomposition() const;
  const GridWindowStats& statistics() const;
  double entropy_per_window() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cmera::grid
