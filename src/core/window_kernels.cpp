// Window descend/ascend through one layer (window_kernels.hpp). Every stage is a small
// dense matrix product, written as a strided triple loop (`product`, instantiated per
// inner size) because at chi <= 8 the matrices are at most 64 x 64 and the call overhead
// of a BLAS would dominate.
// Notation of docs/design.md §2: coarse window (y1, y2, y3) -> isometry outputs (a1, a2, a3, a4)
// -> fine children; T1..T3 are the isometry stages shared by both children.
#include "cmera/window_kernels.hpp"

#include <algorithm>
#include <cstdint>

#include "cmera/siteset.hpp"

namespace cmera::kernels {

namespace {

// Strided read-only matrix view: element (i, j) at p[i * row + j * col].
struct View {
  const double* p;
  long row;
  long col;
};

// C[m x n] += A[m x k] * B[k x n]. N > 0 fixes n at compile time, so the short inner
// loop (n = chi or chi^2, at most 64) is unrolled into whole vector instructions instead
// of a loop with a scalar remainder; kContiguous says B's rows are contiguous (B.col = 1).
template <long N, bool kContiguous>
inline void product_fixed(long m, long n, long k, View A, const View B, double* C) {
  const long nn = N > 0 ? N : n;
  const long bc = kContiguous ? 1 : B.col;
  for (long i = 0; i < m; ++i) {
    double* __restrict c = C + i * nn;
    for (long p = 0; p < k; ++p) {
      const double a = A.p[i * A.row + p * A.col];
      const double* __restrict b = B.p + p * B.row;
      for (long j = 0; j < nn; ++j) c[j] += a * b[j * bc];
    }
  }
}

template <bool kContiguous>
inline void product_dispatch(long m, long n, long k, View A, View B, double* C) {
  switch (n) {
    case 2: return product_fixed<2, kContiguous>(m, n, k, A, B, C);
    case 4: return product_fixed<4, kContiguous>(m, n, k, A, B, C);
    case 8: return product_fixed<8, kContiguous>(m, n, k, A, B, C);
    case 16: return product_fixed<16, kContiguous>(m, n, k, A, B, C);
    case 64: return product_fixed<64, kContiguous>(m, n, k, A, B, C);
    default: return product_fixed<0, kContiguous>(m, n, k, A, B, C);
  }
}

// C[m x n] (row-major, leading dimension n) = or += A[m x k] * B[k x n]; C never overlaps
// A or B.
inline void product(long m, long n, long k, View A, View B, double* C, bool accumulate) {
  work_count() += static_cast<std::uint64_t>(m * n * k);
  if (!accumulate) std::fill_n(C, m * n, 0.0);
  if (B.col == 1)
    product_dispatch<true>(m, n, k, A, B, C);
  else
    product_dispatch<false>(m, n, k, A, B, C);
}

View rm(const double* p, long cols) { return {p, cols, 1}; }     // row-major matrix
View tr(const double* p, long cols) { return {p, 1, cols}; }     // its transpose

// Isometry stages: T1 = wm_second^T rho, T2_a1 = W1^T T1_a1, T3 = T2 wm_first.
void isometry_stages(int d, int K, const ConeTables& tab, const double* rho, WindowScratch& s) {
  const long dd = static_cast<long>(d) * d;
  for (int y = 0; y < K; ++y)
    for (int a = 0; a < d; ++a) {
      double second = 0, first = 0;
      for (int b = 0; b < d; ++b) {
        second += tab.w0[(y * d + b) * d + a];
        first += tab.w2[(y * d + a) * d + b];
      }
      s.wm_second[y * d + a] = second;
      s.wm_first[y * d + a] = first;
    }
  const long KK = static_cast<long>(K) * K;
  product(d, KK, K, tr(s.wm_second.data(), d), rm(rho, KK), s.t1.data(), false);
  for (int a1 = 0; a1 < d; ++a1)
    product(dd, K, K, tr(tab.w1, dd), rm(s.t1.data() + a1 * KK, K), s.t2.data() + a1 * dd * K,
            false);
  product(d * dd, d, K, rm(s.t2.data(), K), rm(s.wm_first.data(), d), s.t3.data(), false);
}

// um_second[a1a2][x0] = sum_x U0[a1a2][x][x0]; um_first[a3a4][x2] = sum_x' U1[a3a4][x2][x'].
void disentangler_marginals(int d, const ConeTables& tab, WindowScratch& s) {
  const long dd = static_cast<long>(d) * d;
  for (long in = 0; in < dd; ++in)
    for (int x = 0; x < d; ++x) {
      double second = 0, first = 0;
      for (int o = 0; o < d; ++o) {
        second += tab.u0[in * dd + o * d + x];
        first += tab.u1[in * dd + x * d + o];
      }
      s.um_second[in * d + x] = second;
      s.um_first[in * d + x] = first;
    }
}

}  // namespace

void WindowScratch::reserve(int d, int K) {
  const std::size_t dd = static_cast<std::size_t>(d) * d, d4 = dd * dd, KK = K * K;
  for (auto* v : {&t1, &g1}) v->assign(d * KK, 0.0);
  for (auto* v : {&t2, &g2}) v->assign(d * dd * K, 0.0);
  for (auto* v : {&t3, &g3}) v->assign(d4, 0.0);
  for (auto* v : {&t4, &g4}) v->assign(dd * d, 0.0);
  for (auto* v : {&wm_second, &wm_first, &gwm_second, &gwm_first}) v->assign(K * d, 0.0);
  for (auto* v : {&um_second, &um_first, &gum}) v->assign(dd * d, 0.0);
}

ConeTables cone_tables(const LayerTables& t, long c) {
  return {t.w(c), t.w(c + 1), t.w(c + 2), t.u(c), t.u(c + 1)};
}

ConeGradients cone_gradients(LayerTables& g, long c) {
  return {g.w(c), g.w(c + 1), g.w(c + 2), g.u(c), g.u(c + 1)};
}

void descend_pair(int d, int K, const ConeTables& tab, const double* rho, double* child_odd,
                  double* child_even, WindowScratch& s) {
  const long dd = static_cast<long>(d) * d;
  isometry_stages(d, K, tab, rho, s);
  disentangler_marginals(d, tab, s);
  if (child_even) {  // x_s from U_c's second output, (x_s+1, x_s+2) from U_c+1
    product(d, dd, dd, tr(s.um_second.data(), d), rm(s.t3.data(), dd), s.t4.data(), false);
    product(d, dd, dd, rm(s.t4.data(), dd), rm(tab.u1, dd), child_even, false);
  }
  if (child_odd) {  // (x_s, x_s+1) from U_c, x_s+2 from U_c+1's first output
    product(dd, d, dd, rm(s.t3.data(), dd), rm(s.um_first.data(), d), s.t4.data(), false);
    product(dd, d, dd, tr(tab.u0, dd), rm(s.t4.data(), d), child_odd, false);
  }
}

void ascend_pair(int d, int K, const ConeTables& tab, const double* rho, const double* g_odd,
                 const double* g_even, double* g_rho, const ConeGradients& grad,
                 WindowScratch& s) {
  const long dd = static_cast<long>(d) * d, KK = static_cast<long>(K) * K;
  isometry_stages(d, K, tab, rho, s);
  disentangler_marginals(d, tab, s);
  std::fill(s.g3.begin(), s.g3.end(), 0.0);
  if (g_even) {
    product(d, dd, dd, tr(s.um_second.data(), d), rm(s.t3.data(), dd), s.t4.data(), false);
    product(d, dd, dd, rm(g_even, dd), tr(tab.u1, dd), s.g4.data(), false);   // dT4
    product(dd, dd, d, tr(s.t4.data(), dd), rm(g_even, dd), grad.u1, true);    // dU1
    product(dd, dd, d, rm(s.um_second.data(), d), rm(s.g4.data(), dd), s.g3.data(), true);
    product(dd, d, dd, rm(s.t3.data(), dd), tr(s.g4.data(), dd), s.gum.data(), false);
    for (long in = 0; in < dd; ++in)  // d um_second -> every U0[in][x][x0]
      for (int x = 0; x < d; ++x)
        for (int x0 = 0; x0 < d; ++x0) grad.u0[in * dd + x * d + x0] += s.gum[in * d + x0];
  }
  if (g_odd) {
    product(dd, d, dd, rm(s.t3.data(), dd), rm(s.um_first.data(), d), s.t4.data(), false);
    product(dd, dd, d, rm(s.t4.data(), d), tr(g_odd, d), grad.u0, true);       // dU0
    product(dd, d, dd, rm(tab.u0, dd), rm(g_odd, d), s.g4.data(), false);       // dT4'
    product(dd, dd, d, rm(s.g4.data(), d), tr(s.um_first.data(), d), s.g3.data(), true);
    product(dd, d, dd, tr(s.t3.data(), dd), rm(s.g4.data(), d), s.gum.data(), false);
    for (long in = 0; in < dd; ++in)  // d um_first -> every U1[in][x2][x']
      for (int x2 = 0; x2 < d; ++x2)
        for (int o = 0; o < d; ++o) grad.u1[in * dd + x2 * d + o] += s.gum[in * d + x2];
  }
  // Back through the isometry stages.
  product(d * dd, K, d, rm(s.g3.data(), d), tr(s.wm_first.data(), d), s.g2.data(), false);
  product(K, d, d * dd, tr(s.t2.data(), K), rm(s.g3.data(), d), s.gwm_first.data(), false);
  for (int y = 0; y < K; ++y)
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) grad.w2[(y * d + a) * d + b] += s.gwm_first[y * d + a];
  for (int a1 = 0; a1 < d; ++a1) {
    const double* t1 = s.t1.data() + a1 * KK;
    const double* g2 = s.g2.data() + a1 * dd * K;
    product(K, K, dd, rm(tab.w1, dd), rm(g2, K), s.g1.data() + a1 * KK, false);
    product(K, dd, K, rm(t1, K), tr(g2, K), grad.w1, true);
  }
  product(K, KK, d, rm(s.wm_second.data(), d), rm(s.g1.data(), KK), g_rho, true);
  product(K, d, KK, rm(rho, KK), tr(s.g1.data(), KK), s.gwm_second.data(), false);
  for (int y = 0; y < K; ++y)
    for (int b = 0; b < d; ++b)
      for (int a = 0; a < d; ++a) grad.w0[(y * d + b) * d + a] += s.gwm_second[y * d + a];
}

// The top windows are marginals of the top table on three of its sites (table_marginal:
// one pass, no division per entry).
void top_window(int K, long n, const double* top, long c, double* rho) {
  table_marginal(K, n, {c % n, (c + 1) % n, (c + 2) % n}, top, rho);
}

void top_window_adjoint(int K, long n, long c, const double* g_rho, double* g_top) {
  std::size_t size = 1;
  for (long i = 0; i < n; ++i) size *= static_cast<std::size_t>(K);
  table_marginal_adjoint(K, n, {c % n, (c + 1) % n, (c + 2) % n}, g_rho, g_top, 0, size);
}

}  // namespace cmera::kernels
