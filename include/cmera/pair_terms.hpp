// Multiscale pair terms of the objective (DESIGN §5): for every distance r in a list
// (dyadic by default) and every site i a rank owns, the exact joint marginal of
// {i, i+r} through its general cone (ConePlan), its log-likelihood under the data's
// pair statistics, and the reverse pass. Windows fix short-range structure only; these
// terms pin the correlation function at every scale. Plans are built once per run;
// the reverse pass accumulates serially, in plan order, so results are deterministic.
#pragma once
#include <vector>

#include "cmera/model.hpp"
#include "cmera/siteset.hpp"

namespace cmera {

// Empirical pair distributions q_{i,i+r} for the rank's pair sites i.
struct PairStats {
  std::vector<long> distances;
  std::vector<long> sites;  // left sites i of the pairs (global indices, increasing)
  int d = 2;
  std::vector<double> q;    // [distance][site][d*d]
};

// Dyadic distances 2, 4, 8, ... up to N/2.
std::vector<long> dyadic_distances(long sites);
// Stride between pair sites: `requested`, or max(1, N * chi_max^2 / 2048) when 0, i.e.
// about 2048 / chi_max^2 pair sites per distance. A pair cone holds a dense joint of up
// to 7 sites (~depth * chi^8 work) against chi^5 for a window, so on large lattices a
// subset of positions keeps the pair terms affordable; every window stays in.
long pair_stride(const Geometry& g, long requested);

class PairTerms {
 public:
  PairTerms(const Geometry& g, const PairStats& stats, double weight);
  bool empty() const { return plans_.empty(); }
  // Forward every cone; returns weight * sum_{r,i} sum_x q log p (no communication).
  double log_likelihood(const Model& model);
  // Adds d/dtheta of scale * (the value above) to grad. Requires log_likelihood().
  void gradient(const Model& model, double scale, Tables& grad);
  // Coarse sites of `layer` whose tables some pair cone reads (sorted, unique).
  std::vector<long> tables_read(int layer) const;

 private:
  const PairStats& stats_;
  double weight_;
  std::vector<ConePlan> plans_;  // [distance][k]
};

}  // namespace cmera
