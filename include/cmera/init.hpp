// Initial tables. Random starts stall far from the optimum (docs/design.md §4), so the default
// is a noisy *decimation* start: isometries copy the coarse value into both outputs
// (encoding it in base chi_l when the coarse alphabet is larger), disentanglers pass
// their second input through and draw the first output freely. That is the exact
// structure of the 1D Ising chain's MERA, and a neutral start otherwise.
#pragma once
#include <cstdint>
#include <random>
#include <string>

#include "cmera/model.hpp"

namespace cmera {

enum class InitKind { kDecimation, kRandom, kUniform };
InitKind parse_init_kind(const std::string& name);  // throws cmera::Error

// row[0..n) drawn uniformly from the probability simplex (also the grid model's top).
void random_row(double* row, std::size_t n, std::mt19937_64& rng);

// Starts one layer's tables (allocated, any count) in place; uniform leaves them as they
// are. Shared by chains and by every line of a grid (grid.hpp).
void initialize_layer(LayerTables& t, InitKind kind, double noise, std::mt19937_64& rng);

// noise in [0, 1]: each conditional is (1 - noise) * structured + noise * random.
Model initialize_model(const Geometry& g, bool tied, InitKind kind, double noise,
                       std::uint64_t seed);

}  // namespace cmera
