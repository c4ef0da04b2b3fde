// Exact ancestral sampling of the grid MERA (docs/design-grid.md §1): the top grid from
// its joint table, then per layer every column refined by its 1D layer, then every row
// of the intermediate grid, each line by the chain's own layer draw (sampler.hpp).
// Sample k uses its own counter-based stream, so samples do not depend on which rank
// draws them or how many ranks there are.
#pragma once
#include <cstdint>

#include "cmera/grid.hpp"
#include "cmera/sampler.hpp"

namespace cmera {

class GridSampler {
 public:
  explicit GridSampler(const GridModel& model);
  // Writes Lx * Ly bottom values of sample k of stream `seed`, site (x, y) at y * Lx + x.
  void draw(std::uint64_t seed, std::uint64_t k, std::uint8_t* out) const;

 private:
  const GridModel& model_;
  JointDraw top_;
};

}  // namespace cmera
