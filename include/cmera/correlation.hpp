// The model's exact two-point function C(r) = (1/N) sum_i <s_i s_i+r>, r = 1..R
// (docs/design.md §3), for every distance, without sampling.
//
// Trade-off: one general cone per pair {i, i+r} costs a dense descend from the top per
// pair, N R of them. Instead, for each pair take the layer m where the two cones are last
// disjoint: below m each site only needs phi_i(a) = E[s_i | its cone at m = a] (pulled up
// through the window kernels), and <s_i s_j> = phi_i^T rho_AB phi_j with rho_AB the joint
// of the two cones A, B at m.
//
// Untied models (model_correlation_by_position): every pair (i in A, j in B) shares
// rho_AB, so one joint per cone pair (O(N) joints, each a cone from the top) and one
// dot product per pair: O(N R chi^3) per job, split over ranks by left site. That is
// inherent to per-position tables; it is also the reference path for tied models.
//
// Tied models (model_correlation): chains depend on a site only through its residue
// p = i mod 2^m, so there are 2^(m+1) pull-ups per layer, not N; pairs fall into O(1)
// classes per layer (cone types, block offset, parity) whose joints are summed over
// translations by one-layer descents (no cone from the top per pair or per cone pair);
// the sum over residues at a fixed lag is a cross-correlation, done by FFT for large
// residue sets. Cost O(N log N chi^3) per job; exact up to rounding (the FFT adds
// absolute errors of order 1e-16 times the scale of C, at every r).
#pragma once
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/model.hpp"

namespace cmera {

// How the tied path sums over residues at each lag: by estimated cost (kAuto), or all by
// FFT / all by dot products, so that tests reach both branches on small lattices.
enum class LagSums { kAuto, kFft, kDirect };

// Model's <s_i s_{i+r}> averaged over i, r = 1..max_distance (< N). Collective; tied
// models take the translation-summed path, untied ones the per-position path. The
// result is deterministic for any thread count and agrees across rank counts to
// rounding (docs/design.md §5).
std::vector<double> model_correlation(const Comm& comm, const Model& model, long max_distance,
                                      LagSums how = LagSums::kAuto);

// The per-position path for any model (each rank takes the pairs whose left site it
// owns). Tests hold the tied path to it.
std::vector<double> model_correlation_by_position(const Comm& comm, const Model& model,
                                                  long max_distance);

}  // namespace cmera
