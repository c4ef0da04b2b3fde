// Reference path: the exact marginal of ANY set of sites at any layer, by the general
// causal-cone rule of DESIGN §3 (parents of a set = inputs of the isometries feeding the
// disentanglers touching it), applied recursively up to the top joint table. Plain
// generic tensor code, written for clarity: it is the truth the fast window kernels and
// the pair/correlation code are tested against, and it serves arbitrary site sets.
#pragma once
#include <vector>

#include "cmera/model.hpp"

namespace cmera {

// Dense distribution over an ordered list of sites; row-major, sites[0] most significant.
struct SiteMarginal {
  std::vector<long> sites;
  std::vector<int> dims;
  std::vector<double> p;

  double at(const std::vector<int>& values) const;
  // Marginal onto a sub-list of this marginal's sites (in the given order).
  SiteMarginal restrict_to(const std::vector<long>& keep) const;
};

// Exact marginal of `sites` (distinct mod N_layer, any order) at `layer`.
SiteMarginal site_marginal(const Model& model, int layer, const std::vector<long>& sites);

// Parents at layer+1 of a site set at layer (sorted, unique): the cone rule itself.
std::vector<long> cone_parents(const Geometry& g, int layer, const std::vector<long>& sites);

}  // namespace cmera
