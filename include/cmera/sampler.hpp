// Exact ancestral sampling of a MERA: top joint table, then every layer's isometries and
// disentanglers in generative order. Sample k uses its own counter-based stream, so a
// file of samples is identical for any rank count. The two steps are exposed on their
// own (a draw from a joint table, one 1D layer on one line) because the grid sampler
// (grid_sampler.hpp) refines every column and row of a grid by exactly these layers.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "cmera/model.hpp"

namespace cmera {

// Cumulative sums of a joint table over n sites of alphabet K (site 0 most significant),
// searched by bisection: the tables can be large, so no per-draw scan.
class JointDraw {
 public:
  JointDraw(const std::vector<double>& table, int K, long n);
  // One configuration (n values) from one uniform of rng.
  void draw(std::mt19937_64& rng, std::vector<int>& values) const;

 private:
  std::vector<double> cdf_;
  int K_;
  long n_;
};

// One generative layer on one line (docs/design.md §1): coarse (t.coarse values) ->
// fine (2 * t.coarse values), every isometry then every disentangler; `a` is scratch.
void draw_layer(const LayerTables& t, const std::vector<int>& coarse, std::vector<int>& a,
                std::vector<int>& fine, std::mt19937_64& rng);

class AncestralSampler {
 public:
  explicit AncestralSampler(const Model& model);
  // Writes N bottom values of sample k of stream `seed`.
  void draw(std::uint64_t seed, std::uint64_t k, std::uint8_t* out) const;

 private:
  const Model& model_;
  JointDraw top_;
};

}  // namespace cmera
