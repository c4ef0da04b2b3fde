// The model's exact two-point function C(r) = (1/N) sum_i <s_i s_i+r>, r = 1..R
// (docs/design.md §3), for every distance, without sampling.
//
// Trade-off: one general cone per pair {i, i+r} costs a dense descend from the top per
// pair, N R of them (N = 4096, chi = 4, R = N/2: unfinished after 11 minutes). Instead, for each pair take the layer m where
// the two cones are last disjoint: below m each site only needs phi_i(a) =
// E[s_i | its cone at m = a] (a function pulled up through the window kernels, once per
// site and layer), and <s_i s_j> = phi_i^T rho_AB phi_j with rho_AB the joint of the two
// cones A, B at m. Many pairs share the same (A, B) - every site under A with every site
// under B - so each joint is computed once per cone pair (O(N) cone pairs in all), and
// a pair costs one chi^3 dot product. The per-pair reference stays in the tests.
#pragma once
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/model.hpp"

namespace cmera {

// Model's <s_i s_{i+r}> averaged over i, r = 1..max_distance (< N). Collective: each
// rank takes the pairs whose left site it owns; deterministic for any thread count.
std::vector<double> model_correlation(const Comm& comm, const Model& model, long max_distance);

}  // namespace cmera
