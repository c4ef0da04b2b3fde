// Forward/reverse window sweep over one rank's cones (window_sweep.hpp).
// Thread safety of the reverse pass without atomics: a coarse window c adds into the
// tables c, c+1, c+2 of its layer. Untied tables: positions are coloured k mod 3 and
// the colours run one after another (tables of one colour are disjoint); the <3
// leftover positions of a full ring run last, serially. Tied tables: fixed-size chunks
// accumulate into private buffers summed in chunk order. Either way the summation order
// is fixed by the lattice, not by the number of threads, so results are bitwise
// reproducible at any OMP_NUM_THREADS.
#include "cmera/window_sweep.hpp"

#include <omp.h>

#include <cmath>

namespace cmera {

namespace {
constexpr long kTiedChunk = 64;

std::vector<kernels::WindowScratch> make_scratch(int d, int K) {
  std::vector<kernels::WindowScratch> s(static_cast<std::size_t>(omp_get_max_threads()));
  for (auto& x : s) x.reserve(d, K);
  return s;
}
}  // namespace

WindowSweep::WindowSweep(const Geometry& g, long first_window, long count) : geometry_(g) {
  const int T = g.depth();
  windows_.resize(T + 1);
  windows_[0] = CyclicRange::make(first_window, count, g.sites);
  for (int l = 0; l < T; ++l) windows_[l + 1] = coarse_windows(windows_[l], g.sites_at(l + 1));
  rho_.resize(T + 1);
  grho_.resize(T + 1);
  for (int l = 0; l <= T; ++l) {
    rho_[l].assign(windows_[l].length * window_size(l), 0.0);
    grho_[l].assign(rho_[l].size(), 0.0);
  }
}

std::size_t WindowSweep::window_size(int layer) const {
  const std::size_t c = static_cast<std::size_t>(geometry_.chi[layer]);
  return c * c * c;
}

CyclicRange WindowSweep::tables_touched(int layer) const {
  const CyclicRange& coarse = windows_[layer + 1];
  if (coarse.length == 0) return coarse;
  return CyclicRange::make(coarse.start, coarse.length + 2, coarse.period);
}

void WindowSweep::forward(const Model& model) {
  const int T = geometry_.depth();
  const int K = geometry_.chi[T];
  for (long k = 0; k < windows_[T].length; ++k)
    kernels::top_window(K, geometry_.top_sites(), model.tables.top.data(), windows_[T].at(k),
                        rho_[T].data() + k * window_size(T));
  for (int l = T - 1; l >= 0; --l) {
    const LayerTables& t = model.tables.layers[l];
    const CyclicRange& fine = windows_[l];
    const CyclicRange& coarse = windows_[l + 1];
    const long n = geometry_.sites_at(l);
    auto scratch = make_scratch(t.d, t.K);
#pragma omp parallel for schedule(static)
    for (long k = 0; k < coarse.length; ++k) {
      const long c = coarse.at(k);
      const long odd = (2 * c + 1) % n, even = (2 * c + 2) % n;
      double* child_odd = fine.contains(odd) ? rho_[l].data() + fine.offset(odd) * window_size(l) : nullptr;
      double* child_even = fine.contains(even) ? rho_[l].data() + fine.offset(even) * window_size(l) : nullptr;
      if (!child_odd && !child_even) continue;
      kernels::descend_pair(t.d, t.K, kernels::cone_tables(t, c),
                            rho_[l + 1].data() + k * window_size(l + 1), child_odd, child_even,
                            scratch[omp_get_thread_num()]);
    }
  }
}

double WindowSweep::log_likelihood(const WindowStats& stats) const {
  const std::size_t w = window_size(0);
  double total = 0;
  for (long k = 0; k < windows_[0].length; ++k) {
    const double* q = stats.window(k);
    const double* p = bottom(k);
    double s = 0;
    for (std::size_t x = 0; x < w; ++x)
      if (q[x] > 0) s += q[x] * std::log(p[x]);
    total += s;
  }
  return total;
}

void WindowSweep::gradient(const Model& model, const WindowStats& stats, double scale,
                           Tables& grad) {
  const int T = geometry_.depth();
  const std::size_t w0 = window_size(0);
  for (long k = 0; k < windows_[0].length; ++k) {
    const double* q = stats.window(k);
    const double* p = bottom(k);
    double* g = grho_[0].data() + k * w0;
    for (std::size_t x = 0; x < w0; ++x) g[x] = q[x] > 0 ? scale * q[x] / p[x] : 0.0;
  }
  for (int l = 0; l < T; ++l) {
    const LayerTables& t = model.tables.layers[l];
    LayerTables& gt = grad.layers[l];
    const CyclicRange& fine = windows_[l];
    const CyclicRange& coarse = windows_[l + 1];
    const long n = geometry_.sites_at(l);
    const std::size_t wl = window_size(l), wc = window_size(l + 1);
    std::fill(grho_[l + 1].begin(), grho_[l + 1].end(), 0.0);
    auto scratch = make_scratch(t.d, t.K);
    // One coarse window's reverse step, adding table gradients into `into`.
    auto step = [&](long k, const kernels::ConeGradients& into) {
      const long c = coarse.at(k);
      const long odd = (2 * c + 1) % n, even = (2 * c + 2) % n;
      const double* g_odd = fine.contains(odd) ? grho_[l].data() + fine.offset(odd) * wl : nullptr;
      const double* g_even = fine.contains(even) ? grho_[l].data() + fine.offset(even) * wl : nullptr;
      if (!g_odd && !g_even) return;
      kernels::ascend_pair(t.d, t.K, kernels::cone_tables(t, c), rho_[l + 1].data() + k * wc,
                           g_odd, g_even, grho_[l + 1].data() + k * wc, into,
                           scratch[omp_get_thread_num()]);
    };
    if (!t.tied) {
      const long colored = coarse.full() ? coarse.length - coarse.length % 3 : coarse.length;
      for (long colour = 0; colour < 3; ++colour) {
#pragma omp parallel for schedule(static)
        for (long k = colour; k < colored; k += 3) step(k, kernels::cone_gradients(gt, coarse.at(k)));
      }
      for (long k = colored; k < coarse.length; ++k) step(k, kernels::cone_gradients(gt, coarse.at(k)));
    } else {
      const long chunks = (coarse.length + kTiedChunk - 1) / kTiedChunk;
      const std::size_t ws = gt.w_size(), us = gt.u_size();
      std::vector<double> partial(static_cast<std::size_t>(chunks) * (ws + us), 0.0);
#pragma omp parallel for schedule(static)
      for (long ch = 0; ch < chunks; ++ch) {
        double* pw = partial.data() + ch * (ws + us);
        double* pu = pw + ws;
        const kernels::ConeGradients into{pw, pw, pw, pu, pu};
        for (long k = ch * kTiedChunk; k < std::min(coarse.length, (ch + 1) * kTiedChunk); ++k)
          step(k, into);
      }
      for (long ch = 0; ch < chunks; ++ch) {
        const double* pw = partial.data() + ch * (ws + us);
        for (std::size_t i = 0; i < ws; ++i) gt.W[i] += pw[i];
        for (std::size_t i = 0; i < us; ++i) gt.U[i] += pw[ws + i];
      }
    }
  }
  const int K = geometry_.chi[T];
  for (long k = 0; k < windows_[T].length; ++k)
    kernels::top_window_adjoint(K, geometry_.top_sites(), windows_[T].at(k),
                                grho_[T].data() + k * window_size(T), grad.top.data());
}

}  // namespace cmera
