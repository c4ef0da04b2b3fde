// The products a cone step is made of: a small map C [np x nq] (a grid line's conditional
// or a window's line map, docs/design-grid.md §3, §7; a chain cone's isometry or
// disentangler, ConePlan in siteset.hpp) applied to a long joint J
// [K x nq] (K spectator states, the consumed states most significant), giving
// out [np x K] (the produced states least significant), and the two products of its
// adjoint. All matrices are column-major with no padding.
//
// Trade-off: np and nq are 2 to 64 while K runs to 2^15 and beyond, the shape general
// matrix-multiply code serves worst (Eigen copies J into packed panels and fills a 4 x 4
// register tile from a 2- or 4-row map). These kernels read J where it lies, keep their
// sums in registers, and are compiled twice, for x86-64-v3 (AVX2, FMA) and for the
// baseline, the loader choosing one at run time: a portable build gets the wide registers
// where the machine has them. Each sum is taken in one fixed order, so results do not
// depend on the thread count; they differ from a general product's only in rounding. The
// plain loops they are tested against are in tests/test_line_product.cpp; bench_grid's
// BM_LineProduct times them beside Eigen's product.
#pragma once

namespace cmera {

// out[x + np k] = sum_q C[x + np q] J[k + K q]; out is overwritten.
void line_apply(long np, long nq, long K, const double* C, const double* J, double* out);

// g_J[k + K q] (+)= sum_x g_out[x + np k] C[x + np q]: the adjoint of line_apply in J,
// added to g_J when `accumulate`, else written over it.
void line_apply_adjoint_joint(long np, long nq, long K, const double* C, const double* g_out,
                              double* g_J, bool accumulate);

// g_C[x + np q] (+)= sum_k g_out[x + np k] J[k + K q]: the adjoint of line_apply in C.
void line_apply_adjoint_map(long np, long nq, long K, const double* g_out, const double* J,
                            double* g_C, bool accumulate);

}  // namespace cmera
