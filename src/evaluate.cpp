// Evaluation (evaluate.hpp). Window terms reuse the training sweep (same cones, same
// statistics pass). The model's two-point function uses the general site-set descend for
// every pair {i, i+r}: exact at every distance, O(N R depth) small contractions, split
// over ranks by i and over threads within a rank.
#include "cmera/evaluate.hpp"

#include <fmt/format.h>

#include <cmath>

#include "cmera/error.hpp"
#include "cmera/siteset.hpp"
#include "cmera/statistics.hpp"
#include "cmera/window_sweep.hpp"

namespace cmera {

std::vector<double> model_correlation(const Comm& comm, const Model& model, long max_distance) {
  const long n = model.geometry.sites;
  const int d = model.geometry.chi[0];
  const BlockPartition part{n, comm.size()};
  std::vector<double> sums(static_cast<std::size_t>(max_distance), 0.0);
  const long first = part.begin(comm.rank()), last = part.end(comm.rank());
#pragma omp parallel
  {
    std::vector<double> local(sums.size(), 0.0);
#pragma omp for schedule(dynamic, 4)
    for (long i = first; i < last; ++i)
      for (long r = 1; r <= max_distance; ++r) {
        const SiteMarginal m = site_marginal(model, 0, {i, i + r});
        double e = 0;
        for (int a = 0; a < d; ++a)
          for (int b = 0; b < d; ++b) e += m.p[a * d + b] * spin_value(a, d) * spin_value(b, d);
        local[r - 1] += e;
      }
#pragma omp critical
    for (std::size_t k = 0; k < sums.size(); ++k) sums[k] += local[k];
  }
  comm.sum_inplace(sums.data(), sums.size());
  for (double& s : sums) s /= static_cast<double>(n);
  return sums;
}

Evaluation evaluate(const Comm& comm, const Model& model, const DatasetReader& data,
                    long max_distance, long chunk_samples) {
  const Geometry& g = model.geometry;
  if (data.shape().sites != g.sites)
    throw Error(fmt::format("{}: dataset has {} sites, the model {}", data.path(),
                            data.shape().sites, g.sites));
  if (max_distance < 1 || max_distance >= g.sites)
    throw Error(fmt::format("--max-distance must be in 1..{}, got {}", g.sites - 1, max_distance));
  const BlockPartition part{g.sites, comm.size()};
  const long first = part.begin(comm.rank()), count = part.count(comm.rank());
  const WindowStats stats = count_window_stats(comm, data, g.chi[0], first, count, chunk_samples);
  WindowSweep sweep(g, first, count);
  sweep.forward(model);
  // KL summed term by term (not CE - H) so that small divergences keep their digits.
  double ce = -sweep.log_likelihood(stats), h = 0, kl = 0;
  const long w = static_cast<long>(g.chi[0]) * g.chi[0] * g.chi[0];
  for (long k = 0; k < count; ++k) {
    h += stats.entropy[k];
    for (long x = 0; x < w; ++x) {
      const double q = stats.window(k)[x];
      if (q > 0) kl += q * std::log(q / sweep.bottom(k)[x]);
    }
  }
  Evaluation ev;
  const double n = static_cast<double>(g.sites);
  ev.cross_entropy_per_window = comm.sum(ce) / n;
  ev.data_entropy_per_window = comm.sum(h) / n;
  ev.kl_per_window = comm.sum(kl) / n;
  for (long r = 1; r <= max_distance; ++r) ev.r.push_back(r);
  ev.corr_model = model_correlation(comm, model, max_distance);
  ev.corr_data = data_correlation(comm, data, g.chi[0], max_distance, chunk_samples);
  return ev;
}

}  // namespace cmera
