// 3 x 3 window descend of the grid MERA (grid_kernels.hpp, docs/design-grid.md §3): a
// half-step replaces the three places of one column or row of the window tensor by the
// 1D child of that line, in three line steps. Each line step is one matrix product: the
// line's 1D window map as a dense matrix (built from the chain's kernels::descend_pair on
// unit coarse windows) times the tensor, read with the line's places most significant
// and written with them least significant. Three such steps move each group of three
// places from the front to the back, so a half-step needs the tensor's places grouped by
// the lines it refines: rows are the standard order (place 3 dy + dx), columns the
// transposed one, and descend_columns transposes its input and output once. The y
// half-step of a window is shared by its two x-parity siblings. The adjoints are the
// same products transposed, and the table gradient goes back through the map: one
// kernels::ascend_pair per unit coarse window.
#include "cmera/grid_kernels.hpp"

#include <omp.h>

#include <algorithm>
#include <array>

#include "cmera/line_product.hpp"
#include "cmera/siteset.hpp"

namespace cmera::grid {

namespace {

std::size_t cube(int n) { return static_cast<std::size_t>(n) * n * n; }

// The 3 x 3 window tensor with n values per place, its places transposed
// (place 3 dy + dx <-> place 3 dx + dy): standard order <-> columns grouped. An
// involution, so the same call goes both ways.
void transpose_places(const double* in, int n, double* out) {
  const std::size_t n3 = cube(n);
  std::array<std::size_t, 9> weight{};  // of place p: n^(8 - p)
  weight[8] = 1;
  for (int p = 7; p >= 0; --p) weight[p] = weight[p + 1] * static_cast<std::size_t>(n);
  // Row dy's digits (for dx = 0, 1, 2) land on places 3 dx + dy of the transposed index.
  std::array<std::vector<std::size_t>, 3> spread;
  for (int dy = 0; dy < 3; ++dy) {
    spread[dy].resize(n3);
    for (std::size_t v = 0; v < n3; ++v) {
      std::size_t digits = v, at = 0;
      for (int dx = 2; dx >= 0; --dx, digits /= static_cast<std::size_t>(n))
        at += (digits % static_cast<std::size_t>(n)) * weight[3 * dx + dy];
      spread[dy][v] = at;
    }
  }
  std::size_t i = 0;
  for (std::size_t r0 = 0; r0 < n3; ++r0)
    for (std::size_t r1 = 0; r1 < n3; ++r1) {
      const std::size_t base = spread[0][r0] + spread[1][r1];
      for (std::size_t r2 = 0; r2 < n3; ++r2) out[base + spread[2][r2]] = in[i++];
    }
}

// Step k (0..2) of a half-step: the line and the coarse window of that line it reads
// (docs/design-grid.md §2).
struct HalfStepLine {
  long line, c;
};
HalfStepLine half_step_line(const GridWindowCone& cone, bool columns, int k) {
  if (columns) return {cone.column_line(k), cone.cy};
  return {cone.row_line(k), cone.cx};
}
template <class Layer>
auto& line_tables(Layer& t, bool columns, long line) {
  return columns ? t.y.line(line) : t.x.line(line);
}

// One half-step's alphabets: a on its input, b on its output. Step k reads a tensor
// whose other six places are 3 (2 - k) of alphabet a and 3 k of alphabet b.
struct HalfStepShape {
  int a, b;
  std::size_t spectators(int k) const {
    std::size_t n = 1;
    for (int i = 0; i < 2 - k; ++i) n *= cube(a);
    for (int i = 0; i < k; ++i) n *= cube(b);
    return n;
  }
};
HalfStepShape half_step_shape(const GridLattice& g, int layer, bool columns) {
  if (columns) return {g.chi[layer + 1], g.intermediate_chi(layer)};
  return {g.intermediate_chi(layer), g.chi[layer]};
}

// The 1D window map of step k's line as a dense matrix s.maps[k], column-major
// [b^3 x a^3]: column r is the child of unit coarse window r (a^3 kernel calls; a step
// has at least a^3 spectators, each of which would otherwise be one call).
void line_map(const GridModel& m, int layer, const GridWindowCone& cone, bool columns, int k,
              GridScratch& s) {
  const HalfStepShape sh = half_step_shape(m.lattice, layer, columns);
  const HalfStepLine h = half_step_line(cone, columns, k);
  const kernels::ConeTables tab =
      kernels::cone_tables(line_tables(m.layers[layer], columns, h.line), h.c);
  const bool odd = columns ? cone.odd_y : cone.odd_x;
  const std::size_t n_in = cube(sh.a), n_out = cube(sh.b);
  double* unit = s.unit.data();
  std::fill_n(unit, n_in, 0.0);
  for (std::size_t r = 0; r < n_in; ++r) {
    double* column = s.maps[k].data() + r * n_out;
    unit[r] = 1.0;
    kernels::descend_pair(sh.b, sh.a, tab, unit, odd ? column : nullptr, odd ? nullptr : column,
                          s.window);
    unit[r] = 0.0;
    ++s.kernel_calls;
  }
}

// Line step k: `in` read as [spectators x a^3] (line places most significant), `out`
// written as [b^3 x spectators] (line places least significant): out = map in^T.
void line_step(const HalfStepShape& sh, int k, const double* map, const double* in, double* out) {
  const long n_in = static_cast<long>(cube(sh.a)), n_out = static_cast<long>(cube(sh.b)),
             S = static_cast<long>(sh.spectators(k));
  line_apply(n_out, n_in, S, map, in, out);
}

// The three line steps of one half-step, `in` and `out` grouped by the half-step's lines
// (rows: standard order; columns: transposed). The inputs of steps 1 and 2 stay in
// s.stage and the maps in s.maps (the adjoint reads both). A null `out` (the adjoint's
// recomputation) builds all three maps but skips the last product, whose result only the
// forward needs.
void half_step(const GridModel& m, int layer, const GridWindowCone& cone, bool columns,
               const double* in, double* out, GridScratch& s) {
  const HalfStepShape sh = half_step_shape(m.lattice, layer, columns);
  double* buf[2] = {s.stage.data(), s.stage.data() + s.stage.size() / 2};
  const double* cur = in;
  for (int k = 0; k < 3; ++k) {
    double* next = k == 2 ? out : buf[k];
    line_map(m, layer, cone, columns, k, s);
    if (next != nullptr) line_step(sh, k, s.maps[k].data(), cur, next);
    cur = next;
  }
}

// Adjoint of half_step: recomputes its maps and the inputs of steps 1 and 2 (cheaper than
// storing them per window), then per step, backwards: dL/d(in) = g_out^T map (added to
// g_in at step 0), dL/d(map) = g_out in, and the table gradient through the map, column r
// of dL/d(map) being the adjoint of the child of unit coarse window r.
void half_step_adjoint(const GridModel& m, int layer, const GridWindowCone& cone, bool columns,
                       const double* in, const double* g_out, double* g_in, GridLayerTables& grad,
                       GridScratch& s) {
  const HalfStepShape sh = half_step_shape(m.lattice, layer, columns);
  const std::size_t half = s.stage.size() / 2;
  half_step(m, layer, cone, columns, in, nullptr, s);
  const double* inputs[3] = {in, s.stage.data(), s.stage.data() + half};
  double* g_inputs[3] = {g_in, s.g_stage.data(), s.g_stage.data() + half};
  const long n_in = static_cast<long>(cube(sh.a)), n_out = static_cast<long>(cube(sh.b));
  const bool odd = columns ? cone.odd_y : cone.odd_x;
  const double* g_cur = g_out;
  for (int k = 2; k >= 0; --k) {
    const long S = static_cast<long>(sh.spectators(k));
    line_apply_adjoint_joint(n_out, n_in, S, s.maps[k].data(), g_cur, g_inputs[k], k == 0);
    line_apply_adjoint_map(n_out, n_in, S, g_cur, inputs[k], s.g_map.data(), false);
    const HalfStepLine h = half_step_line(cone, columns, k);
    const kernels::ConeTables tab =
        kernels::cone_tables(line_tables(m.layers[layer], columns, h.line), h.c);
    const kernels::ConeGradients g_tab =
        kernels::cone_gradients(line_tables(grad, columns, h.line), h.c);
    double* unit = s.unit.data();
    std::fill_n(unit, n_in, 0.0);
    std::fill_n(s.g_unit.data(), n_in, 0.0);  // dL/d(unit window): not needed
    for (long r = 0; r < n_in; ++r) {
      const double* g_column = s.g_map.data() + r * n_out;
      unit[r] = 1.0;
      kernels::ascend_pair(sh.b, sh.a, tab, unit, odd ? g_column : nullptr,
                           odd ? nullptr : g_column, s.g_unit.data(), g_tab, s.window);
      unit[r] = 0.0;
      ++s.kernel_calls;
    }
    g_cur = g_inputs[k];
  }
}

// The top sites of the top window with corner (x, y), in window-place order (place 0 most
// significant in the window's index, as table_marginal orders its sites).
std::vector<long> top_window_sites(const GridLattice& g, long x, long y) {
  std::vector<long> sites(9);
  for (int dy = 0; dy < 3; ++dy)
    for (int dx = 0; dx < 3; ++dx) sites[window_place(dx, dy)] = g.site(g.depth(), x + dx, y + dy);
  return sites;
}

}  // namespace

void GridScratch::reserve(const GridLattice& g) {
  const int chi_max = g.max_alphabet();
  const std::size_t window_size = grid_window_size(chi_max), line = cube(chi_max);
  window.reserve(chi_max, chi_max);
  stage.assign(2 * window_size, 0.0);
  g_stage.assign(stage.size(), 0.0);
  for (std::vector<double>* v : {&mid, &spare, &grouped_in, &grouped_out, &g_grouped_in})
    v->assign(window_size, 0.0);
  unit.assign(line, 0.0);
  g_unit.assign(line, 0.0);
  for (auto& map : maps) map.assign(line * line, 0.0);
  g_map.assign(line * line, 0.0);
}

void descend_columns(const GridModel& m, int layer, long x, long y, const double* rho, double* mid,
                     GridScratch& s) {
  transpose_places(rho, m.lattice.chi[layer + 1], s.grouped_in.data());
  half_step(m, layer, grid_window_cone(m.lattice, layer, x, y), true, s.grouped_in.data(),
            s.grouped_out.data(), s);
  transpose_places(s.grouped_out.data(), m.lattice.intermediate_chi(layer), mid);
}

void descend_rows(const GridModel& m, int layer, long x, long y, const double* mid, double* fine,
                  GridScratch& s) {
  half_step(m, layer, grid_window_cone(m.lattice, layer, x, y), false, mid, fine, s);
}

void descend_window(const GridModel& m, int layer, long x, long y, const double* rho, double* fine,
                    GridScratch& s) {
  descend_columns(m, layer, x, y, rho, s.mid.data(), s);
  descend_rows(m, layer, x, y, s.mid.data(), fine, s);
}

void ascend_columns(const GridModel& m, int layer, long x, long y, const double* rho,
                    const double* g_mid, double* g_rho, GridLayerTables& grad, GridScratch& s) {
  const int K = m.lattice.chi[layer + 1];
  const std::size_t size = grid_window_size(K);
  transpose_places(rho, K, s.grouped_in.data());
  transpose_places(g_mid, m.lattice.intermediate_chi(layer), s.grouped_out.data());
  std::fill_n(s.g_grouped_in.data(), size, 0.0);
  half_step_adjoint(m, layer, grid_window_cone(m.lattice, layer, x, y), true, s.grouped_in.data(),
                    s.grouped_out.data(), s.g_grouped_in.data(), grad, s);
  transpose_places(s.g_grouped_in.data(), K, s.spare.data());
  for (std::size_t i = 0; i < size; ++i) g_rho[i] += s.spare[i];
}

void ascend_rows(const GridModel& m, int layer, long x, long y, const double* mid,
                 const double* g_fine, double* g_mid, GridLayerTables& grad, GridScratch& s) {
  half_step_adjoint(m, layer, grid_window_cone(m.lattice, layer, x, y), false, mid, g_fine, g_mid,
                    grad, s);
}

void top_window(const GridModel& m, long x, long y, double* rho) {
  const GridLattice& g = m.lattice;
  table_marginal(g.chi[g.depth()], g.top_sites(), top_window_sites(g, x, y), m.top.data(), rho);
}

void top_window_adjoint(const GridLattice& g, long x, long y, const double* g_rho, double* g_top) {
  table_marginal_adjoint(g.chi[g.depth()], g.top_sites(), top_window_sites(g, x, y), g_rho, g_top,
                         0, g.top_size());
}

GridWindowMarginals::GridWindowMarginals(const GridLattice& g)
    : GridWindowMarginals(g, GridRegion::whole(g)) {}

GridWindowMarginals::GridWindowMarginals(const GridLattice& g, const GridRegion& region)
    : lattice_(g), region_(region) {
  rho_.resize(static_cast<std::size_t>(g.depth()) + 1);
  for (int l = 0; l <= g.depth(); ++l)
    rho_[l].assign(static_cast<std::size_t>(region.windows(l)) * grid_window_size(g.chi[l]), 0.0);
}

const double* GridWindowMarginals::window(int layer, long x, long y) const {
  return rho_[layer].data() + static_cast<std::size_t>(region_.index(layer, x, y)) *
                                  grid_window_size(lattice_.chi[layer]);
}

double* GridWindowMarginals::slot(int layer, long x, long y) {
  return const_cast<double*>(static_cast<const GridWindowMarginals&>(*this).window(layer, x, y));
}

void GridWindowMarginals::forward(const GridModel& m) {
  const GridLattice& g = lattice_;
  const GridRegion& r = region_;
  const int T = g.depth();
  for (long k = 0; k < r.windows(T); ++k) {
    const long x = r.x[T].at(k % r.x[T].length), y = r.y[T].at(k / r.x[T].length);
    top_window(m, x, y, slot(T, x, y));
  }
  std::vector<GridScratch> scratch(static_cast<std::size_t>(omp_get_max_threads()));
  for (auto& s : scratch) s.reserve(g);
  for (int l = T - 1; l >= 0; --l) {
    // One y half-step per intermediate window (columns cx .. cx+2, rows y .. y+2), shared
    // by the two fine windows x = 2 cx + 1 (odd) and 2 cx + 2 (even) hanging off it. The
    // region's coarse columns cx one layer up are exactly those of its windows x here
    // (GridRegion::cones_of), so each intermediate window feeds at least one of them.
    const CyclicRange &cxs = r.x[l + 1], &ys = r.y[l];
    const long n = cxs.length * ys.length;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; ++i) {
      const long y = ys.at(i / cxs.length), x_odd = 2 * cxs.at(i % cxs.length) + 1;
      GridScratch& s = scratch[static_cast<std::size_t>(omp_get_thread_num())];
      const GridWindowCone c = grid_window_cone(g, l, x_odd, y);
      descend_columns(m, l, x_odd, y, window(l + 1, c.cx, c.cy), s.mid.data(), s);
      for (long x : {x_odd, x_odd + 1})
        if (r.x[l].contains(x))
          descend_rows(m, l, x, y, s.mid.data(), slot(l, x, y), s);
    }
  }
  kernel_calls_ = 0;
  for (const auto& s : scratch) kernel_calls_ += s.kernel_calls;
}

}  // namespace cmera::grid
