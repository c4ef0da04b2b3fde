// Multiscale pair terms of the grid objective (docs/design-grid.md §7): for every dyadic
// distance r along x and along y (by default 1, 2, 4, ..., L/2 on each axis; on request also
// along the diagonals (1, 1) and (1, -1)) and every pair site i = (x, y) a rank owns (x and
// y multiples of that distance's stride), the exact joint of {i, i + r u}
// (GridSetMarginals::pair), its log-likelihood under the
// data's pair histogram, and the reverse pass (GridSetMarginals::pair_backward) whose
// window adjoints join the window sweep's reverse pass (GridSweep::gradient's `extra`).
// Windows fix the 3 x 3 structure only; these terms pin C(r) at every scale on both axes
// (and on the diagonals, which the axes alone leave a few per cent low at L = 64).
//
// The log-likelihood runs each pair's reverse pass right after its forward, while the
// pair's values are at hand, and keeps the summed adjoints for gradient(): a separate
// reverse pass would recompute every pair's forward (a third of the cost) or store every
// pair's values; the price is one unused reverse pass when a caller asks for no gradient
// (the last evaluation of a training run). What it does store is each pair's steps
// (PairTape: a few kilobytes, no values), recorded on the first evaluation and replayed
// on the later ones, up to kTapeBudgetBytes per rank; pairs beyond it walk their cones
// every time, with the same result bit for bit.
//
// Trade-off: pairs run one at a time, each from the window (or top) where its two sites'
// cones first fit, without sharing work between pairs of one translation class: simple
// and exact at any rank count, at the price of a per-pair cost that grows steeply with r
// (the joint of two 3 x 3 cones, up to chi^18 entries, near the layer where they meet;
// about 0.03 ms at r = 2 and 23 ms at r = 16 per iteration on a 32 x 32 grid). So distance r takes its
// pairs at sites every max(stride, r / 2) on both axes, about N / (r/2)^2 of them, each
// weighted by N over their number: every distance still carries the weight of all N
// sites, coarse distances are sampled as coarsely as the scale they probe, and an
// iteration's pair cost stays near that of the windows. Pairs are cut into fixed blocks
// whose adjoints are summed in block order, so the gradient does not depend on the thread
// count.
#pragma once
#include <cstdint>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/grid.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/grid_pairs.hpp"

namespace cmera {
class DatasetReader;
}

namespace cmera::grid {

// The direction u of pair terms {i, i + r u}.
struct GridPairDirection {
  int ux, uy;
};
inline const std::vector<GridPairDirection> kGridAxes = {{1, 0}, {0, 1}};
inline const std::vector<GridPairDirection> kGridDiagonals = {{1, 1}, {1, -1}};

// One pair term {i, i + (dx, dy)}, (dx, dy) = r u, and the data's histogram of it. Its
// owner is the corner (min x, min y) of the box its sites span: i itself, except along
// (1, -1), where the pair at corner (x, y) is {(x, y + r), (x + r, y)}.
struct GridPair {
  long x, y;    // site i
  long dx, dy;  // offset of the second site
  std::vector<double> q;  // [chi_0^2], normalized
  double weight;          // on sum_x q log p: pair_weight * N / (pairs of this direction and r)
};

// Automatic stride (requested = 0): max(1, floor(sqrt(N chi_max^2 / 2048))), about 2048 /
// chi_max^2 pair sites per distance and axis; a requested stride above min(Lx, Ly) is
// refused (cmera::Error).
long grid_pair_stride(const GridLattice& g, long requested);

// The distances of the pair terms: `requested`, or when empty the dyadic 1, 2, 4, ... up to
// half the longer side (r = 1 unlike chains: the vertical nearest-neighbour bond passes
// through the intermediate grid, and the windows alone leave C_y(1) about 5% low;
// docs/design-grid.md §7); a distance outside 1..max(Lx, Ly)/2 is refused (cmera::Error).
std::vector<long> grid_pair_distances(const GridLattice& g, const std::vector<long>& requested);

// The distances of the diagonal pair terms (GridObjectiveOptions::pair_diagonal_distances),
// each within 1..min(Lx, Ly)/2 (else cmera::Error).
std::vector<long> grid_diagonal_distances(const GridLattice& g, const std::vector<long>& requested);

// The stride of the pair sites of distance r: max(stride, r / 2).
long grid_pair_stride_at(long stride, long r);

// The pair terms of the sites of a block (owned_x x owned_y corners that are multiples of
// grid_pair_stride_at(stride, r) on both axes), one per direction of `directions` and
// distance, histograms zero. A distance beyond half the lattice along a direction (Lx / 2
// along x, Ly / 2 along y, min(Lx, Ly) / 2 along a diagonal) is skipped there.
std::vector<GridPair> grid_pair_sites(const GridLattice& g, const CyclicRange& owned_x,
                                      const CyclicRange& owned_y, long stride,
                                      const std::vector<long>& distances,
                                      const std::vector<GridPairDirection>& directions,
                                      double pair_weight);

// Collective: fills the histograms of `pairs` (grid_pair_sites of the block owned_x x
// owned_y), read as box reads per sample chunk:
// the owned rows across the whole width (x pairs, and the first site of a diagonal
// pair), the owned columns across the whole height (y pairs), and for a diagonal pair's
// second site the owned rows shifted by its dy, one shift at a time (so the buffers stay
// at three boxes however many distances there are).
void count_grid_pairs(const Comm& comm, const DatasetReader& data, const GridLattice& g,
                      const CyclicRange& owned_x, const CyclicRange& owned_y,
                      std::vector<GridPair>& pairs, long chunk_samples);

class GridPairTerms {
 public:
  // Bytes of recorded pair steps a rank keeps (the rest are recorded again each time).
  static constexpr std::size_t kTapeBudgetBytes = std::size_t{256} << 20;

  explicit GridPairTerms(std::vector<GridPair> pairs);
  bool empty() const { return pairs_.empty(); }
  std::size_t size() const { return pairs_.size(); }
  // Sum over pairs of weight * sum_x q log p, p from `windows` (which must hold every
  // window a pair starts from; GridSweep over a padded region does), and its adjoints.
  double log_likelihood(const GridModel& m, const GridWindowMarginals& windows);
  // Collective: refuses (cmera::Error on every rank, naming the pair, its joints' size and
  // what to change) pair terms whose dense joints, on every thread at once, would not fit
  // in the node's memory; index work only, before log_likelihood() allocates any.
  void check_memory(const Comm& comm, const GridModel& m, const GridWindowMarginals& windows) const;
  // For the model and windows of the last log_likelihood(): adds the table gradient of the
  // value above to grad (lines and top) and the window adjoints to `windows_adjoint`.
  void gradient(const GridModel& m, const GridWindowMarginals& windows, GridModel& grad,
                WindowAdjoints& windows_adjoint) const;

 private:
  std::vector<GridPair> pairs_;
  PairAdjoints adjoints_;  // of the last log_likelihood()
  // Per pair, its recorded steps (empty: not recorded, or beyond the budget), the bytes
  // they hold, and what they were recorded for (steps depend on the lattice, chi and tying).
  std::vector<PairTape> tapes_;
  std::size_t tape_bytes_ = 0;
  GridLattice tape_lattice_;
  bool tape_tied_ = false;
};

}  // namespace cmera::grid
