// Multiscale pair terms (pair_terms.hpp).
#include "cmera/pair_terms.hpp"

#include <algorithm>
#include <cmath>

namespace cmera {

std::vector<long> dyadic_distances(long sites) {
  std::vector<long> r;
  for (long d = 2; d <= sites / 2; d *= 2) r.push_back(d);
  return r;
}

long pair_stride(const Geometry& g, long requested) {
  if (requested > 0) return requested;
  const long chi = *std::max_element(g.chi.begin(), g.chi.end());
  return std::max(1L, g.sites * chi * chi / 2048);
}

PairTerms::PairTerms(const Geometry& g, const PairStats& stats, double weight)
    : stats_(stats), weight_(weight) {
  for (long r : stats.distances)
    for (long i : stats.sites) plans_.emplace_back(g, 0, std::vector<long>{i, i + r});
}

double PairTerms::log_likelihood(const Model& model) {
  const std::size_t dd = static_cast<std::size_t>(stats_.d) * stats_.d;
  std::vector<double> terms(plans_.size(), 0.0);
#pragma omp parallel for schedule(dynamic, 8)
  for (std::size_t k = 0; k < plans_.size(); ++k) {
    const std::vector<double>& p = plans_[k].forward(model);
    const double* q = stats_.q.data() + k * dd;
    for (std::size_t x = 0; x < dd; ++x)
      if (q[x] > 0) terms[k] += q[x] * std::log(p[x]);
  }
  double total = 0;
  for (double t : terms) total += t;  // fixed order: thread-count independent
  return weight_ * total;
}

void PairTerms::gradient(const Model& model, double scale, Tables& grad) {
  const std::size_t dd = static_cast<std::size_t>(stats_.d) * stats_.d;
  std::vector<double> g(dd);
  for (std::size_t k = 0; k < plans_.size(); ++k) {
    const std::vector<double>& p = plans_[k].marginal();
    const double* q = stats_.q.data() + k * dd;
    for (std::size_t x = 0; x < dd; ++x) g[x] = q[x] > 0 ? scale * weight_ * q[x] / p[x] : 0.0;
    plans_[k].backward(model, g, grad);
  }
}

std::vector<long> PairTerms::tables_read(int layer) const {
  std::vector<long> all;
  for (const auto& p : plans_) {
    const auto& t = p.tables_read(layer);
    all.insert(all.end(), t.begin(), t.end());
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

}  // namespace cmera
