// Exact samples of the periodic 1D Ising chain. With bond variables b_i = s_i s_{i+1}
// the periodic chain is i.i.d. bonds (P(b = +1) = (1 + u) / 2, u = tanh K) conditioned
// on prod b_i = +1, which rejection sampling draws exactly (acceptance >= 1/2).
// u is solved so that the *periodic* chain's <s_i s_{i+1}> equals the requested t.
#pragma once
#include <cstdint>
#include <vector>

namespace cmera::ising1d {

// <s_i s_{i+r}> of the periodic chain of n sites with bond parameter u = tanh K.
double correlation(double u, long n, long r);
// u in [0, 1) with correlation(u, n, 1) == t (t in [0, 1)).
double bond_parameter_for(double t, long n);
// Sample k of the stream (seed): n values in {0, 1} (x = (s + 1) / 2).
void draw(double u, long n, std::uint64_t seed, std::uint64_t k, std::uint8_t* out);

}  // namespace cmera::ising1d
