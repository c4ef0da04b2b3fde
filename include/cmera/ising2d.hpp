// Equilibrium samples of the 2D ferromagnetic Ising model (J = 1, periodic L x L torus,
// x = (s + 1) / 2 in {0, 1}) from Swendsen-Wang cluster updates, plus the exact results
// they are checked against (Onsager, Kaufman's finite torus, Yang).
//
// Trade-off: a fixed number C of independent Markov chains, not one chain per rank.
// Every chain pays its own thermalization, but chain c draws only from
// stream_rng(seed, kGenerate, c) and owns a fixed block of the output, so the file is
// bit-identical for any rank or thread count.
//
// Dataset order (chain-major): with P = BlockPartition{samples, chains}, rows
// [P.begin(c), P.end(c)) hold chain c's samples in time order; the j-th of them is taken
// after `thermalization + j * sweeps_between` sweeps from a uniformly random start. A
// rank that runs a contiguous block of chains therefore owns a contiguous block of rows.
// Each sample is L * L bytes, row-major: x[y * L + x_col].
//
// Defaults, from SW runs at beta_c (4 chains x 8000 sweeps, L = 128): the integrated
// autocorrelation times are 5.9 sweeps for the energy and 4.5 for |m| (4.2 and 3.5 at
// L = 64), and the autocorrelations at lag 10 are 0.19 and 0.13. Samples 10 sweeps apart
// are thus close to independent (the variance of a mean over them is ~1.5x and ~1.3x the
// independent value at the worst, critical, point; SW decorrelates within a sweep or two
// away from it) at a cost of 10 sweeps each; --sweeps-between 20 brings the lag
// correlation below 0.05. From a uniformly random start the mean energy is within its
// 0.002 statistical error of Kaufman's exact value after ~30 sweeps at L = 64 and 128,
// with an exponential relaxation time of ~6 sweeps, so the default 200 thermalization
// sweeps (> 30 relaxation times) leave no detectable bias; SW relaxation times grow only
// slowly with L (~L^0.25), so 200 also covers lattices far beyond 128.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/provenance.hpp"

namespace cmera::ising2d {

// K_c = ln(1 + sqrt 2) / 2, the critical coupling of the square lattice.
inline const double kBetaCritical = 0.5 * std::log(1.0 + std::sqrt(2.0));

inline constexpr long kDefaultThermalization = 200;
inline constexpr long kDefaultSweepsBetween = 10;
inline constexpr long kDefaultMaxChains = 64;

struct Params {
  long size = 0;  // L
  double beta = 0;
  long samples = 0;  // S
  long chains = 0;   // C; 0 = min(S, kDefaultMaxChains)
  long thermalization = kDefaultThermalization;
  long sweeps_between = kDefaultSweepsBetween;
  std::uint64_t seed = 1;
};

// "critical" (beta_c) or a positive finite number; cmera::Error otherwise.
double parse_beta(const std::string& text);
// Fills in the default chain count and checks every field (cmera::Error naming the option).
Params resolved(Params p);
// Which rows of the dataset each chain fills (see the dataset order above).
inline BlockPartition rows_of_chains(const Params& p) {
  return BlockPartition{p.samples, static_cast<int>(p.chains)};
}
// Runs chains [first_chain, last_chain) of resolved parameters p and writes their samples
// to out: rows [rows_of_chains(p).begin(first_chain), ...begin(last_chain)), L * L bytes each.
void run_chains(const Params& p, long first_chain, long last_chain, std::uint8_t* out);

// Observables of one configuration: energy per site -(1/N) sum_<ij> s_i s_j (2N bonds)
// and magnetization (1/N) sum_i s_i.
double energy_per_site(const std::uint8_t* x, long L);
double magnetization(const std::uint8_t* x, long L);

// Exact references. Onsager: infinite lattice. Kaufman: the finite periodic L x L torus.
// Yang: spontaneous magnetization of the infinite lattice (0 for beta <= beta_c).
double onsager_energy_per_site(double beta);
double kaufman_energy_per_site(double beta, long L);
double spontaneous_magnetization(double beta);

// Collective: runs this rank's block of chains (BlockPartition of chains over ranks) and
// writes `path`: /configs uint8 [S, L, L], or with as_rows each configuration's L rows as
// L consecutive samples of a [S * L, L] dataset (the format `cmera train` reads; rows of
// one configuration are correlated neighbours, not independent samples).
void generate(const Comm& comm, const Params& p, const std::string& path, bool as_rows,
              const std::string& command);

}  // namespace cmera::ising2d
