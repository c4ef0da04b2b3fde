// Objective and reverse sweep of the grid MERA (grid_sweep.hpp) over a region of
// windows (the whole lattice, or a rank's cones, docs/design-grid.md §5). The reverse
// step of layer l is organized by coarse window (cx, cy) of the region at layer l+1: one
// task takes those of the four fine windows hanging off it (x in 2cx+1, 2cx+2; y in
// 2cy+1, 2cy+2, docs/design-grid.md §2) that lie in the region, recomputes their shared
// intermediate windows, and runs ascend_rows then ascend_columns, so dL/d(coarse window)
// has a single writer and needs no reduction. Table gradients without atomics, in an
// order fixed by the lattice and the region and not by the thread count (bitwise
// reproducible at any OMP_NUM_THREADS), as the chain's sweep does:
// - untied: task (cx, cy) touches column lines cx..cx+2 at coarse sites cy..cy+2 and row
//   lines 2cy+1..2cy+4 at coarse sites cx..cx+2, so tasks whose region offsets agree mod
//   3 in both directions are disjoint; the nine colours run one after another, and the
//   tasks beyond the last full multiple of 3 in either direction (they may meet a wrapped
//   neighbour) run last, serially;
// - tied: every task meets the same tables, so each coarse row sums into a private copy
//   (two W and two U per layer: tiny) and the copies are added in row order.
#include "cmera/grid_sweep.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <climits>
#include <cmath>
#include <stdexcept>

namespace cmera::grid {

namespace {

void zero(LineTables& lines) {
  for (LayerTables& t : lines.lines) {
    std::fill(t.W.begin(), t.W.end(), 0.0);
    std::fill(t.U.begin(), t.U.end(), 0.0);
  }
}

void add_into(const LineTables& from, LineTables& to) {
  for (std::size_t i = 0; i < from.lines.size(); ++i) {
    for (std::size_t k = 0; k < from.lines[i].W.size(); ++k) to.lines[i].W[k] += from.lines[i].W[k];
    for (std::size_t k = 0; k < from.lines[i].U.size(); ++k) to.lines[i].U[k] += from.lines[i].U[k];
  }
}

}  // namespace

GridWindowStats::GridWindowStats(const GridLattice& g)
    : GridWindowStats(g, CyclicRange::make(0, g.lx, g.lx), CyclicRange::make(0, g.ly, g.ly)) {}

GridWindowStats::GridWindowStats(const GridLattice& g, const CyclicRange& x, const CyclicRange& y)
    : lattice_(g), x_(x), y_(y),
      q_(static_cast<std::size_t>(x.length * y.length) * grid_window_size(g.chi[0]), 0.0) {}

void GridWindowStats::add(const std::uint8_t* config, double weight) {
  const int d = lattice_.chi[0];
  for (long oy = 0; oy < y_.length; ++oy)
    for (long ox = 0; ox < x_.length; ++ox) {
      const long x = x_.at(ox), y = y_.at(oy);
      std::size_t cell = 0;
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx) cell = cell * d + config[lattice_.site(0, x + dx, y + dy)];
      window(x, y)[cell] += weight;
    }
}

CyclicRange GridWindowStats::box_x() const { return CyclicRange::make(x_.start, x_.length + 2, lattice_.lx); }
CyclicRange GridWindowStats::box_y() const { return CyclicRange::make(y_.start, y_.length + 2, lattice_.ly); }

// Threads take bands of kBand rows of windows. Per sample a band takes its kBand + 2 lines
// of the box (copied with their two wrapped columns when the box is the whole ring),
// codes each line's 3-site runs once in loops the compiler vectorizes (a compile-time
// binary alphabet: shifts, as SSE2 has no 32-bit multiply), combines three lines' runs
// into every window's code, then adds 1 to each window's counter. Counters are 32-bit
// integers laid out cell-major (a row's windows side by side for each cell) and flushed
// into the histograms once per call: a band's counters stay in cache over the samples
// (512 KB for 4 rows of 64 windows at chi_0 = 2), neighbouring windows that see the same
// cell (most of them, in spin and image data) share a cache line, and no two windows'
// cells sit 4 KB apart (the window-major double histograms made every increment a
// cache-set conflict). A sample's lines lie a box apart, beyond the hardware prefetchers'
// reach, so the lines of the sample kPrefetchSamples ahead are prefetched; bands read each
// line (kBand + 2) / kBand times rather than 3 times. Together: 0.12 -> 0.33 GB/s on
// random bits, 64 x 64 grid, one core (bench_stats, BM_GridStatisticsPass). A call's
// samples are one read block, far below the counters' 2^32.
namespace {

constexpr long kBand = 4;
constexpr long kPrefetchSamples = 8;

// One thread's counters: a band of up to kBand rows of nx windows, `cells` each.
std::size_t band_counters(long nx, long ny, std::size_t cells) {
  return static_cast<std::size_t>(std::min(kBand, ny) * nx) * cells;
}

// runs[k] = code of the 3-site run starting at site k of a line (site k most significant).
template <std::uint32_t kAlphabet>
void run_codes(const std::uint8_t* line, long n, std::uint32_t d, std::uint32_t* runs) {
  const std::uint32_t a = kAlphabet ? kAlphabet : d;
  for (long k = 0; k < n; ++k)
    runs[k] = (static_cast<std::uint32_t>(line[k]) * a + line[k + 1]) * a + line[k + 2];
}

// The counter of every window of a row: its code (rows of runs r0 above r1 above r2,
// r0 most significant) times nx, plus its place in the row.
template <std::uint32_t kAlphabet>
void window_counters(const std::uint32_t* r0, const std::uint32_t* r1, const std::uint32_t* r2,
                     long nx, std::uint32_t d, std::uint32_t* at) {
  const std::uint32_t a = kAlphabet ? kAlphabet : d, a3 = a * a * a;
  for (long ox = 0; ox < nx; ++ox)
    at[ox] = ((r0[ox] * a3 + r1[ox]) * a3 + r2[ox]) * static_cast<std::uint32_t>(nx) +
             static_cast<std::uint32_t>(ox);
}

}  // namespace

double GridWindowStats::count_scratch_bytes(const GridLattice& g, long nx, long ny) {
  return 4.0 * omp_get_max_threads() *
         static_cast<double>(band_counters(nx, ny, grid_window_size(g.chi[0])));
}

void GridWindowStats::count(const std::uint8_t* boxes, long samples, long first, long step) {
  const long bw = box_x().length, bh = box_y().length, nx = x_.length, ny = y_.length;
  const auto wrap = [](long k, long n) { return k < n ? k : k - n; };  // k < 2n
  const std::uint32_t du = static_cast<std::uint32_t>(lattice_.chi[0]);
  const std::size_t cells = grid_window_size(lattice_.chi[0]), row_counters = cells * static_cast<std::size_t>(nx);
  const bool binary = du == 2;
  const long bands = (ny + kBand - 1) / kBand;
#pragma omp parallel
  {
    std::vector<std::uint8_t> copies(static_cast<std::size_t>((kBand + 2) * (nx + 2)));
    std::vector<std::uint32_t> runs(static_cast<std::size_t>((kBand + 2) * nx));
    std::vector<std::uint32_t> at(static_cast<std::size_t>(nx));
    std::vector<std::uint32_t> counters(band_counters(nx, ny, cells));
    const bool wraps = nx + 2 > bw;  // the box is the whole ring: a line's last two sites wrap
#pragma omp for schedule(static)
    for (long band = 0; band < bands; ++band) {
      const long y0 = band * kBand, rows = std::min(kBand, ny - y0), lines = rows + 2;
      std::fill(counters.begin(), counters.end(), 0u);
      for (long r = first; r < samples; r += step) {
        const std::uint8_t* sample = boxes + r * bw * bh;
        if (r + kPrefetchSamples * step < samples)
          for (long j = 0; j < lines; ++j) {
            const std::uint8_t* ahead = sample + kPrefetchSamples * step * bw * bh + wrap(y0 + j, bh) * bw;
            for (long b = 0; b < bw; b += 64) __builtin_prefetch(ahead + b);
            __builtin_prefetch(ahead + bw - 1);
          }
        for (long j = 0; j < lines; ++j) {
          const std::uint8_t* line = sample + wrap(y0 + j, bh) * bw;
          if (wraps) {
            std::uint8_t* copy = copies.data() + j * (nx + 2);
            std::memcpy(copy, line, static_cast<std::size_t>(bw));
            std::memcpy(copy + bw, line, static_cast<std::size_t>(nx + 2 - bw));
            line = copy;
          }
          std::uint32_t* out = runs.data() + j * nx;
          binary ? run_codes<2>(line, nx, du, out) : run_codes<0>(line, nx, du, out);
        }
        for (long j = 0; j < rows; ++j) {
          const std::uint32_t* r0 = runs.data() + j * nx;
          binary ? window_counters<2>(r0, r0 + nx, r0 + 2 * nx, nx, du, at.data())
                 : window_counters<0>(r0, r0 + nx, r0 + 2 * nx, nx, du, at.data());
          std::uint32_t* row = counters.data() + static_cast<std::size_t>(j) * row_counters;
          for (long ox = 0; ox < nx; ++ox) ++row[at[ox]];
        }
      }
      for (long j = 0; j < rows; ++j) {
        const std::uint32_t* row = counters.data() + static_cast<std::size_t>(j) * row_counters;
        double* const hist = q_.data() + static_cast<std::size_t>((y0 + j) * nx) * cells;
        for (std::size_t c = 0; c < cells; ++c)
          for (long ox = 0; ox < nx; ++ox)
            hist[static_cast<std::size_t>(ox) * cells + c] += row[c * static_cast<std::size_t>(nx) + static_cast<std::size_t>(ox)];
      }
    }
  }
}

const double* GridWindowStats::window(long x, long y) const {
  return q_.data() + static_cast<std::size_t>(y_.offset(y) * x_.length + x_.offset(x)) *
                         grid_window_size(lattice_.chi[0]);
}
double* GridWindowStats::window(long x, long y) {
  return const_cast<double*>(static_cast<const GridWindowStats&>(*this).window(x, y));
}

GridModel zeros_like(const GridModel& m) {
  GridModel z = m;
  for (GridLayerTables& l : z.layers) {
    zero(l.y);
    zero(l.x);
  }
  std::fill(z.top.begin(), z.top.end(), 0.0);
  return z;
}

Tables as_chain_tables(const GridModel& m) {
  Tables t;
  for (const GridLayerTables& l : m.layers)
    for (const LineTables* dir : {&l.y, &l.x})
      t.layers.insert(t.layers.end(), dir->lines.begin(), dir->lines.end());
  t.top = m.top;
  return t;
}

void from_chain_tables(const Tables& t, GridModel& m) {
  std::size_t k = 0;
  for (GridLayerTables& l : m.layers)
    for (LineTables* dir : {&l.y, &l.x})
      for (LayerTables& line : dir->lines) line = t.layers[k++];
  m.top = t.top;
}

GridSweep::GridSweep(const GridLattice& g) : GridSweep(g, GridRegion::whole(g)) {}

GridSweep::GridSweep(const GridLattice& g, const GridRegion& region)
    : lattice_(g), region_(region), rho_(g, region) {}

void GridSweep::ensure_workers() {
  while (workers_.size() < static_cast<std::size_t>(omp_get_max_threads())) {
    workers_.emplace_back();
    workers_.back().s.reserve(lattice_);
    workers_.back().g_mid.assign(grid_window_size(lattice_.max_alphabet()), 0.0);
  }
}

void GridSweep::forward(const GridModel& m) { rho_.forward(m); }

double GridSweep::objective(const GridWindowStats& q) const {
  const CyclicRange &xs = region_.x[0], &ys = region_.y[0];
  const std::size_t size = grid_window_size(lattice_.chi[0]);
  std::vector<double> per_window(static_cast<std::size_t>(region_.windows(0)), 0.0);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < region_.windows(0); ++i) {
    const long x = xs.at(i % xs.length), y = ys.at(i / xs.length);
    const double* qw = q.window(x, y);
    const double* p = rho_.window(0, x, y);
    double s = 0;
    for (std::size_t k = 0; k < size; ++k)
      if (qw[k] > 0) s += qw[k] * std::log(p[k]);
    per_window[i] = s;
  }
  double total = 0;  // fixed order
  for (double s : per_window) total += s;
  return total;
}

double* GridSweep::g_window(std::vector<double>& g, int layer, long x, long y) const {
  return g.data() +
         static_cast<std::size_t>(region_.index(layer, x, y)) * grid_window_size(lattice_.chi[layer]);
}

void GridSweep::reverse_layer(const GridModel& m, int l, GridLayerTables& grad) {
  const GridLattice& g = lattice_;
  const CyclicRange &cxs = region_.x[l + 1], &cys = region_.y[l + 1];
  const CyclicRange &xs = region_.x[l], &ys = region_.y[l];
  const std::size_t mid_size = grid_window_size(g.intermediate_chi(l));
  g_coarse_.assign(static_cast<std::size_t>(region_.windows(l + 1)) * grid_window_size(g.chi[l + 1]),
                   0.0);
  // Task (i, j): the coarse window at offsets i, j of the region one layer up and those of
  // its four fine windows that lie in the region (the others have no gradient).
  auto task = [&](long i, long j, GridLayerTables& into) {
    Worker& w = workers_[static_cast<std::size_t>(omp_get_thread_num())];
    const long cx = cxs.at(i), cy = cys.at(j);
    const double* rho = rho_.window(l + 1, cx, cy);
    double* g_rho = g_window(g_coarse_, l + 1, cx, cy);
    const long x = 2 * cx + 1;
    for (long y : {2 * cy + 1, 2 * cy + 2}) {
      if (!ys.contains(y)) continue;
      descend_columns(m, l, x, y, rho, w.s.mid.data(), w.s);
      std::fill_n(w.g_mid.data(), mid_size, 0.0);
      for (long xf : {x, x + 1})
        if (xs.contains(xf))
          ascend_rows(m, l, xf, y, w.s.mid.data(), g_window(g_fine_, l, xf, y), w.g_mid.data(),
                      into, w.s);
      ascend_columns(m, l, x, y, rho, w.g_mid.data(), g_rho, into, w.s);
    }
  };
  const long mx = cxs.length, my = cys.length;
  if (!m.tied) {
    // Offsets 3 apart are 3 apart on the ring too (ring distance >= 3 also the other way
    // round: offsets below 3 * nx <= mx), so the colour classes stay disjoint.
    const long nx = mx / 3, ny = my / 3;  // full colour periods in each direction
    for (int colour = 0; colour < 9; ++colour) {
#pragma omp parallel for schedule(static)
      for (long k = 0; k < nx * ny; ++k)
        task(colour % 3 + 3 * (k % nx), colour / 3 + 3 * (k / nx), grad);
    }
    for (long j = 0; j < my; ++j)
      for (long i = 0; i < mx; ++i)
        if (i >= 3 * nx || j >= 3 * ny) task(i, j, grad);
  } else {
    GridLayerTables empty = grad;
    zero(empty.y);
    zero(empty.x);
    std::vector<GridLayerTables> partial(static_cast<std::size_t>(my), empty);
#pragma omp parallel for schedule(static)
    for (long j = 0; j < my; ++j)
      for (long i = 0; i < mx; ++i) task(i, j, partial[static_cast<std::size_t>(j)]);
    for (const GridLayerTables& p : partial) {
      add_into(p.y, grad.y);
      add_into(p.x, grad.x);
    }
  }
}

void GridSweep::add_extra(const WindowAdjoints* extra, int layer) {
  if (extra == nullptr) return;
  const std::size_t size = grid_window_size(lattice_.chi[layer]);
  for (auto it = extra->lower_bound({layer, LONG_MIN, LONG_MIN});
       it != extra->end() && std::get<0>(it->first) == layer; ++it) {
    const auto [l, x, y] = it->first;
    if (!region_.contains(l, x, y) || it->second.size() != size)
      throw std::logic_error("GridSweep::gradient: an extra window adjoint outside the region");
    double* g = g_window(g_fine_, l, x, y);
    for (std::size_t k = 0; k < size; ++k) g[k] += it->second[k];
  }
}

void GridSweep::gradient(const GridModel& m, const GridWindowStats& q, GridModel& grad,
                         const WindowAdjoints* extra) {
  const GridLattice& g = lattice_;
  const int T = g.depth();
  ensure_workers();
  for (Worker& w : workers_) w.s.kernel_calls = 0;
  // d/dp of sum_x q log p is q / p (0 where q = 0, as in the objective).
  const CyclicRange &xs = region_.x[0], &ys = region_.y[0];
  const std::size_t size = grid_window_size(g.chi[0]);
  g_fine_.assign(static_cast<std::size_t>(region_.windows(0)) * size, 0.0);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < region_.windows(0); ++i) {
    const long x = xs.at(i % xs.length), y = ys.at(i / xs.length);
    const double* qw = q.window(x, y);
    const double* p = rho_.window(0, x, y);
    double* gw = g_window(g_fine_, 0, x, y);
    for (std::size_t k = 0; k < size; ++k) gw[k] = qw[k] > 0 ? qw[k] / p[k] : 0.0;
  }
  for (int l = 0; l < T; ++l) {
    add_extra(extra, l);
    reverse_layer(m, l, grad.layers[l]);
    std::swap(g_fine_, g_coarse_);
  }
  add_extra(extra, T);
  for (long i = 0; i < region_.windows(T); ++i) {
    const long x = region_.x[T].at(i % region_.x[T].length), y = region_.y[T].at(i / region_.x[T].length);
    top_window_adjoint(g, x, y, g_window(g_fine_, T, x, y), grad.top.data());
  }
  kernel_calls_ = 0;
  for (const Worker& w : workers_) kernel_calls_ += w.s.kernel_calls;
}

}  // namespace cmera::grid
