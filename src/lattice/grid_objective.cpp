// The grid objective over a rank grid (grid_objective.hpp, docs/design-grid.md §5). Each
// rank owns a block of bottom windows (GridDecomposition): the statistics pass reads that
// block's box of every sample (owned corners plus two wrap rows and columns) in collective
// sample chunks and keeps histograms of the owned windows only; the sweep runs over the
// block's cones; the objective is summed over ranks and the partial table gradients are
// added in one allreduce. Untied tables stay replicated on every rank. With pair terms
// (grid_pair_terms.hpp) the sweep runs over the block's cones padded by two windows per
// layer, which holds every window the block's pairs start from, and the pairs' window
// adjoints join the sweep's reverse pass.
//
// Trade-off: histograms are counted straight into the doubles the sweep reads (exact up to
// 2^53 samples) rather than into integer counters converted afterwards: half the memory of
// the largest per-rank array at chi_0 >= 3 (chi_0^9 cells per window), at the price of a
// 2^53-sample bound nobody reaches.
#include "cmera/grid_objective.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cmera/error.hpp"
#include "cmera/grid_decomposition.hpp"
#include "cmera/grid_pair_terms.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/io.hpp"
#include "cmera/memory.hpp"
#include "cmera/statistics.hpp"

namespace cmera::grid {

namespace {

// Every table of a grid model (W and U of every line, then the top), in a fixed order.
std::vector<std::vector<double>*> tables_of(GridModel& m) {
  std::vector<std::vector<double>*> out;
  for (GridLayerTables& l : m.layers)
    for (LineTables* dir : {&l.y, &l.x})
      for (LayerTables& t : dir->lines) {
        out.push_back(&t.W);
        out.push_back(&t.U);
      }
  out.push_back(&m.top);
  return out;
}

// The dataset must be [S, Ly, Lx] of this lattice.
void require_lattice_shape(const DatasetReader& data, const GridLattice& g) {
  const DatasetShape& shape = data.shape();
  const auto& dims = shape.sample_dims;
  if (dims.size() != 2 || dims[0] != g.ly || dims[1] != g.lx)
    throw Error(fmt::format("{}: /configs is [{}, {}], but the {} x {} grid model needs "
                            "[samples, Ly, Lx] = [{}, {}, {}]",
                            data.path(), shape.samples, fmt::join(dims, ", "), g.lx, g.ly,
                            shape.samples, g.ly, g.lx));
}

struct BadValue {  // first out-of-alphabet value seen by this rank
  long sample = -1, y = 0, x = 0;
  int value = 0;
};

}  // namespace

void count_grid_windows(const Comm& comm, const DatasetReader& data, long block,
                        std::span<GridWindowStats> parts) {
  const GridLattice& g = parts[0].lattice();
  const int d = g.chi[0];
  const long samples = data.shape().samples;
  const CyclicRange box_x = parts[0].box_x(), box_y = parts[0].box_y();
  const long bw = box_x.length, bh = box_y.length, n = static_cast<long>(parts.size());
  std::vector<std::uint8_t> buf;
  BadValue bad;
  for (long s0 = 0; s0 < samples; s0 += block) {
    const long rows = std::min(block, samples - s0);
    data.read_box(s0, rows, box_y, box_x, buf);
    if (bad.sample >= 0) continue;  // keep taking part in the collective reads
    if (max_value(buf.data(), buf.size()) >= d) {
      const long k = std::find_if(buf.begin(), buf.end(), [d](std::uint8_t v) { return v >= d; }) -
                     buf.begin();
      bad = {s0 + k / (bw * bh), box_y.at(k / bw % bh), box_x.at(k % bw), buf[k]};
      continue;
    }
    for (long h = 0; h < n; ++h) parts[h].count(buf.data(), rows, (h - s0 % n + n) % n, n);
  }
  comm.check(bad.sample < 0,
             fmt::format("{}: /configs[{}, {}, {}] = {} is outside the alphabet 0..{} "
                         "(model.chi[0] = {})",
                         data.path(), bad.sample, bad.y, bad.x, bad.value, d - 1, d));
}

struct GridObjective::Impl {
  Impl(const Comm& c, const GridLattice& g, const GridObjectiveOptions& o)
      : comm(c), lattice((g.validate(), g)),
        decomposition(g, c.size(), c.rank(), o.ranks_x, o.ranks_y),
        sweep(g, o.pairs ? decomposition.region().padded(g, kPairHalo) : decomposition.region()) {}
  // A pair's start window lies within two corners of its owner's window cone (the owner:
  // the corner of its sites' box; docs/design-grid.md §7).
  static constexpr long kPairHalo = 2;

  const Comm& comm;
  GridLattice lattice;
  GridDecomposition decomposition;
  GridSweep sweep;
  GridWindowStats stats{lattice, CyclicRange{}, CyclicRange{}};  // set by the constructor
  GridPairTerms pairs{{}};                                       // set by the constructor
  long samples = 0, pair_count = 0, pair_stride = 0;
  double entropy_per_window = 0, window_objective = 0;
  bool pairs_fit = false;  // the pair terms' memory was checked (first objective())
};

GridObjective::GridObjective(const Comm& comm, const GridLattice& g, const std::string& path,
                             const GridObjectiveOptions& options)
    : impl_(std::make_unique<Impl>(comm, g, options)) {
  if (options.chunk_samples < 1)
    throw Error(fmt::format("chunk_samples = {}: the statistics pass reads at least one "
                            "sample per chunk", options.chunk_samples));
  Impl& p = *impl_;
  const DatasetReader data(comm, path, true);
  require_lattice_shape(data, g);
  data.require_alphabet(g.chi[0]);
  p.samples = data.shape().samples;
  const CyclicRange &x = p.decomposition.owned_x(), &y = p.decomposition.owned_y();
  const std::size_t cells = grid_window_size(g.chi[0]);
  require_memory(comm,
                 8.0 * static_cast<double>(x.length * y.length) * static_cast<double>(cells) +
                     GridWindowStats::count_scratch_bytes(g, x.length, y.length),
                 fmt::format("the {} x {} owned windows' histograms ({}^9 cells each)", x.length,
                             y.length, g.chi[0]),
                 "for the statistics");
  p.stats = GridWindowStats(g, x, y);
  const long box = p.stats.box_x().length * p.stats.box_y().length;
  count_grid_windows(comm, data, read_block(comm, data, options.chunk_samples, p.samples, box, 1),
                     {&p.stats, 1});
  double entropy = 0;
  for (long oy = 0; oy < y.length; ++oy)
    for (long ox = 0; ox < x.length; ++ox) {
      const std::span<double> q(p.stats.window(x.at(ox), y.at(oy)), cells);
      for (double& v : q) v /= static_cast<double>(p.samples);
      if (options.spin_flip) average_with_flip(q, cells);
      entropy += entropy_of(q);
    }
  p.entropy_per_window = comm.sum(entropy) / static_cast<double>(g.sites_at(0));
  if (!options.pairs) return;
  p.pair_stride = grid_pair_stride(g, options.pair_stride);
  std::vector<GridPair> pairs =
      grid_pair_sites(g, x, y, p.pair_stride, grid_pair_distances(g, options.pair_distances),
                      kGridAxes, options.pair_weight);
  const std::vector<GridPair> diagonals =
      grid_pair_sites(g, x, y, p.pair_stride,
                      grid_diagonal_distances(g, options.pair_diagonal_distances),
                      kGridDiagonals, options.pair_weight);
  pairs.insert(pairs.end(), diagonals.begin(), diagonals.end());
  count_grid_pairs(comm, data, g, x, y, pairs, options.chunk_samples);
  if (options.spin_flip)
    for (GridPair& pair : pairs) average_with_flip(pair.q, pair.q.size());
  p.pair_count = static_cast<long>(comm.sum(static_cast<long long>(pairs.size())));
  p.pairs = GridPairTerms(std::move(pairs));
}

long GridObjective::pair_terms() const { return impl_->pair_count; }
long GridObjective::pair_stride() const { return impl_->pair_stride; }

GridObjective::~GridObjective() = default;

long GridObjective::samples() const { return impl_->samples; }

const GridDecomposition& GridObjective::decomposition() const { return impl_->decomposition; }
const GridWindowStats& GridObjective::statistics() const { return impl_->stats; }
double GridObjective::entropy_per_window() const { return impl_->entropy_per_window; }

double GridObjective::objective(const GridModel& m) {
  Impl& p = *impl_;
  // Pair joints too large for memory are refused before the first sweep (index work only).
  if (!p.pairs_fit) p.pairs.check_memory(p.comm, m, p.sweep.marginals());
  p.pairs_fit = true;
  p.sweep.forward(m);
  double local[2] = {p.sweep.objective(p.stats), p.pairs.log_likelihood(m, p.sweep.marginals())};
  p.comm.sum_inplace(local, 2);
  const double sites = static_cast<double>(p.lattice.sites_at(0));
  p.window_objective = local[0] / sites;
  return (local[0] + local[1]) / sites;
}

double GridObjective::kl_per_window() const {
  return -impl_->window_objective - impl_->entropy_per_window;
}

void GridObjective::gradient(const GridModel& m, GridModel& grad) {
  Impl& p = *impl_;
  const auto tables = tables_of(grad);
  for (std::vector<double>* t : tables) std::fill(t->begin(), t->end(), 0.0);
  WindowAdjoints from_pairs;
  p.pairs.gradient(m, p.sweep.marginals(), grad, from_pairs);
  p.sweep.gradient(m, p.stats, grad, &from_pairs);
  // One allreduce of every table (untied tables are replicated), scaled to the mean.
  std::vector<double> flat;
  for (const std::vector<double>* t : tables) flat.insert(flat.end(), t->begin(), t->end());
  const double scale = 1.0 / static_cast<double>(p.lattice.sites_at(0));
  for (double& v : flat) v *= scale;
  p.comm.sum_inplace(flat.data(), flat.size());
  auto from = flat.begin();
  for (std::vector<double>* t : tables) {
    std::copy_n(from, t->size(), t->begin());
    from += static_cast<long>(t->size());
  }
}

}  // namespace cmera::grid
