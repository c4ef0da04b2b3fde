// Test geometries shared by the cone tests: a lattice size, the alphabets per layer and
// tied/untied, how a failure names one, and a random (normalized) model of it; and the
// plain reference of the model's C(r), one general cone per pair.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cmera/init.hpp"
#include "cmera/siteset.hpp"
#include "cmera/statistics.hpp"

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

// <s_i s_i+r> averaged over i from one general cone per pair.
inline double correlation_one_cone_per_pair(const Model& m, long r) {
  const long n = m.geometry.sites;
  const int d = m.geometry.chi[0];
  double c = 0;
  for (long i = 0; i < n; ++i) {
    const SiteMarginal p = site_marginal(m, 0, {i, i + r});
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) c += p.p[a * d + b] * spin_value(a, d) * spin_value(b, d);
  }
  return c / static_cast<double>(n);
}

}  // namespace cmera::testing
