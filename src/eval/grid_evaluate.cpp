// Grid evaluation (grid_evaluate.hpp, docs/design-grid.md §5 "Evaluation"). Two passes
// over the data: ranks split the samples, each adding to the torus autocorrelation
// (autocorrelation.hpp: one 2D spectrum per sample serves x, y and the diagonal); then the
// rows of windows, each rank counting its windows in every sample into the histogram of
// the sample's half (even or odd index; GridWindowStats::count, the statistics pass's
// kernel), so histograms are never summed over ranks. The model's windows come from the
// caller (one grid::GridWindowMarginals sweep, which the flow reads too).
//
// Trade-off: the flow is computed redundantly on every rank (as the chain's is), free of
// communication; the spectrum's maps are dealt to the ranks and broadcast (a dense solve is
// about a second, a flow a fraction), so both are identical at every rank count. The
// spectrum's map is applied through grid::descend_columns / descend_rows rather than
// assembled from 1D matrices, so it is the model's own kernel, at O(chi^11) per
// application.
#include "cmera/grid_evaluate.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "cmera/autocorrelation.hpp"
#include "cmera/error.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/grid_objective.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/memory.hpp"
#include "cmera/statistics.hpp"

namespace cmera {

namespace {

// Default and validated largest r per direction (grid_evaluate.hpp).
struct Distances {
  long x, y, diag;
};
Distances distances(const GridLattice& g, long max_distance) {
  const long shortest = std::min(g.lx, g.ly);
  if (max_distance < 0 || max_distance >= shortest)
    throw Error(fmt::format("--max-distance must be in 1..{} (the shorter side of the {} x {} grid "
                            "minus one), got {}", shortest - 1, g.lx, g.ly, max_distance));
  if (max_distance > 0) return {max_distance, max_distance, max_distance};
  return {g.lx / 2, g.ly / 2, shortest / 2};
}

// The sums along r (ex, ey) / (S * sites): the averages over sites and samples.
std::vector<double> averaged(const Comm& comm, const TorusAutocorrelation& acf, long ex, long ey,
                             long max_lag, double samples_times_sites) {
  std::vector<double> s = acf.sums(ex, ey, max_lag);
  comm.sum_inplace(s.data(), s.size());
  for (double& v : s) v /= samples_times_sites;
  return s;
}

CorrelationCurve curve(std::vector<double> data, std::vector<double> model) {
  CorrelationCurve c;
  for (long r = 1; r <= static_cast<long>(data.size()); ++r) c.r.push_back(r);
  c.data = std::move(data);
  c.model = std::move(model);
  return c;
}

}  // namespace

GridEvaluation evaluate_grid(const Comm& comm, const GridModel& model, const DatasetReader& data,
                             long max_distance, long chunk_samples,
                             const GridModelCorrelation& model_correlation) {
  grid::GridWindowMarginals p(model.lattice);
  p.forward(model);
  return evaluate_grid(comm, model, p, data, max_distance, chunk_samples, model_correlation);
}

GridEvaluation evaluate_grid(const Comm& comm, const GridModel& model,
                             const grid::GridWindowMarginals& p, const DatasetReader& data,
                             long max_distance, long chunk_samples,
                             const GridModelCorrelation& model_correlation) {
  const GridLattice& g = model.lattice;
  const DatasetShape& shape = data.shape();
  if (shape.sample_dims != std::vector<long>{g.ly, g.lx})
    throw Error(fmt::format("{}: /configs is [{}, {}] (samples, then one sample's shape), the "
                            "model's grid needs [samples, Ly, Lx] = [{}, {}, {}]", data.path(),
                            shape.samples, fmt::join(shape.sample_dims, ", "), shape.samples,
                            g.ly, g.lx));
  data.require_alphabet(g.chi[0]);
  const Distances R = distances(g, max_distance);
  const int d = g.chi[0];
  const long sites = g.sites_at(0);
  const std::size_t w = grid_window_size(d);
  // Ranks own blocks of rows of windows: each counts its own windows over every sample,
  // so no histogram is summed over ranks (the whole lattice's are 2 Lx Ly chi^9 doubles,
  // 537 MB at 256 x 256, which every rank used to hold and reduce).
  const BlockPartition row_blocks{g.ly, comm.size()};
  const long y0 = row_blocks.begin(comm.rank()), ny = row_blocks.count(comm.rank());
  double marginal_bytes = 0;
  for (int l = 0; l <= g.depth(); ++l)
    marginal_bytes += 8.0 * static_cast<double>(g.sites_at(l)) * static_cast<double>(grid_window_size(g.chi[l]));
  require_memory(comm,
                 16.0 * static_cast<double>(ny * g.lx) * static_cast<double>(w) + marginal_bytes +
                     grid::GridWindowStats::count_scratch_bytes(g, g.lx, ny),
                 fmt::format("eval of a {} x {} grid (window histograms and marginals)", g.lx, g.ly),
                 "for its histograms");

  // Pass 1, ranks splitting the samples: every sample feeds the torus autocorrelation (all
  // displacements, so x, y and the diagonal at once), and every value is checked.
  TorusAutocorrelation acf(g.lx, g.ly);
  std::vector<double> spins(static_cast<std::size_t>(sites));
  double spin_of[256];
  for (int v = 0; v < 256; ++v) spin_of[v] = spin_value(v, d);
  const BlockPartition part{shape.samples, comm.size()};
  const long first = part.begin(comm.rank()), count = part.count(comm.rank());
  const long most = (shape.samples + comm.size() - 1) / comm.size();
  const CyclicRange all = CyclicRange::make(0, sites, sites);  // a sample's sites, for errors
  const CyclicRange rows_all = CyclicRange::make(0, g.ly, g.ly), columns_all = CyclicRange::make(0, g.lx, g.lx);
  const long block = read_block(comm, data, chunk_samples, most, sites, 1);
  std::vector<std::uint8_t> buf;
  BadValue bad;
  for (long c0 = 0; c0 < most; c0 += block) {  // the same number of collective reads everywhere
    const long rows = std::clamp(count - c0, 0L, block);
    data.read_box(first + std::min(c0, count), rows, rows_all, columns_all, buf);
    if (bad.sample < 0) bad = find_bad_value(buf, first + c0, rows, all, d);
    if (bad.sample >= 0) continue;
    for (long k = 0; k < rows; ++k) {
      const std::uint8_t* s = buf.data() + k * sites;
      for (long i = 0; i < sites; ++i) spins[i] = spin_of[s[i]];
      acf.add(spins.data());
    }
  }
  check_values(comm, data, bad, d);

  // Pass 2, ranks splitting the windows: half[k % 2] counts this rank's windows in sample k,
  // read as the box of rows they reach.
  grid::GridWindowStats half[2] = {grid::GridWindowStats(g, columns_all, CyclicRange::make(y0, ny, g.ly)),
                                   grid::GridWindowStats(g, columns_all, CyclicRange::make(y0, ny, g.ly))};
  const long box = half[0].box_x().length * half[0].box_y().length;
  grid::count_grid_windows(comm, data, read_block(comm, data, chunk_samples, shape.samples, box, 1),
                           half);

  // Window figures over this rank's block of windows, then summed. Counts n_A(x), n_B(x).
  const double S = static_cast<double>(shape.samples);
  const double nA = static_cast<double>((shape.samples + 1) / 2), nB = static_cast<double>(shape.samples / 2);
  // sums: KL, cross entropy, entropy, sum_x (q_A - q_B)^2 / q; then summed over windows:
  // q, p and q_A - q_B (the difference, not the two halves: identical halves then give
  // exactly 0 however the sums over ranks are ordered).
  std::vector<double> sums(4 + 3 * w, 0.0);
  double* pooled = sums.data() + 4;
  for (long i = y0 * g.lx; i < (y0 + ny) * g.lx; ++i) {
    const long x = i % g.lx, y = i / g.lx;
    const double *a = half[0].window(x, y), *b = half[1].window(x, y), *pw = p.window(0, x, y);
    for (std::size_t c = 0; c < w; ++c) {
      pooled[w + c] += pw[c];
      const double q = (a[c] + b[c]) / S;
      if (q == 0) continue;
      const double qa = nA > 0 ? a[c] / nA : 0, qb = nB > 0 ? b[c] / nB : 0;
      sums[0] += q * std::log(q / pw[c]);
      sums[1] -= q * std::log(pw[c]);
      sums[2] -= q * std::log(q);
      sums[3] += (qa - qb) * (qa - qb) / q;
      pooled[c] += q;
      pooled[2 * w + c] += qa - qb;
    }
  }
  comm.sum_inplace(sums.data(), sums.size());
  const double n = static_cast<double>(sites);
  const double floor_factor = shape.samples < 2 ? std::numeric_limits<double>::quiet_NaN()
                                                : nA * nB / (2 * S * S);
  GridEvaluation ev;
  ev.kl_per_window = sums[0] / n;
  ev.cross_entropy_per_window = sums[1] / n;
  ev.data_entropy_per_window = sums[2] / n;
  ev.kl_floor_per_window = floor_factor * sums[3] / n;
  double kl_pooled = 0, floor_pooled = 0;
  for (std::size_t c = 0; c < w; ++c) {
    const double q = pooled[c] / n, pc = pooled[w + c] / n;
    if (q == 0) continue;
    const double diff = pooled[2 * w + c] / n;
    kl_pooled += q * std::log(q / pc);
    floor_pooled += diff * diff / q;
  }
  ev.kl_pooled_window = kl_pooled;
  ev.kl_floor_pooled = floor_factor * floor_pooled;

  const auto model_curve = [&](long dx, long dy, long steps) {
    return model_correlation ? model_correlation(model, p, dx, dy, steps) : std::vector<double>{};
  };
  ev.corr_x = curve(averaged(comm, acf, 1, 0, R.x, S * n), model_curve(1, 0, R.x));
  ev.corr_y = curve(averaged(comm, acf, 0, 1, R.y, S * n), model_curve(0, 1, R.y));
  ev.corr_diag = curve(averaged(comm, acf, 1, 1, R.diag, S * n), model_curve(1, 1, R.diag));
  return ev;
}

std::vector<GridLayerFlow> grid_layer_flow(const GridModel& model) {
  grid::GridWindowMarginals p(model.lattice);
  p.forward(model);
  return grid_layer_flow(model, p);
}

std::vector<GridLayerFlow> grid_layer_flow(const GridModel& model, const grid::GridWindowMarginals& p) {
  const GridLattice& g = model.lattice;
  std::vector<GridLayerFlow> flow;
  for (int l = 0; l <= g.depth(); ++l) {
    const int d = g.chi[l];
    const std::size_t w = grid_window_size(d), dd = static_cast<std::size_t>(d * d);
    // Per window entry: the values of places 0, 1 (right), 3 (below) and 4 (diagonal), and
    // where it adds to the x and y neighbour joints (tabulated once: the windows of a
    // layer are many, 2^16 at 256 x 256).
    std::vector<int> value[5];
    std::vector<std::size_t> to_x(w), to_y(w);
    for (std::size_t e = 0; e < w; ++e) {
      std::size_t rest = e;
      int places[9];
      for (int k = 8; k >= 0; --k) {
        places[k] = static_cast<int>(rest % static_cast<std::size_t>(d));
        rest /= static_cast<std::size_t>(d);
      }
      for (int pl : {0, 1, 3, 4}) value[pl].push_back(places[pl]);
      to_x[e] = static_cast<std::size_t>(places[0] * d + places[1]);
      to_y[e] = static_cast<std::size_t>(places[0] * d + places[3]);
    }
    std::vector<double> mean(w, 0.0), jx(dd), jy(dd), left(d), right(d);
    GridLayerFlow f;
    f.layer = l;
    const long n = g.sites_at(l);
    for (long y = 0; y < g.ly_at(l); ++y)
      for (long x = 0; x < g.lx_at(l); ++x) {
        const double* rho = p.window(l, x, y);
        std::fill(jx.begin(), jx.end(), 0.0);
        std::fill(jy.begin(), jy.end(), 0.0);
        for (std::size_t e = 0; e < w; ++e) {
          mean[e] += rho[e] / static_cast<double>(n);
          jx[to_x[e]] += rho[e];
          jy[to_y[e]] += rho[e];
        }
        // I(a; b) of a joint of two sites, the chain's per-pair mutual information.
        for (auto [joint, mi] : {std::pair{&jx, &f.mutual_information_x}, std::pair{&jy, &f.mutual_information_y}}) {
          std::fill(left.begin(), left.end(), 0.0);
          std::fill(right.begin(), right.end(), 0.0);
          for (int a = 0; a < d; ++a)
            for (int b = 0; b < d; ++b) {
              left[a] += (*joint)[a * d + b];
              right[b] += (*joint)[a * d + b];
            }
          for (int a = 0; a < d; ++a)
            for (int b = 0; b < d; ++b) {
              const double pab = (*joint)[a * d + b];
              if (pab > 0) *mi += pab * std::log(pab / (left[a] * right[b])) / static_cast<double>(n);
            }
        }
      }
    f.marginal.assign(static_cast<std::size_t>(d), 0.0);
    for (std::size_t e = 0; e < w; ++e) {
      const int a = value[0][e];
      f.marginal[a] += mean[e];
      f.magnetization += mean[e] * spin_value(a, d);
      f.nn_corr_x += mean[e] * spin_value(a, d) * spin_value(value[1][e], d);
      f.nn_corr_y += mean[e] * spin_value(a, d) * spin_value(value[3][e], d);
      f.nn_corr_diag += mean[e] * spin_value(a, d) * spin_value(value[4][e], d);
    }
    flow.push_back(std::move(f));
  }
  return flow;
}

namespace {

// The composition D_first ... D_{last-1} of the tied grid's layer maps (grid_evaluate.hpp)
// applied to densities of layer `last`'s 3 x 3 windows.
class LayerMaps {
 public:
  LayerMaps(const GridModel& m, int first, int last) : m_(m), first_(first), last_(last) {
    scratch_.resize(static_cast<std::size_t>(omp_get_max_threads()));
    for (auto& s : scratch_) s.reserve(m.lattice);
  }
  long rows() const { return static_cast<long>(grid_window_size(m_.lattice.chi[first_])); }
  long columns() const { return static_cast<long>(grid_window_size(m_.lattice.chi[last_])); }
  // out = D v; threads may call it concurrently, each with its own scratch.
  void apply(const double* v, double* out) const {
    grid::GridScratch& s = scratch_[static_cast<std::size_t>(omp_get_thread_num())];
    std::vector<double> in(v, v + columns()), mid, fine;
    for (int l = last_ - 1; l >= first_; --l) {
      // The four children of coarse window (0, 0): corners x, y in {1 (odd), 2 (even)}.
      std::vector<double> mean(grid_window_size(m_.lattice.chi[l]), 0.0);
      mid.resize(grid_window_size(m_.lattice.intermediate_chi(l)));
      fine.resize(mean.size());
      for (long y : {1, 2}) {
        grid::descend_columns(m_, l, 1, y, in.data(), mid.data(), s);
        for (long x : {1, 2}) {
          grid::descend_rows(m_, l, x, y, mid.data(), fine.data(), s);
          for (std::size_t e = 0; e < mean.size(); ++e) mean[e] += 0.25 * fine[e];
        }
      }
      in.swap(mean);
    }
    std::copy(in.begin(), in.end(), out);
  }

 private:
  const GridModel& m_;
  int first_, last_;
  mutable std::vector<grid::GridScratch> scratch_;
};

// Eigenvalues of a square map: all of them, densely; or the `count` largest in magnitude
// by subspace iteration with Rayleigh-Ritz (block of count + 8 vectors, each iteration
// one QR and one small eigenproblem; converged when the kept magnitudes move less than
// 1e-12 of the largest for five iterations in a row), empty if that takes more than
// `iterations`.
std::vector<std::complex<double>> eigenvalues(const LayerMaps& map, int count, bool dense,
                                              int iterations) {
  const long n = map.rows();
  if (dense) {
    Eigen::MatrixXd D(n, n);
#pragma omp parallel
    {
      std::vector<double> e(static_cast<std::size_t>(n), 0.0), col(static_cast<std::size_t>(n));
#pragma omp for schedule(static)
      for (long k = 0; k < n; ++k) {
        e[k] = 1;
        map.apply(e.data(), col.data());
        e[k] = 0;
        for (long i = 0; i < n; ++i) D(i, k) = col[i];
      }
    }
    const Eigen::VectorXcd mu = Eigen::EigenSolver<Eigen::MatrixXd>(D, false).eigenvalues();
    return {mu.data(), mu.data() + mu.size()};
  }
  const long p = std::min<long>(n, count + 8);
  std::mt19937_64 rng(1);  // a fixed start: every rank finds the same values
  std::uniform_real_distribution<double> uniform(-1, 1);
  Eigen::MatrixXd Q(n, p), Z(n, p);
  for (long j = 0; j < p; ++j)
    for (long i = 0; i < n; ++i) Q(i, j) = uniform(rng);
  Q = Eigen::HouseholderQR<Eigen::MatrixXd>(Q).householderQ() * Eigen::MatrixXd::Identity(n, p);
  std::vector<double> previous;
  std::vector<std::complex<double>> ritz;
  for (int it = 0, steady = 0; it < iterations; ++it) {
#pragma omp parallel for schedule(static)
    for (long j = 0; j < p; ++j) map.apply(Q.col(j).data(), Z.col(j).data());
    const Eigen::MatrixXd H = Q.transpose() * Z;
    const Eigen::VectorXcd theta = Eigen::EigenSolver<Eigen::MatrixXd>(H, false).eigenvalues();
    ritz.assign(theta.data(), theta.data() + theta.size());
    std::stable_sort(ritz.begin(), ritz.end(), [](auto a, auto b) { return std::abs(a) > std::abs(b); });
    std::vector<double> kept;
    for (long k = 0; k < std::min<long>(count, p); ++k) kept.push_back(std::abs(ritz[k]));
    double moved = previous.empty() ? 1 : 0;
    for (std::size_t k = 0; k < kept.size() && !previous.empty(); ++k)
      moved = std::max(moved, std::abs(kept[k] - previous[k]));
    steady = moved <= 1e-12 * kept[0] ? steady + 1 : 0;
    if (steady == 5) return ritz;
    previous = kept;
    Q = Eigen::HouseholderQR<Eigen::MatrixXd>(Z).householderQ() * Eigen::MatrixXd::Identity(n, p);
  }
  return {};
}

}  // namespace

ScalingSpectra grid_scaling_dimensions(const Comm& comm, const GridModel& model, int count,
                                       EigenMethod how, int auto_iterations) {
  if (!model.tied) throw Error("scaling dimensions need a tied grid model (one map per layer)");
  const GridLattice& g = model.lattice;
  // The maps (first, last layer) in result order: each square layer, then the top-most
  // run of square layers when it has more than one (a run of one is that layer's map).
  std::vector<std::pair<int, int>> maps;
  for (int l = 0; l < g.depth(); ++l)
    if (g.chi[l] == g.chi[l + 1]) maps.emplace_back(l, l + 1);
  int first_of_top_run = g.depth();
  for (int l = g.depth() - 1; l >= 0 && g.chi[l] == g.chi[l + 1]; --l) first_of_top_run = l;
  if (first_of_top_run < g.depth() - 1) maps.emplace_back(first_of_top_run, g.depth());
  std::vector<Spectrum> spectra(maps.size());
  for (std::size_t k = 0; k < maps.size(); ++k) {
    const auto [first, last] = maps[k];
    Spectrum& sp = spectra[k];
    sp.layers.resize(static_cast<std::size_t>(last - first));
    std::iota(sp.layers.begin(), sp.layers.end(), first);
    const int owner = static_cast<int>(k % static_cast<std::size_t>(comm.size()));
    std::vector<double> packed;  // size, magnitude, phase, delta
    if (comm.rank() == owner) {
      const LayerMaps map(model, first, last);
      const bool fallback = how == EigenMethod::kAuto && map.rows() <= kDenseLimit;
      constexpr int kIterations = 20000;
      std::vector<std::complex<double>> mu =
          eigenvalues(map, count, how == EigenMethod::kDense, fallback ? auto_iterations : kIterations);
      if (mu.empty() && fallback) mu = eigenvalues(map, count, true, 0);
      if (mu.empty())
        throw Error(fmt::format("scaling spectrum: subspace iteration on the {0} x {0} window map of "
                                "layers {1}-{2} did not converge in {3} iterations", map.rows(), first,
                                last - 1, kIterations));
      sp = spectrum_from_eigenvalues(std::move(mu), sp.layers, count);
      packed.push_back(static_cast<double>(sp.magnitude.size()));
      for (const auto* v : {&sp.magnitude, &sp.phase, &sp.delta}) packed.insert(packed.end(), v->begin(), v->end());
    }
    double size = packed.empty() ? 0 : packed[0];
    comm.broadcast(&size, 1, owner);
    const auto n = static_cast<std::size_t>(size);
    packed.resize(1 + 3 * n);
    comm.broadcast(packed.data(), packed.size(), owner);
    std::size_t at = 1;
    for (auto* v : {&sp.magnitude, &sp.phase, &sp.delta}) {
      v->assign(packed.begin() + static_cast<long>(at), packed.begin() + static_cast<long>(at + n));
      at += n;
    }
  }
  ScalingSpectra out;
  const std::size_t square = maps.size() - (first_of_top_run < g.depth() - 1 ? 1 : 0);
  out.per_layer.assign(spectra.begin(), spectra.begin() + static_cast<long>(square));
  if (first_of_top_run == g.depth() - 1) out.averaged = out.per_layer.back();
  else if (first_of_top_run < g.depth()) out.averaged = spectra.back();
  return out;
}

nlohmann::json scaling_json(const ScalingSpectra& s) {
  const auto one = [](const Spectrum& sp) {
    return nlohmann::json{{"layers", sp.layers}, {"lambda", sp.magnitude}, {"phase", sp.phase},
                          {"delta", sp.delta}};
  };
  nlohmann::json j = one(s.averaged);
  j["per_layer"] = nlohmann::json::array();
  for (const Spectrum& sp : s.per_layer) j["per_layer"].push_back(one(sp));
  return j;
}

nlohmann::json grid_evaluation_json(const GridEvaluation& ev, const std::vector<GridLayerFlow>& flow,
                                    const ScalingSpectra* scaling) {
  nlohmann::json j;
  j["kl_per_window"] = ev.kl_per_window;
  j["cross_entropy_per_window"] = ev.cross_entropy_per_window;
  j["data_entropy_per_window"] = ev.data_entropy_per_window;
  j["kl_pooled_window"] = ev.kl_pooled_window;
  j["kl_floor"] = {{"per_window", ev.kl_floor_per_window}, {"pooled", ev.kl_floor_pooled}};
  for (auto [key, c] : {std::pair{"corr_x", &ev.corr_x}, std::pair{"corr_y", &ev.corr_y},
                        std::pair{"corr_diag", &ev.corr_diag}})
    j[key] = {{"r", c->r}, {"model", c->model}, {"data", c->data}};
  j["flow"] = nlohmann::json::array();
  for (const GridLayerFlow& f : flow)
    j["flow"].push_back({{"layer", f.layer}, {"marginal", f.marginal},
                         {"magnetization", f.magnetization}, {"nn_corr_x", f.nn_corr_x},
                         {"nn_corr_y", f.nn_corr_y}, {"nn_corr_diag", f.nn_corr_diag},
                         {"mutual_information_x", f.mutual_information_x},
                         {"mutual_information_y", f.mutual_information_y}});
  if (scaling) j["scaling"] = scaling_json(*scaling);
  return j;
}

}  // namespace cmera
