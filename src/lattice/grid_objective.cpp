// The grid objective over ranks (grid_objective.hpp), in its simplest correct form: ranks
// split the statistics pass (sample blocks round robin), the window histograms are summed
// over ranks, and every rank runs the full GridSweep (docs/design-grid.md §5).
//
// Trade-off: no domain decomposition, so every rank does the whole sweep and holds every
// window marginal (memory and time do not fall with the rank count); in return the
// objective and gradient need no communication after the statistics pass and are bitwise
// the same on every rank and at any rank count (histograms are integer counts until the
// ranks' sum, which is exact). The decomposed version replaces this file.
#include "cmera/grid_objective.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "cmera/error.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/io.hpp"

namespace cmera::grid {

namespace {
// Every table array of a grid model (gradients are zeroed and scaled as a whole).
template <class F>
void for_each_array(GridModel& m, const F& f) {
  for (GridLayerTables& l : m.layers)
    for (LineTables* h : {&l.y, &l.x})
      for (LayerTables& t : h->lines) {
        f(t.W);
        f(t.U);
      }
  f(m.top);
}
}  // namespace

struct GridObjective::Impl {
  Impl(const GridLattice& g) : lattice(g), q(g), sweep(g) {}
  GridLattice lattice;
  long samples = 0;
  GridWindowStats q;  // window histograms, normalized to one sample
  GridSweep sweep;
  double entropy_per_window = 0, window_objective = 0;
};

GridObjective::GridObjective(const Comm& comm, const GridLattice& g, const std::string& path,
                             const GridObjectiveOptions& options)
    : impl_(std::make_unique<Impl>(g)) {
  const DatasetReader data(comm, path, /*grid_ok=*/true);
  const DatasetShape& shape = data.shape();
  comm.check(shape.lx == g.lx && shape.ly == g.ly,
             fmt::format("{}: /configs holds {} samples of [{}, {}] (Ly, Lx), the model's grid is "
                         "[{}, {}]", path, shape.samples, shape.ly, shape.lx, g.ly, g.lx));
  data.require_alphabet(g.chi[0]);
  impl_->samples = shape.samples;
  // Block b of the samples is counted by rank b mod P; every rank takes part in every
  // (collective) read, the others with no columns.
  const long block = data.block_rows(std::max(1L, options.chunk_samples));
  const long sites = g.sites_at(0);
  std::vector<std::uint8_t> rows;
  bool values_ok = true;
  for (long first = 0, b = 0; first < shape.samples; first += block, ++b) {
    const long count = std::min(block, shape.samples - first);
    const bool mine = b % comm.size() == comm.rank();
    data.read(first, count, mine ? CyclicRange{0, sites, sites} : CyclicRange{}, rows);
    if (!mine) continue;
    values_ok = values_ok && *std::max_element(rows.begin(), rows.end()) < g.chi[0];
    for (long k = 0; k < count && values_ok; ++k) impl_->q.add(rows.data() + k * sites, 1.0);
  }
  comm.check(comm.sum(values_ok ? 0.0 : 1.0) == 0,
             fmt::format("{}: /configs holds values >= model.chi[0] = {}", path, g.chi[0]));
  const std::size_t cells = grid_window_size(g.chi[0]);
  double* q = impl_->q.window(0, 0);  // all windows, contiguous in site order
  comm.sum_inplace(q, static_cast<std::size_t>(sites) * cells);
  double entropy = 0;
  for (std::size_t i = 0; i < static_cast<std::size_t>(sites) * cells; ++i) {
    q[i] /= static_cast<double>(shape.samples);
    if (q[i] > 0) entropy -= q[i] * std::log(q[i]);
  }
  impl_->entropy_per_window = entropy / static_cast<double>(sites);
}

GridObjective::~GridObjective() = default;

long GridObjective::samples() const { return impl_->samples; }

double GridObjective::objective(const GridModel& m) {
  impl_->sweep.forward(m);
  impl_->window_objective =
      impl_->sweep.objective(impl_->q) / static_cast<double>(impl_->lattice.sites_at(0));
  return impl_->window_objective;
}

double GridObjective::kl_per_window() const {
  return -impl_->window_objective - impl_->entropy_per_window;
}

void GridObjective::gradient(const GridModel& m, GridModel& grad) {
  for_each_array(grad, [](std::vector<double>& v) { std::fill(v.begin(), v.end(), 0.0); });
  impl_->sweep.gradient(m, impl_->q, grad);
  const double scale = 1.0 / static_cast<double>(impl_->lattice.sites_at(0));  // mean per window
  for_each_array(grad, [scale](std::vector<double>& v) { for (double& x : v) x *= scale; });
}

}  // namespace cmera::grid
