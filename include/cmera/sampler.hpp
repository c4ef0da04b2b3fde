// Exact ancestral sampling of a MERA: top joint table, then every layer's isometries and
// disentanglers in generative order. Sample k uses its own counter-based stream, so a
// file of samples is identical for any rank count.
#pragma once
#include <cstdint>
#include <vector>

#include "cmera/model.hpp"

namespace cmera {

class AncestralSampler {
 public:
  explicit AncestralSampler(const Model& model);
  // Writes N bottom values of sample k of stream `seed`.
  void draw(std::uint64_t seed, std::uint64_t k, std::uint8_t* out) const;

 private:
  const Model& model_;
  std::vector<double> top_cdf_;
};

}  // namespace cmera
