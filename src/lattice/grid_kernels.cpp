// 3 x 3 window descend of the grid MERA (grid_kernels.hpp, docs/design-grid.md §3): the
// window tensor has nine places (place 3 dy + dx most significant first); a half-step
// replaces the three places of one column or row by the 1D child of that line, gathering
// each line's chi^3 coarse values into a contiguous vector for kernels::descend_pair and
// scattering its child back. Ping-pong buffers hold the tensor between the steps; the
// y half-step of a window is shared by its two x-parity siblings (docs/design-grid.md §3).
// The adjoints walk the same LineStep bookkeeping backwards around kernels::ascend_pair,
// recomputing a half-step's inner stages instead of keeping them per window.
#include "cmera/grid_kernels.hpp"

#include <omp.h>

#include <algorithm>
#include <array>

namespace cmera::grid {

namespace {

using Dims = std::array<int, 9>;

std::array<std::size_t, 9> strides(const Dims& dims) {
  std::array<std::size_t, 9> st{};
  std::size_t s = 1;
  for (int p = 8; p >= 0; --p) {
    st[p] = s;
    s *= static_cast<std::size_t>(dims[p]);
  }
  return st;
}

// One refine_line step's index bookkeeping: the window's dims before and after
// the three places `line` (alphabet K) become the 1D child (alphabet d), and
// for spectator value o (the six other places, last fastest) the offsets of its
// first entry in both tensors. Shared by the step and its adjoint so that both
// walk the tensors identically.
struct LineStep {
  Dims dims, out_dims;
  std::array<int, 3> line;
  std::array<std::size_t, 9> in_st, out_st;
  std::array<int, 6> others{};
  std::size_t spectators = 1;
  int K, d;

  LineStep(const Dims& in, const std::array<int, 3>& places, int d_out)
      : dims(in), out_dims(in), line(places), K(in[places[0]]), d(d_out) {
    for (int p : line) out_dims[p] = d;
    in_st = strides(dims);
    out_st = strides(out_dims);
    for (int p = 0, k = 0; p < 9; ++p)
      if (p != line[0] && p != line[1] && p != line[2]) others[k++] = p;
    for (int p : others) spectators *= static_cast<std::size_t>(dims[p]);
  }
  void bases(std::size_t o, std::size_t& base_in, std::size_t& base_out) const {
    base_in = base_out = 0;
    for (int k = 5; k >= 0; --k) {
      const int p = others[k];
      const std::size_t v = o % static_cast<std::size_t>(dims[p]);
      o /= static_cast<std::size_t>(dims[p]);
      base_in += v * in_st[p];
      base_out += v * out_st[p];
    }
  }
  // Copies the n^3 line values at `base` of a tensor with strides `st` to `to`
  // (gather), or adds `to` back into it (scatter_add) / overwrites it
  // (scatter).
  void gather(const double* t, std::size_t base, const std::array<std::size_t, 9>& st, int n,
              double* to) const {
    for (int a = 0, i = 0; a < n; ++a)
      for (int b = 0; b < n; ++b)
        for (int c = 0; c < n; ++c, ++i)
          to[i] = t[base + a * st[line[0]] + b * st[line[1]] + c * st[line[2]]];
  }
  template <bool kAdd>
  void scatter(const double* from, std::size_t base, const std::array<std::size_t, 9>& st, int n,
               double* t) const {
    for (int a = 0, i = 0; a < n; ++a)
      for (int b = 0; b < n; ++b)
        for (int c = 0; c < n; ++c, ++i) {
          double& x = t[base + a * st[line[0]] + b * st[line[1]] + c * st[line[2]]];
          x = kAdd ? x + from[i] : from[i];
        }
  }
};

// out = in with places `line` (alphabet K) refined to the 1D child (alphabet d)
// of the line whose cone tables are `tab`; `odd` picks the child
// (docs/design.md §2).
void refine_line(const LineStep& st, const kernels::ConeTables& tab, bool odd, const double* in,
                 double* out, GridScratch& s) {
  for (std::size_t o = 0; o < st.spectators; ++o) {
    std::size_t base_in, base_out;
    st.bases(o, base_in, base_out);
    st.gather(in, base_in, st.in_st, st.K, s.gather.data());
    kernels::descend_pair(st.d, st.K, tab, s.gather.data(), odd ? s.child.data() : nullptr,
                          odd ? nullptr : s.child.data(), s.window);
    ++s.kernel_calls;
    st.scatter<false>(s.child.data(), base_out, st.out_st, st.d, out);
  }
}

// Adjoint of refine_line: given g_out = dL/d(out), adds dL/d(in) to g_in and
// dL/d(tables) to `grad`, spectator by spectator through kernels::ascend_pair.
void refine_line_adjoint(const LineStep& st, const kernels::ConeTables& tab,
                         const kernels::ConeGradients& grad, bool odd, const double* in,
                         const double* g_out, double* g_in, GridScratch& s) {
  for (std::size_t o = 0; o < st.spectators; ++o) {
    std::size_t base_in, base_out;
    st.bases(o, base_in, base_out);
    st.gather(in, base_in, st.in_st, st.K, s.gather.data());
    st.gather(g_out, base_out, st.out_st, st.d, s.child.data());
    std::fill_n(s.g_gather.data(), s.gather.size(), 0.0);
    kernels::ascend_pair(st.d, st.K, tab, s.gather.data(), odd ? s.child.data() : nullptr,
                         odd ? nullptr : s.child.data(), s.g_gather.data(), grad, s.window);
    ++s.kernel_calls;
    st.scatter<true>(s.g_gather.data(), base_in, st.in_st, st.K, g_in);
  }
}

// Step k (0..2) of a half-step: the window places it refines, the line and the
// coarse window of that line it reads (docs/design-grid.md §2).
struct HalfStepLine {
  std::array<int, 3> places;
  long line, c;
};
HalfStepLine half_step_line(const GridWindowCone& cone, bool columns, int k) {
  if (columns)
    return {
        {window_place(k, 0), window_place(k, 1), window_place(k, 2)}, cone.column_line(k), cone.cy};
  return {{window_place(0, k), window_place(1, k), window_place(2, k)}, cone.row_line(k), cone.cx};
}
template <class Layer>
auto& line_tables(Layer& t, bool columns, long line) {
  return columns ? t.y.line(line) : t.x.line(line);
}

// The dims of the three steps' inputs of a half-step (the window's alphabet per
// place).
std::array<LineStep, 3> half_step_plan(const GridLattice& g, int layer, const GridWindowCone& cone,
                                       bool columns) {
  const int d = columns ? g.intermediate_chi(layer) : g.chi[layer];
  Dims dims;
  dims.fill(columns ? g.chi[layer + 1] : g.intermediate_chi(layer));
  const LineStep s0(dims, half_step_line(cone, columns, 0).places, d);
  const LineStep s1(s0.out_dims, half_step_line(cone, columns, 1).places, d);
  const LineStep s2(s1.out_dims, half_step_line(cone, columns, 2).places, d);
  return {s0, s1, s2};
}

// Three refine_line steps of one half-step: the window's columns (y half-step,
// into the intermediate alphabet) or its rows (x half-step, into chi_l); `out`
// gets the result, the inputs of steps 1 and 2 are left in s.stage (the adjoint
// reads them).
void half_step(const GridModel& m, int layer, const GridWindowCone& cone, bool columns,
               const double* in, double* out, GridScratch& s) {
  const auto plan = half_step_plan(m.lattice, layer, cone, columns);
  double* buf[2] = {s.stage.data(), s.stage.data() + s.stage.size() / 2};
  const double* cur = in;
  for (int k = 0; k < 3; ++k) {
    const HalfStepLine h = half_step_line(cone, columns, k);
    double* next = k == 2 ? out : buf[k];
    refine_line(plan[k], kernels::cone_tables(line_tables(m.layers[layer], columns, h.line), h.c),
                columns ? cone.odd_y : cone.odd_x, cur, next, s);
    cur = next;
  }
}

// Adjoint of half_step: recomputes the inputs of steps 1 and 2 (cheaper than
// storing them per window), then runs the three adjoint steps backwards, adding
// to g_in.
void half_step_adjoint(const GridModel& m, int layer, const GridWindowCone& cone, bool columns,
                       const double* in, const double* g_out, double* g_in, GridLayerTables& grad,
                       GridScratch& s) {
  const auto plan = half_step_plan(m.lattice, layer, cone, columns);
  const std::size_t half = s.stage.size() / 2;
  const double* inputs[3] = {in, s.stage.data(), s.stage.data() + half};
  for (int k = 0; k < 2; ++k) {
    const HalfStepLine h = half_step_line(cone, columns, k);
    refine_line(plan[k], kernels::cone_tables(line_tables(m.layers[layer], columns, h.line), h.c),
                columns ? cone.odd_y : cone.odd_x, inputs[k], s.stage.data() + k * half, s);
  }
  double* gbuf[2] = {s.g_stage.data(), s.g_stage.data() + half};
  const double* g_cur = g_out;
  for (int k = 2; k >= 0; --k) {
    const HalfStepLine h = half_step_line(cone, columns, k);
    double* g_next = g_in;
    if (k > 0) {
      g_next = gbuf[k - 1];
      std::fill_n(g_next, half, 0.0);
    }
    refine_line_adjoint(plan[k],
                        kernels::cone_tables(line_tables(m.layers[layer], columns, h.line), h.c),
                        kernels::cone_gradients(line_tables(grad, columns, h.line), h.c),
                        columns ? cone.odd_y : cone.odd_x, inputs[k], g_cur, g_next, s);
    g_cur = g_next;
  }
}

// Stride in the top table of each place of the top window with corner (x, y)
// (site 0 most significant).
std::array<std::size_t, 9> top_strides(const GridLattice& g, long x, long y) {
  const int T = g.depth(), K = g.chi[T];
  const long n = g.top_sites();
  std::array<std::size_t, 9> stride{};
  for (int dy = 0; dy < 3; ++dy)
    for (int dx = 0; dx < 3; ++dx) {
      std::size_t st = 1;
      for (long i = g.site(T, x + dx, y + dy) + 1; i < n; ++i) st *= static_cast<std::size_t>(K);
      stride[window_place(dx, dy)] = st;
    }
  return stride;
}

// Window cell of top-table entry `flat`.
std::size_t top_cell(const std::array<std::size_t, 9>& stride, int K, std::size_t flat) {
  std::size_t w = 0;
  for (int p = 0; p < 9; ++p) w = w * K + (flat / stride[p]) % K;
  return w;
}

}  // namespace

void GridScratch::reserve(int chi_max) {
  window.reserve(chi_max, chi_max);
  stage.assign(2 * grid_window_size(chi_max), 0.0);
  g_stage.assign(stage.size(), 0.0);
  mid.assign(grid_window_size(chi_max), 0.0);
  gather.assign(static_cast<std::size_t>(chi_max) * chi_max * chi_max, 0.0);
  g_gather.assign(gather.size(), 0.0);
  child.assign(gather.size(), 0.0);
}

void descend_columns(const GridModel& m, int layer, long x, long y, const double* rho, double* mid,
                     GridScratch& s) {
  half_step(m, layer, grid_window_cone(m.lattice, layer, x, y), true, rho, mid, s);
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
  half_step_adjoint(m, layer, grid_window_cone(m.lattice, layer, x, y), true, rho, g_mid, g_rho,
                    grad, s);
}

void ascend_rows(const GridModel& m, int layer, long x, long y, const double* mid,
                 const double* g_fine, double* g_mid, GridLayerTables& grad, GridScratch& s) {
  half_step_adjoint(m, layer, grid_window_cone(m.lattice, layer, x, y), false, mid, g_fine, g_mid,
                    grad, s);
}

void top_window(const GridModel& m, long x, long y, double* rho) {
  const int K = m.lattice.chi[m.depth()];
  const auto stride = top_strides(m.lattice, x, y);
  std::fill_n(rho, grid_window_size(K), 0.0);
  for (std::size_t flat = 0; flat < m.top.size(); ++flat)
    rho[top_cell(stride, K, flat)] += m.top[flat];
}

void top_window_adjoint(const GridLattice& g, long x, long y, const double* g_rho, double* g_top) {
  const int K = g.chi[g.depth()];
  const auto stride = top_strides(g, x, y);
  const std::size_t n = g.top_size();
  for (std::size_t flat = 0; flat < n; ++flat) g_top[flat] += g_rho[top_cell(stride, K, flat)];
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
  const int chi_max = *std::max_element(g.chi.begin(), g.chi.end());
  std::vector<GridScratch> scratch(static_cast<std::size_t>(omp_get_max_threads()));
  for (auto& s : scratch) s.reserve(chi_max);
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
