// Evaluation (evaluate.hpp). Window terms reuse the training sweep (same cones, same
// statistics pass); the model's two-point function is correlation.hpp's. The flow
// diagnostics are computed redundantly on every rank, which keeps them free of
// communication and identical at every rank count: the neighbour joints come from one
// top-down descent of every 3-site window of every layer (O(N chi^5), the window kernels
// of docs/design.md §2) rather than one general cone per pair from the top.
#include "cmera/evaluate.hpp"

#include <fmt/format.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <complex>

#include "cmera/correlation.hpp"
#include "cmera/error.hpp"
#include "cmera/siteset.hpp"
#include "cmera/statistics.hpp"
#include "cmera/window_kernels.hpp"
#include "cmera/window_sweep.hpp"

namespace cmera {

Evaluation evaluate(const Comm& comm, const Model& model, const DatasetReader& data,
                    long max_distance, long chunk_samples) {
  const Geometry& g = model.geometry;
  if (data.shape().sites != g.sites)
    throw Error(fmt::format("{}: dataset has {} sites, the model {}", data.path(),
                            data.shape().sites, g.sites));
  data.require_alphabet(g.chi[0]);  // values outside 0..chi[0]-1: the statistics pass
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

std::vector<LayerFlow> layer_flow(const Model& model) {
  const Geometry& g = model.geometry;
  // windows[s]: marginal of sites (s, s+1, s+2) of the current layer, from the top down.
  const int K = g.chi.back();
  const long nt = g.top_sites();
  const std::size_t top_w = static_cast<std::size_t>(K) * K * K;
  std::vector<double> windows(static_cast<std::size_t>(nt) * top_w);
  for (long c = 0; c < nt; ++c) kernels::top_window(K, nt, model.tables.top.data(), c, windows.data() + c * top_w);
  std::vector<LayerFlow> flow(static_cast<std::size_t>(g.depth() + 1));
  for (int l = g.depth(); l >= 0; --l) {
    const int d = g.chi[l];
    const long n = g.sites_at(l);
    const std::size_t w = static_cast<std::size_t>(d) * d * d;
    if (l < g.depth()) {  // fine windows 2c+1 (odd) and 2c+2 (even) from coarse window c
      const int Kc = g.chi[l + 1];
      const std::size_t wc = static_cast<std::size_t>(Kc) * Kc * Kc;
      std::vector<double> fine(static_cast<std::size_t>(n) * w);
#pragma omp parallel
      {
        kernels::WindowScratch scratch;
        scratch.reserve(d, Kc);
#pragma omp for schedule(static)
        for (long c = 0; c < n / 2; ++c)
          kernels::descend_pair(d, Kc, kernels::cone_tables(model.tables.layers[l], c),
                                windows.data() + c * wc, fine.data() + cone::wrap(2 * c + 1, n) * w,
                                fine.data() + cone::wrap(2 * c + 2, n) * w, scratch);
      }
      windows.swap(fine);
    }
    // Joint of every neighbour pair (i, i+1): window i with its third site summed out.
    std::vector<std::vector<double>> joints(static_cast<std::size_t>(n), std::vector<double>(d * d, 0.0));
    for (long i = 0; i < n; ++i)
      for (std::size_t x = 0; x < w; ++x) joints[i][x / d] += windows[i * w + x];
    LayerFlow f{l, std::vector<double>(static_cast<std::size_t>(d), 0.0), 0.0};
    for (const auto& p : joints) {
      std::vector<double> left(d, 0.0), right(d, 0.0);
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b) {
          left[a] += p[a * d + b];
          right[b] += p[a * d + b];
        }
      for (int a = 0; a < d; ++a) {
        f.marginal[a] += left[a] / static_cast<double>(n);
        for (int b = 0; b < d; ++b) {
          const double pab = p[a * d + b];
          if (pab > 0) f.mutual_information += pab * std::log(pab / (left[a] * right[b]));
        }
      }
    }
    f.mutual_information /= static_cast<double>(n);
    flow[l] = std::move(f);
  }
  return flow;
}

namespace {

// D_l: column k is the mean of the two fine windows descended from coarse window e_k.
Eigen::MatrixXd layer_map(const LayerTables& t) {
  const int d = t.d, K = t.K;
  const long in = static_cast<long>(K) * K * K, out = static_cast<long>(d) * d * d;
  kernels::WindowScratch scratch;
  scratch.reserve(d, K);
  const kernels::ConeTables tab = kernels::cone_tables(t, 0);
  Eigen::MatrixXd D(out, in);
  std::vector<double> rho(in, 0.0), odd(out), even(out);
  for (long k = 0; k < in; ++k) {
    rho[k] = 1;
    kernels::descend_pair(d, K, tab, rho.data(), odd.data(), even.data(), scratch);
    rho[k] = 0;
    for (long x = 0; x < out; ++x) D(x, k) = 0.5 * (odd[x] + even[x]);
  }
  return D;
}

// Eigenvalues of `map`, the composition of `layers.size()` layers, as per-layer factors.
Spectrum spectrum(const Eigen::MatrixXd& map, std::vector<int> layers, int count) {
  const Eigen::VectorXcd mu = Eigen::EigenSolver<Eigen::MatrixXd>(map, false).eigenvalues();
  return spectrum_from_eigenvalues({mu.data(), mu.data() + mu.size()}, std::move(layers), count);
}

}  // namespace

Spectrum spectrum_from_eigenvalues(std::vector<std::complex<double>> v, std::vector<int> layers,
                                   int count) {
  std::stable_sort(v.begin(), v.end(), [](auto a, auto b) { return std::abs(a) > std::abs(b); });
  const double n = static_cast<double>(layers.size());
  Spectrum s;
  s.layers = std::move(layers);
  const std::size_t kept = std::min(v.size(), static_cast<std::size_t>(count));
  for (std::size_t k = 0; k < kept; ++k) {
    s.magnitude.push_back(std::pow(std::abs(v[k]), 1.0 / n));
    s.phase.push_back(std::arg(v[k]) / n);
    s.delta.push_back(-std::log2(s.magnitude.back()));
  }
  return s;
}

ScalingSpectra scaling_dimensions(const Model& model, int count) {
  if (!model.tied) throw Error("scaling dimensions need a tied model (one map per layer)");
  const Geometry& g = model.geometry;
  ScalingSpectra out;
  int first_of_top_run = g.depth();
  for (int l = g.depth() - 1; l >= 0 && g.chi[l] == g.chi[l + 1]; --l) first_of_top_run = l;
  Eigen::MatrixXd composed;
  for (int l = 0; l < g.depth(); ++l) {
    if (g.chi[l] != g.chi[l + 1]) continue;
    const Eigen::MatrixXd D = layer_map(model.tables.layers[l]);
    out.per_layer.push_back(spectrum(D, {l}, count));
    if (l == first_of_top_run) composed = D;
    if (l > first_of_top_run) composed = composed * D;
  }
  std::vector<int> run;
  for (int l = first_of_top_run; l < g.depth(); ++l) run.push_back(l);
  if (!run.empty()) out.averaged = spectrum(composed, run, count);
  return out;
}

}  // namespace cmera
