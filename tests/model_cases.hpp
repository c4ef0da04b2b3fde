// Test geometries shared by the cone tests: a lattice size, the alphabets per layer and
// tied/untied, how a failure names one, and a random (normalized) model of it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cmera/init.hpp"

namespace cmera::testing {

struct ModelCase {
  long sites;
  std::vector<int> chi;
  bool tied;
};

inline std::string label(const ModelCase& c) {
  std::string s = "N=" + std::to_string(c.sites) + " chi=[";
  for (std::size_t i = 0; i < c.chi.size(); ++i) s += (i ? "," : "") + std::to_string(c.chi[i]);
  return s + "]" + (c.tied ? " tied" : " untied");
}

inline Model random_model(const ModelCase& c, std::uint64_t seed) {
  return initialize_model(Geometry{c.sites, c.chi}, c.tied, InitKind::kRandom, 1.0, seed);
}

}  // namespace cmera::testing
