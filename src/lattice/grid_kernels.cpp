// 3 x 3 window descend of the grid MERA (grid_kernels.hpp, docs/design-grid.md §3): the
// window tensor has nine places (place 3 dy + dx most significant first); a half-step
// replaces the three places of one column or row by the 1D child of that line, gathering
// each line's chi^3 coarse values into a contiguous vector for kernels::descend_pair and
// scattering its child back. Ping-pong buffers hold the tensor between the steps; the
// y half-step of a window is shared by its two x-parity siblings (docs/design-grid.md §3).
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

// out = in with places `line` (alphabet K) refined to the 1D child (alphabet d) of the
// line whose cone tables are `tab`; `odd` picks the child (docs/design.md §2). Updates dims.
void refine_line(Dims& dims, const std::array<int, 3>& line, int d, const kernels::ConeTables& tab,
                 bool odd, const double* in, double* out, GridScratch& s) {
  const int K = dims[line[0]];
  Dims out_dims = dims;
  for (int p : line) out_dims[p] = d;
  const auto in_st = strides(dims), out_st = strides(out_dims);
  std::array<int, 6> others{};
  for (int p = 0, k = 0; p < 9; ++p)
    if (p != line[0] && p != line[1] && p != line[2]) others[k++] = p;
  std::size_t spectators = 1;
  for (int p : others) spectators *= static_cast<std::size_t>(dims[p]);

  for (std::size_t o = 0; o < spectators; ++o) {
    std::size_t rest = o, base_in = 0, base_out = 0;
    for (int k = 5; k >= 0; --k) {  // spectator values, last place fastest
      const int p = others[k];
      const std::size_t v = rest % static_cast<std::size_t>(dims[p]);
      rest /= static_cast<std::size_t>(dims[p]);
      base_in += v * in_st[p];
      base_out += v * out_st[p];
    }
    for (int a = 0, i = 0; a < K; ++a)
      for (int b = 0; b < K; ++b)
        for (int c = 0; c < K; ++c, ++i)
          s.gather[i] = in[base_in + a * in_st[line[0]] + b * in_st[line[1]] + c * in_st[line[2]]];
    kernels::descend_pair(d, K, tab, s.gather.data(), odd ? s.child.data() : nullptr,
                          odd ? nullptr : s.child.data(), s.window);
    ++s.kernel_calls;
    for (int a = 0, i = 0; a < d; ++a)
      for (int b = 0; b < d; ++b)
        for (int c = 0; c < d; ++c, ++i)
          out[base_out + a * out_st[line[0]] + b * out_st[line[1]] + c * out_st[line[2]]] =
              s.child[i];
  }
  dims = out_dims;
}

// Three refine_line steps of one half-step: the window's columns (y half-step, into the
// intermediate alphabet) or its rows (x half-step, into chi_l); `out` gets the result.
void half_step(const GridModel& m, int layer, const GridWindowCone& cone, bool columns,
               const double* in, double* out, GridScratch& s) {
  const GridLattice& g = m.lattice;
  const GridLayerTables& t = m.layers[layer];
  Dims dims;
  dims.fill(columns ? g.chi[layer + 1] : g.intermediate_chi(layer));
  double* buf[2] = {s.stage.data(), s.stage.data() + s.stage.size() / 2};
  const double* cur = in;
  for (int k = 0; k < 3; ++k) {
    const std::array<int, 3> places =
        columns ? std::array<int, 3>{window_place(k, 0), window_place(k, 1), window_place(k, 2)}
                : std::array<int, 3>{window_place(0, k), window_place(1, k), window_place(2, k)};
    const kernels::ConeTables tab =
        columns ? kernels::cone_tables(t.y.line(cone.column_line(k)), cone.cy)
                : kernels::cone_tables(t.x.line(cone.row_line(k)), cone.cx);
    double* next = k == 2 ? out : buf[k];
    refine_line(dims, places, columns ? g.intermediate_chi(layer) : g.chi[layer], tab,
                columns ? cone.odd_y : cone.odd_x, cur, next, s);
    cur = next;
  }
}

}  // namespace

void GridScratch::reserve(int chi_max) {
  window.reserve(chi_max, chi_max);
  stage.assign(2 * grid_window_size(chi_max), 0.0);
  mid.assign(grid_window_size(chi_max), 0.0);
  gather.assign(static_cast<std::size_t>(chi_max) * chi_max * chi_max, 0.0);
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

void top_window(const GridModel& m, long x, long y, double* rho) {
  const GridLattice& g = m.lattice;
  const int T = g.depth(), K = g.chi[T];
  const long n = g.top_sites();
  // Stride in the top table of each window place (site 0 most significant).
  std::array<std::size_t, 9> stride{};
  for (int dy = 0; dy < 3; ++dy)
    for (int dx = 0; dx < 3; ++dx) {
      std::size_t st = 1;
      for (long i = g.site(T, x + dx, y + dy) + 1; i < n; ++i) st *= static_cast<std::size_t>(K);
      stride[window_place(dx, dy)] = st;
    }
  std::fill_n(rho, grid_window_size(K), 0.0);
  for (std::size_t flat = 0; flat < m.top.size(); ++flat) {
    std::size_t w = 0;
    for (int p = 0; p < 9; ++p) w = w * K + (flat / stride[p]) % K;
    rho[w] += m.top[flat];
  }
}

GridWindowMarginals::GridWindowMarginals(const GridLattice& g) : lattice_(g) {
  rho_.resize(static_cast<std::size_t>(g.depth()) + 1);
  for (int l = 0; l <= g.depth(); ++l)
    rho_[l].assign(static_cast<std::size_t>(g.sites_at(l)) * grid_window_size(g.chi[l]), 0.0);
}

const double* GridWindowMarginals::window(int layer, long x, long y) const {
  return rho_[layer].data() + static_cast<std::size_t>(lattice_.site(layer, x, y)) *
                                  grid_window_size(lattice_.chi[layer]);
}

void GridWindowMarginals::forward(const GridModel& m) {
  const GridLattice& g = lattice_;
  const int T = g.depth();
  for (long y = 0; y < g.ly_at(T); ++y)
    for (long x = 0; x < g.lx_at(T); ++x)
      top_window(m, x, y, rho_[T].data() + g.site(T, x, y) * grid_window_size(g.chi[T]));
  const int chi_max = *std::max_element(g.chi.begin(), g.chi.end());
  std::vector<GridScratch> scratch(static_cast<std::size_t>(omp_get_max_threads()));
  for (auto& s : scratch) s.reserve(chi_max);
  for (int l = T - 1; l >= 0; --l) {
    // One y half-step per intermediate window (columns cx .. cx+2, rows y .. y+2), shared
    // by the two fine windows x = 2 cx + 1 (odd) and 2 cx + 2 (even) hanging off it.
    const long mx = g.lx_at(l + 1), n = mx * g.ly_at(l);
    const std::size_t size = grid_window_size(g.chi[l]);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; ++i) {
      const long y = i / mx, x_odd = 2 * (i % mx) + 1;
      GridScratch& s = scratch[static_cast<std::size_t>(omp_get_thread_num())];
      const GridWindowCone c = grid_window_cone(g, l, x_odd, y);
      descend_columns(m, l, x_odd, y, window(l + 1, c.cx, c.cy), s.mid.data(), s);
      for (long x : {x_odd, x_odd + 1})
        descend_rows(m, l, x, y, s.mid.data(),
                     rho_[l].data() + static_cast<std::size_t>(g.site(l, x, y)) * size, s);
    }
  }
  kernel_calls_ = 0;
  for (const auto& s : scratch) kernel_calls_ += s.kernel_calls;
}

}  // namespace cmera::grid
