// Small map times long joint, and its two adjoints (line_product.hpp), with their sums in
// registers, compiled for AVX2 + FMA and for the baseline (the loader picks one per
// machine). When np is a multiple of 4 (chi = 2 and 4: every line of a binary grid), a
// column of out or g_out is whole vectors, and line_apply and line_apply_adjoint_map are
// outer products: map or g_out columns times broadcast joint entries, in tiles of at most
// 8 accumulators. Otherwise (chi = 3) they run along blocks of spectators, J's columns
// being contiguous there. line_apply_adjoint_joint always runs along spectators, on blocks
// of g_out transposed. Remainders (spectators or rows that do not fill a block) take plain
// loops; every sum has one fixed order.
#include "cmera/line_product.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cmera/multi_target.hpp"
#include "cmera/siteset.hpp"

namespace cmera {

namespace {

// Four doubles as one value (GCC/Clang vector extension): AVX2 registers in the x86-64-v3
// clone, pairs of SSE2 registers in the baseline. Written out rather than left to the
// auto-vectorizer, which keeps the order of each sum (it must) by shuffling lanes.
using Vec = double __attribute__((vector_size(32)));
constexpr long kLanes = 4;

// Inlined into each clone, so a Vec never crosses a call (whose ABI would differ between
// the clones: GCC's -Wpsabi note, which CMakeLists.txt silences for this file). By value:
// a reference to an accumulator costs the forward half its speed (measured).
[[gnu::always_inline]] inline Vec load(const double* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

[[gnu::always_inline]] inline void store(double* p, Vec v) { std::memcpy(p, &v, sizeof v); }

[[gnu::always_inline]] inline double lane_sum(Vec v) { return (v[0] + v[1]) + (v[2] + v[3]); }

constexpr long kSpectators = 2 * kLanes;  // a block: two vectors per map row
constexpr long kRows = 4;                 // map rows per pass: 8 vector accumulators
constexpr long kDotBlock = 32;            // spectators per partial dot (line_apply_adjoint_map)

// sum_t a[t] b[t] over one dot block, in the lanes' order.
[[gnu::always_inline]] inline double dot_block(const double* a, const double* b) {
  Vec s = {};
  for (long t = 0; t < kDotBlock; t += kLanes) s += load(a + t) * load(b + t);
  return lane_sum(s);
}

// Room for a block of g_out transposed (np rows of n spectators), one per thread.
double* block_scratch(long np, long n) {
  thread_local std::vector<double> block;
  block.resize(static_cast<std::size_t>(np * n));
  return block.data();
}

// The transpose of g_out's spectators k0 .. k0 + n - 1 (all np rows): block[x * n + t].
void transpose_block(long np, long k0, long n, const double* g_out, double* block) {
  for (long t = 0; t < n; ++t)
    for (long x = 0; x < np; ++x) block[x * n + t] = g_out[x + np * (k0 + t)];
}

// g_C[x, q] += sum_k g_out[x + np k] J[k + K q] for the rows x0 .. x0 + 4 NV - 1,
// columns q0 .. q0 + NQ - 1 and spectators k0 .. k1 - 1: per spectator, the g_out
// column's vectors times broadcast joint entries (outer products), the sums in registers.
template <int NV, int NQ>
[[gnu::always_inline]] inline void map_adjoint_tile(long np, long K, long x0, long q0, long k0,
                                                    long k1, const double* g_out,
                                                    const double* J, double* g_C) {
  Vec acc[NV][NQ] = {};
  for (long k = k0; k < k1; ++k) {
    Vec g[NV];
    for (int v = 0; v < NV; ++v) g[v] = load(g_out + np * k + x0 + kLanes * v);
    for (int b = 0; b < NQ; ++b) {
      const double j = J[k + K * (q0 + b)];
      for (int v = 0; v < NV; ++v) acc[v][b] += g[v] * j;
    }
  }
  for (int b = 0; b < NQ; ++b)
    for (int v = 0; v < NV; ++v) {
      double* to = g_C + np * (q0 + b) + x0 + kLanes * v;
      store(to, load(to) + acc[v][b]);
    }
}

// Every column q for the rows x0 .. x0 + 4 NV - 1 and spectators k0 .. k1 - 1, NQ
// columns at a time (at most 13 of the 16 AVX2 registers live).
template <int NV>
[[gnu::always_inline]] inline void map_adjoint_rows(long np, long nq, long K, long x0, long k0,
                                                    long k1, const double* g_out,
                                                    const double* J, double* g_C) {
  constexpr int NQ = NV >= 3 ? 2 : 4;
  long q0 = 0;
  for (; q0 + NQ <= nq; q0 += NQ) map_adjoint_tile<NV, NQ>(np, K, x0, q0, k0, k1, g_out, J, g_C);
  for (; q0 < nq; ++q0) map_adjoint_tile<NV, 1>(np, K, x0, q0, k0, k1, g_out, J, g_C);
}

// out's columns k0 .. k0 + KC - 1, rows x0 .. x0 + 4 NV - 1: per consumed state q, the
// map column's vectors times broadcast joint entries, summed over q in order.
template <int NV, int KC>
[[gnu::always_inline]] inline void apply_tile(long np, long nq, long K, long x0, long k0,
                                              const double* C, const double* J, double* out) {
  Vec acc[NV][KC] = {};
  for (long q = 0; q < nq; ++q) {
    Vec c[NV];
    for (int v = 0; v < NV; ++v) c[v] = load(C + np * q + x0 + kLanes * v);
    for (int b = 0; b < KC; ++b) {
      const double j = J[k0 + b + K * q];
      for (int v = 0; v < NV; ++v) acc[v][b] += c[v] * j;
    }
  }
  for (int b = 0; b < KC; ++b)
    for (int v = 0; v < NV; ++v) store(out + np * (k0 + b) + x0 + kLanes * v, acc[v][b]);
}

// Every row block of out's columns k0 .. k0 + KC - 1: the joint entries they read stay in
// cache from one row block to the next.
template <int KC>
[[gnu::always_inline]] inline void apply_columns(long np, long nq, long K, long k0, const double* C,
                                                 const double* J, double* out) {
  for (long x0 = 0; x0 < np; x0 += 4 * kLanes) {
    switch (std::min(4L, (np - x0) / kLanes)) {
      case 1: apply_tile<1, KC>(np, nq, K, x0, k0, C, J, out); break;
      case 2: apply_tile<2, KC>(np, nq, K, x0, k0, C, J, out); break;
      case 3: apply_tile<3, KC>(np, nq, K, x0, k0, C, J, out); break;
      default: apply_tile<4, KC>(np, nq, K, x0, k0, C, J, out);
    }
  }
}

}  // namespace

CMERA_MULTI_TARGET
void line_apply(long np, long nq, long K, const double* C, const double* J, double* out) {
  work_count() += static_cast<std::uint64_t>(np * nq * K);
  if (np % kLanes == 0) {  // out's columns are whole vectors: outer products
    // 8 accumulators: 2 columns of up to 4 row vectors, or 4 columns of up to 2.
    const long columns = np > 2 * kLanes ? 2 : 4;
    long k0 = 0;
    for (; k0 + columns <= K; k0 += columns)
      if (columns == 2)
        apply_columns<2>(np, nq, K, k0, C, J, out);
      else
        apply_columns<4>(np, nq, K, k0, C, J, out);
    for (; k0 < K; ++k0) apply_columns<1>(np, nq, K, k0, C, J, out);
    return;
  }
  // Else blocks of spectators along J's columns, written to out transposed.
  long k0 = 0;
  for (; k0 + kSpectators <= K; k0 += kSpectators) {
    long x0 = 0;
    for (; x0 + kRows <= np; x0 += kRows) {
      Vec acc[kRows][2] = {};
      for (long q = 0; q < nq; ++q) {
        const double *j = J + K * q + k0, *c = C + np * q + x0;
        const Vec j0 = load(j), j1 = load(j + kLanes);
        for (long r = 0; r < kRows; ++r) {
          acc[r][0] += c[r] * j0;
          acc[r][1] += c[r] * j1;
        }
      }
      for (long t = 0; t < kSpectators; ++t)
        for (long r = 0; r < kRows; ++r)
          out[x0 + r + np * (k0 + t)] = acc[r][t / kLanes][t % kLanes];
    }
    for (; x0 < np; ++x0) {
      Vec acc[2] = {};
      for (long q = 0; q < nq; ++q) {
        const double *j = J + K * q + k0, c = C[x0 + np * q];
        acc[0] += c * load(j);
        acc[1] += c * load(j + kLanes);
      }
      for (long t = 0; t < kSpectators; ++t) out[x0 + np * (k0 + t)] = acc[t / kLanes][t % kLanes];
    }
  }
  for (long k = k0; k < K; ++k)
    for (long x = 0; x < np; ++x) {
      double s = 0;
      for (long q = 0; q < nq; ++q) s += C[x + np * q] * J[k + K * q];
      out[x + np * k] = s;
    }
}

CMERA_MULTI_TARGET
void line_apply_adjoint_joint(long np, long nq, long K, const double* C, const double* g_out,
                              double* g_J, bool accumulate) {
  work_count() += static_cast<std::uint64_t>(np * nq * K);
  // A block of g_out transposed (spectators fastest), so the sums over x read it in order.
  double* gt = block_scratch(np, kSpectators);
  long k0 = 0;
  for (; k0 + kSpectators <= K; k0 += kSpectators) {
    transpose_block(np, k0, kSpectators, g_out, gt);
    long q0 = 0;
    for (; q0 + kRows <= nq; q0 += kRows) {
      Vec acc[kRows][2] = {};
      for (long x = 0; x < np; ++x) {
        const Vec g0 = load(gt + x * kSpectators), g1 = load(gt + x * kSpectators + kLanes);
        for (long r = 0; r < kRows; ++r) {
          const double c = C[x + np * (q0 + r)];
          acc[r][0] += c * g0;
          acc[r][1] += c * g1;
        }
      }
      for (long r = 0; r < kRows; ++r) {
        double* to = g_J + K * (q0 + r) + k0;
        if (accumulate) {
          acc[r][0] = load(to) + acc[r][0];
          acc[r][1] = load(to + kLanes) + acc[r][1];
        }
        store(to, acc[r][0]);
        store(to + kLanes, acc[r][1]);
      }
    }
    for (; q0 < nq; ++q0) {
      Vec acc[2] = {};
      for (long x = 0; x < np; ++x) {
        const double c = C[x + np * q0];
        acc[0] += c * load(gt + x * kSpectators);
        acc[1] += c * load(gt + x * kSpectators + kLanes);
      }
      double* to = g_J + K * q0 + k0;
      if (accumulate) {
        acc[0] = load(to) + acc[0];
        acc[1] = load(to + kLanes) + acc[1];
      }
      store(to, acc[0]);
      store(to + kLanes, acc[1]);
    }
  }
  for (long k = k0; k < K; ++k)
    for (long q = 0; q < nq; ++q) {
      double s = 0;
      for (long x = 0; x < np; ++x) s += g_out[x + np * k] * C[x + np * q];
      g_J[k + K * q] = (accumulate ? g_J[k + K * q] : 0.0) + s;
    }
}

CMERA_MULTI_TARGET
void line_apply_adjoint_map(long np, long nq, long K, const double* g_out, const double* J,
                            double* g_C, bool accumulate) {
  if (!accumulate) std::fill_n(g_C, np * nq, 0.0);
  work_count() += static_cast<std::uint64_t>(np * nq * K);
  if (np % kLanes == 0) {  // g_out's columns are whole vectors: outer products
    // Blocks of spectators whose g_out columns and joint entries stay in cache while
    // every tile of g_C passes over them.
    constexpr long kBlock = 64;
    for (long k0 = 0; k0 < K; k0 += kBlock) {
      const long k1 = std::min(K, k0 + kBlock);
      for (long x0 = 0; x0 < np; x0 += 4 * kLanes) {
        switch (std::min(4L, (np - x0) / kLanes)) {
          case 1: map_adjoint_rows<1>(np, nq, K, x0, k0, k1, g_out, J, g_C); break;
          case 2: map_adjoint_rows<2>(np, nq, K, x0, k0, k1, g_out, J, g_C); break;
          case 3: map_adjoint_rows<3>(np, nq, K, x0, k0, k1, g_out, J, g_C); break;
          default: map_adjoint_rows<4>(np, nq, K, x0, k0, k1, g_out, J, g_C);
        }
      }
    }
    return;
  }
  // Else dot products along the spectators, on blocks of g_out transposed.
  double* gt = block_scratch(np, kDotBlock);
  long k0 = 0;
  for (; k0 + kDotBlock <= K; k0 += kDotBlock) {
    transpose_block(np, k0, kDotBlock, g_out, gt);
    long x0 = 0;
    // 2 x kRows dot products at once: each load feeds several FMAs, and the independent
    // chains hide their latency.
    for (; x0 + 2 <= np; x0 += 2) {
      const double *g0 = gt + x0 * kDotBlock, *g1 = g0 + kDotBlock;
      long q0 = 0;
      for (; q0 + kRows <= nq; q0 += kRows) {
        Vec s[2][kRows] = {};
        for (long t = 0; t < kDotBlock; t += kLanes) {
          const Vec a = load(g0 + t), b = load(g1 + t);
          for (long r = 0; r < kRows; ++r) {
            const Vec j = load(J + K * (q0 + r) + k0 + t);
            s[0][r] += a * j;
            s[1][r] += b * j;
          }
        }
        for (long r = 0; r < kRows; ++r) {
          g_C[x0 + np * (q0 + r)] += lane_sum(s[0][r]);
          g_C[x0 + 1 + np * (q0 + r)] += lane_sum(s[1][r]);
        }
      }
      for (; q0 < nq; ++q0)
        for (long x = x0; x < x0 + 2; ++x)
          g_C[x + np * q0] += dot_block(gt + x * kDotBlock, J + K * q0 + k0);
    }
    for (; x0 < np; ++x0)
      for (long q = 0; q < nq; ++q)
        g_C[x0 + np * q] += dot_block(gt + x0 * kDotBlock, J + K * q + k0);
  }
  for (long q = 0; q < nq; ++q)
    for (long x = 0; x < np; ++x) {
      double s = 0;
      for (long k = k0; k < K; ++k) s += g_out[x + np * k] * J[k + K * q];
      g_C[x + np * q] += s;
    }
}

}  // namespace cmera
