// Grid evaluation (grid_evaluate.hpp, docs/design-grid.md §5 "Evaluation") against
// independent truth: window KL, cross entropy, pooled KL and the sampling floor against
// histograms counted in this file from the in-memory samples; the floor is 0 for
// duplicated samples and, for uniform data, near its expectation 511 / (2 S); data C(r)
// along x, y and the diagonal against direct double loops (exact); the flow against a
// product model whose answer is known by hand; the spectrum against the 2D map assembled
// here from the chain's 1D child maps (Kronecker construction, a second code path), dense
// against iterative, lambda_0 = 1, and rank 1 for the product model. Runs at 1-4 ranks,
// each result also against the same evaluation on one rank (MPI_COMM_SELF).
#include <gtest/gtest.h>
#include <mpi.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <filesystem>
#include <numeric>
#include <random>
#include <tuple>

#include "ising_data.hpp"
#include "cmera/comm.hpp"
#include "cmera/error.hpp"
#include "cmera/grid_evaluate.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/grid_pairs.hpp"
#include "cmera/grid_sampler.hpp"
#include "cmera/io.hpp"
#include "cmera/statistics.hpp"
#include "cmera/window_kernels.hpp"

namespace cmera {
namespace {

using Samples = std::vector<std::vector<std::uint8_t>>;

Samples draw(const GridModel& m, long count, std::uint64_t seed) {
  const GridSampler sampler(m);
  Samples out(static_cast<std::size_t>(count), std::vector<std::uint8_t>(m.lattice.sites_at(0)));
  for (long k = 0; k < count; ++k) sampler.draw(seed, static_cast<std::uint64_t>(k), out[k].data());
  return out;
}

// Writes the samples as /configs [S, Ly, Lx] (alphabet attribute chi_0), each rank its
// block of rows.
void write_grid(const Comm& comm, const std::string& path, const GridLattice& g, const Samples& all) {
  const BlockPartition rows{static_cast<long>(all.size()), comm.size()};
  std::vector<std::uint8_t> mine;
  for (long k = rows.begin(comm.rank()); k < rows.end(comm.rank()); ++k)
    mine.insert(mine.end(), all[k].begin(), all[k].end());
  write_dataset(comm, path, static_cast<long>(all.size()), {g.ly, g.lx}, g.chi[0],
                rows.begin(comm.rank()), mine, {});
}

// Histogram of the 3 x 3 window at corner (x, y) over the samples k with pick(k),
// counted directly: place 3 dy + dx most significant first, indices mod L.
template <class Pick>
std::vector<double> histogram(const GridLattice& g, const Samples& all, long x, long y, Pick pick) {
  const int d = g.chi[0];
  std::vector<double> h(grid_window_size(d), 0.0);
  for (std::size_t k = 0; k < all.size(); ++k) {
    if (!pick(k)) continue;
    std::size_t cell = 0;
    for (long dy = 0; dy < 3; ++dy)
      for (long dx = 0; dx < 3; ++dx)
        cell = cell * d + all[k][((y + dy) % g.ly) * g.lx + (x + dx) % g.lx];
    h[cell] += 1;
  }
  return h;
}

double relative(double a, double b) { return std::abs(a - b) / std::max(1e-300, std::abs(b)); }

GridModelCorrelation no_model() { return {}; }

// Every window figure from brute-force histograms of both halves (even / odd sample
// index), with the model's exact windows.
TEST(GridEvaluate, WindowFiguresEqualBruteForce) {
  const Comm comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  const std::string dir = testing::scratch_dir(comm, "grid-eval");
  for (bool tied : {true, false}) {
    const GridLattice g{6, 6, {2, 2}};
    const GridModel m = initialize_grid_model(g, tied, InitKind::kRandom, 1.0, tied ? 5 : 6);
    const long S = 301;  // odd: halves of 151 and 150 samples
    const Samples all = draw(m, S, 11);
    const std::string path = dir + "/w" + std::to_string(tied) + ".h5";
    write_grid(comm, path, g, all);
    const DatasetReader data(comm, path, true);
    const GridEvaluation ev = evaluate_grid(comm, m, data, 0, 7, no_model());

    grid::GridWindowMarginals p(g);
    p.forward(m);
    const std::size_t w = grid_window_size(2);
    const double nA = 151, nB = 150, n = 36;
    double kl = 0, ce = 0, h = 0, floor = 0;
    std::vector<double> qbar(w, 0.0), pbar(w, 0.0), abar(w, 0.0), bbar(w, 0.0);
    for (long y = 0; y < 6; ++y)
      for (long x = 0; x < 6; ++x) {
        const auto a = histogram(g, all, x, y, [](std::size_t k) { return k % 2 == 0; });
        const auto b = histogram(g, all, x, y, [](std::size_t k) { return k % 2 == 1; });
        const double* pw = p.window(0, x, y);
        for (std::size_t c = 0; c < w; ++c) {
          const double q = (a[c] + b[c]) / S;
          pbar[c] += pw[c] / n;
          qbar[c] += q / n;
          abar[c] += a[c] / nA / n;
          bbar[c] += b[c] / nB / n;
          if (q == 0) continue;
          kl += q * std::log(q / pw[c]) / n;
          ce += -q * std::log(pw[c]) / n;
          h += -q * std::log(q) / n;
          floor += nA * nB / (2.0 * S * S) * std::pow(a[c] / nA - b[c] / nB, 2) / q / n;
        }
      }
    double kl_pooled = 0, floor_pooled = 0;
    for (std::size_t c = 0; c < w; ++c)
      if (qbar[c] > 0) {
        kl_pooled += qbar[c] * std::log(qbar[c] / pbar[c]);
        floor_pooled += nA * nB / (2.0 * S * S) * std::pow(abar[c] - bbar[c], 2) / qbar[c];
      }
    EXPECT_LT(relative(ev.kl_per_window, kl), 1e-12) << tied;
    EXPECT_LT(relative(ev.cross_entropy_per_window, ce), 1e-12) << tied;
    EXPECT_LT(relative(ev.data_entropy_per_window, h), 1e-12) << tied;
    EXPECT_LT(relative(ev.kl_pooled_window, kl_pooled), 1e-12) << tied;
    EXPECT_LT(relative(ev.kl_floor_per_window, floor), 1e-12) << tied;
    EXPECT_LT(relative(ev.kl_floor_pooled, floor_pooled), 1e-12) << tied;
    EXPECT_GT(ev.kl_per_window, ev.kl_pooled_window);  // pooling averages noise away

    // The same evaluation on one rank: rank-count independence to 1e-12.
    const DatasetReader alone(self, path, true);
    const GridEvaluation one = evaluate_grid(self, m, alone, 0, 1000, no_model());
    for (auto [got, want] : {std::pair{ev.kl_per_window, one.kl_per_window},
                             std::pair{ev.cross_entropy_per_window, one.cross_entropy_per_window},
                             std::pair{ev.kl_pooled_window, one.kl_pooled_window},
                             std::pair{ev.kl_floor_per_window, one.kl_floor_per_window},
                             std::pair{ev.kl_floor_pooled, one.kl_floor_pooled}})
      EXPECT_LT(relative(got, want), 1e-12);
  }
  comm.barrier();
  if (comm.is_root()) std::filesystem::remove_all(dir);
}

// Duplicated samples (2j and 2j+1 equal) make the halves identical: floor exactly 0.
// Uniform data against the uniform model: every window's X^2 is about chi^2 with 511
// degrees of freedom, so the floor is about 511 / (2 S), and so is the KL itself (the
// model is the truth); 36 overlapping windows keep the mean within a few per cent.
TEST(GridEvaluate, FloorIsZeroForIdenticalHalvesAndMatchesItsExpectation) {
  const Comm comm(MPI_COMM_WORLD);
  const std::string dir = testing::scratch_dir(comm, "grid-floor");
  const GridLattice g{6, 6, {2, 2}};
  const GridModel m = initialize_grid_model(g, true, InitKind::kRandom, 1.0, 3);
  Samples dup = draw(m, 60, 4);
  for (std::size_t k = 1; k < dup.size(); k += 2) dup[k] = dup[k - 1];
  write_grid(comm, dir + "/dup.h5", g, dup);
  const GridEvaluation d =
      evaluate_grid(comm, m, DatasetReader(comm, dir + "/dup.h5", true), 0, 16, no_model());
  EXPECT_EQ(d.kl_floor_per_window, 0.0);
  EXPECT_EQ(d.kl_floor_pooled, 0.0);
  EXPECT_GT(d.kl_per_window, 0.0);

  const long S = 20000;
  std::mt19937_64 rng(7);
  Samples uniform(S, std::vector<std::uint8_t>(36));
  for (auto& s : uniform)
    for (auto& v : s) v = static_cast<std::uint8_t>(rng() & 1);
  write_grid(comm, dir + "/uniform.h5", g, uniform);
  const GridEvaluation u = evaluate_grid(comm, GridModel::uniform(g, true),
                                         DatasetReader(comm, dir + "/uniform.h5", true),
                                         0, 4096, no_model());
  const double expected = 511.0 / (2.0 * S);
  EXPECT_NEAR(u.kl_floor_per_window / expected, 1.0, 0.1) << u.kl_floor_per_window;
  EXPECT_NEAR(u.kl_per_window / expected, 1.0, 0.1) << u.kl_per_window;
  EXPECT_LT(u.kl_pooled_window, u.kl_per_window / 10);  // pooled over 36 windows
  comm.barrier();
  if (comm.is_root()) std::filesystem::remove_all(dir);
}

// Data C(r) along x, y and the diagonal equals the direct double loop over samples and
// sites exactly; 12 x 20 has gcd 4 diagonal cycles of 60 sites. The model's curves are
// what the supplied function returns, asked once per direction with the right steps.
TEST(GridEvaluate, DataCorrelationEqualsDirectSums) {
  const Comm comm(MPI_COMM_WORLD);
  const std::string dir = testing::scratch_dir(comm, "grid-corr");
  struct Case {
    GridLattice g;
    long max_distance;
  };
  for (const Case& c : {Case{{12, 20, {2, 2, 2}}, 0}, Case{{12, 20, {2, 2, 2}}, 11},
                        Case{{6, 6, {3, 2}}, 0}}) {
    const GridLattice& g = c.g;
    const int d = g.chi[0];
    const long S = 37;
    std::mt19937_64 rng(static_cast<std::uint64_t>(g.lx * 100 + d));
    Samples all(S, std::vector<std::uint8_t>(static_cast<std::size_t>(g.sites_at(0))));
    for (auto& s : all)
      for (auto& v : s) v = static_cast<std::uint8_t>(rng() % static_cast<std::uint64_t>(d));
    const std::string path = dir + "/c" + std::to_string(g.lx) + ".h5";
    write_grid(comm, path, g, all);
    std::vector<std::array<long, 3>> calls;
    const GridModelCorrelation fake = [&](const GridModel&, const cmera::grid::GridWindowMarginals&,
                                          long dx, long dy, long steps) {
      calls.push_back({dx, dy, steps});
      std::vector<double> v;
      for (long k = 1; k <= steps; ++k) v.push_back(static_cast<double>(1000 * k + 10 * dx + dy));
      return v;
    };
    const GridModel m = GridModel::uniform(g, true);
    const GridEvaluation ev =
        evaluate_grid(comm, m, DatasetReader(comm, path, true), c.max_distance, 5, fake);
    const long rx = c.max_distance ? c.max_distance : g.lx / 2;
    const long ry = c.max_distance ? c.max_distance : g.ly / 2;
    const long rd = c.max_distance ? c.max_distance : std::min(g.lx, g.ly) / 2;
    ASSERT_EQ(calls.size(), 3u);
    EXPECT_EQ(calls[0], (std::array<long, 3>{1, 0, rx}));
    EXPECT_EQ(calls[1], (std::array<long, 3>{0, 1, ry}));
    EXPECT_EQ(calls[2], (std::array<long, 3>{1, 1, rd}));
    for (auto [curve, dx, dy, steps] : {std::tuple{&ev.corr_x, 1L, 0L, rx}, std::tuple{&ev.corr_y, 0L, 1L, ry},
                                        std::tuple{&ev.corr_diag, 1L, 1L, rd}}) {
      ASSERT_EQ(curve->data.size(), static_cast<std::size_t>(steps));
      ASSERT_EQ(curve->model.size(), static_cast<std::size_t>(steps));
      for (long r = 1; r <= steps; ++r) {
        double sum = 0;
        for (const auto& s : all)
          for (long y = 0; y < g.ly; ++y)
            for (long x = 0; x < g.lx; ++x)
              sum += spin_value(s[y * g.lx + x], d) *
                     spin_value(s[((y + r * dy) % g.ly) * g.lx + (x + r * dx) % g.lx], d);
        EXPECT_EQ(curve->r[r - 1], r);
        EXPECT_EQ(curve->data[r - 1], sum / (static_cast<double>(S) * static_cast<double>(g.sites_at(0))))
            << g.lx << "x" << g.ly << " (" << dx << "," << dy << ") r=" << r;
        EXPECT_EQ(curve->model[r - 1], static_cast<double>(1000 * r + 10 * dx + dy));
      }
    }
  }
  comm.barrier();
  if (comm.is_root()) std::filesystem::remove_all(dir);
}

// The model's C(r) with its distances split over the ranks equals the one-process sum bit
// for bit (each C(k) is one rank's sum in a fixed order), tied and untied, along x, y and
// the diagonal of a non-square grid.
TEST(GridEvaluate, ModelCorrelationSameOnEveryRankCount) {
  const Comm comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  for (bool tied : {true, false}) {
    const GridLattice g{24, 12, {2, 2, 2}};
    const GridModel m = initialize_grid_model(g, tied, InitKind::kRandom, 1.0, 17);
    grid::GridWindowMarginals w(g);
    w.forward(m);
    for (auto [dx, dy, steps] : {std::tuple{1L, 0L, 6L}, std::tuple{0L, 1L, 3L}, std::tuple{1L, 1L, 3L}}) {
      const std::vector<double> split = grid::model_correlation(comm, m, w, dx, dy, steps);
      const std::vector<double> alone = grid::model_correlation(self, m, w, dx, dy, steps);
      ASSERT_EQ(split.size(), static_cast<std::size_t>(steps));
      for (long k = 0; k < steps; ++k)
        EXPECT_EQ(split[k], alone[k]) << "tied " << tied << " (" << dx << "," << dy << ") k " << k + 1;
    }
  }
}

TEST(GridEvaluate, RefusesMismatchedDatasets) {
  const Comm comm(MPI_COMM_WORLD);
  const std::string dir = testing::scratch_dir(comm, "grid-bad");
  const GridLattice g{6, 6, {2, 2}};
  const GridModel m = GridModel::uniform(g, true);
  Samples s = draw(m, 5, 1);
  write_grid(comm, dir + "/6x6.h5", g, s);
  s[3][7] = 2;  // sample 3, site (x, y) = (1, 1)
  write_grid(comm, dir + "/bad.h5", g, s);
  const GridLattice other{12, 6, {2, 2}};
  write_grid(comm, dir + "/12x6.h5", other, draw(GridModel::uniform(other, true), 5, 1));
  const auto message = [&](const std::string& file, const GridModel& model) {
    try {
      evaluate_grid(comm, model, DatasetReader(comm, dir + "/" + file, true), 0, 8, no_model());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("12x6.h5", m).find("/configs is [5, 6, 12] (samples, then one sample's shape), the "
                                       "model's grid needs [samples, Ly, Lx] = [5, 6, 6]"),
            std::string::npos) << message("12x6.h5", m);
  EXPECT_NE(message("bad.h5", m).find("/configs[3, 7] = 2 is outside the alphabet 0..1"), std::string::npos)
      << message("bad.h5", m);
  EXPECT_EQ(message("6x6.h5", m), "no error");
  // A chain dataset [S, N] is not a grid, and a grid dataset is not a chain.
  write_dataset(comm, dir + "/chain.h5", 4, 36, 2, 0, comm.is_root() ? std::vector<std::uint8_t>(4 * 36, 0)
                                                                       : std::vector<std::uint8_t>{}, {});
  EXPECT_NE(message("chain.h5", m).find("/configs is [4, 36] (samples, then one sample's shape)"),
            std::string::npos) << message("chain.h5", m);
  EXPECT_THROW(DatasetReader(comm, dir + "/6x6.h5"), Error);
  comm.barrier();
  if (comm.is_root()) std::filesystem::remove_all(dir);
}

// Every conditional the same product row: W(a, b | y) = f(a) g(b), U(x, x' | a, a') =
// h(x) k(x'), and a product top. A site's value is then the first output of its x
// disentangler (h) at odd x and the second (k) at even x, whatever is above it, so the
// flow is known by hand and the layer maps have rank 1 (eigenvalues 1, 0, ...).
GridModel product_model(const GridLattice& g) {
  GridModel m = GridModel::uniform(g, true);
  const auto fill = [](LayerTables& t, double f1, double g1, double h1, double k1) {
    const auto row2 = [](double p1) { return std::array<double, 2>{1 - p1, p1}; };
    const auto f = row2(f1), gg = row2(g1), h = row2(h1), k = row2(k1);
    for (std::size_t r = 0; r < t.W.size() / 4; ++r)
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) t.W[4 * r + 2 * a + b] = f[a] * gg[b];
    for (std::size_t r = 0; r < t.U.size() / 4; ++r)
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) t.U[4 * r + 2 * a + b] = h[a] * k[b];
  };
  for (int l = 0; l < g.depth(); ++l) {
    fill(m.layers[l].y.line(0), 0.3, 0.6, 0.2, 0.9);
    fill(m.layers[l].x.line(0), 0.4, 0.7, 0.15 + 0.1 * l, 0.8 - 0.1 * l);
  }
  const double t1 = 0.35;
  for (std::size_t e = 0; e < m.top.size(); ++e) {
    double p = 1;
    for (long s = 0; s < g.top_sites(); ++s) p *= (e >> s) & 1 ? t1 : 1 - t1;
    m.top[e] = p;
  }
  return m;
}

TEST(GridEvaluate, FlowOfAProductModelIsKnown) {
  const GridLattice g{12, 12, {2, 2, 2}};
  const GridModel m = product_model(g);
  ASSERT_LT(m.normalization_error(), 1e-14);
  const std::vector<GridLayerFlow> flow = grid_layer_flow(m);
  ASSERT_EQ(flow.size(), 3u);
  for (const GridLayerFlow& f : flow) {
    const bool top = f.layer == g.depth();
    const double h1 = top ? 0.35 : 0.15 + 0.1 * f.layer, k1 = top ? 0.35 : 0.8 - 0.1 * f.layer;
    const double mh = 2 * h1 - 1, mk = 2 * k1 - 1;
    EXPECT_NEAR(f.marginal[1], (h1 + k1) / 2, 1e-14) << f.layer;
    EXPECT_NEAR(f.magnetization, (mh + mk) / 2, 1e-14) << f.layer;
    EXPECT_NEAR(f.nn_corr_x, mh * mk, 1e-14) << f.layer;
    EXPECT_NEAR(f.nn_corr_y, (mh * mh + mk * mk) / 2, 1e-14) << f.layer;
    EXPECT_NEAR(f.nn_corr_diag, mh * mk, 1e-14) << f.layer;
    EXPECT_NEAR(f.mutual_information_x, 0, 1e-14) << f.layer;
    EXPECT_NEAR(f.mutual_information_y, 0, 1e-14) << f.layer;
  }
  const ScalingSpectra s = grid_scaling_dimensions(Comm(MPI_COMM_WORLD), m, 4, EigenMethod::kDense);
  ASSERT_EQ(s.per_layer.size(), 2u);
  for (const Spectrum& sp : s.per_layer) {
    EXPECT_NEAR(sp.magnitude[0], 1, 1e-12);
    EXPECT_LT(sp.magnitude[1], 1e-10);
  }
}

// The chain's 1D child maps of a layer's tables (odd, even): [d^3 x K^3] each.
std::array<Eigen::MatrixXd, 2> child_maps(const LayerTables& t) {
  const long in = t.K * t.K * t.K, out = t.d * t.d * t.d;
  kernels::WindowScratch s;
  s.reserve(t.d, t.K);
  std::array<Eigen::MatrixXd, 2> maps{Eigen::MatrixXd(out, in), Eigen::MatrixXd(out, in)};
  std::vector<double> rho(in, 0.0), odd(out), even(out);
  for (long k = 0; k < in; ++k) {
    rho[k] = 1;
    kernels::descend_pair(t.d, t.K, kernels::cone_tables(t, 0), rho.data(), odd.data(), even.data(), s);
    rho[k] = 0;
    for (long x = 0; x < out; ++x) {
      maps[0](x, k) = odd[x];
      maps[1](x, k) = even[x];
    }
  }
  return maps;
}

// A 1D map M [n^3 x k^3] applied to every column (places dx, dx+3, dx+6; `columns`) or
// every row (places 3dy .. 3dy+2) of a 3 x 3 window: the product of three entries.
Eigen::MatrixXd on_lines(const Eigen::MatrixXd& M, int n, int k, bool columns) {
  const long in = static_cast<long>(std::pow(k, 9)), out = static_cast<long>(std::pow(n, 9));
  Eigen::MatrixXd A(out, in);
  const auto digits = [](long e, int base) {
    std::array<int, 9> v{};
    for (int p = 8; p >= 0; --p, e /= base) v[p] = static_cast<int>(e % base);
    return v;
  };
  const auto line = [&](const std::array<int, 9>& v, int base, int i) {
    const int p0 = columns ? i : 3 * i, step = columns ? 3 : 1;
    return (v[p0] * base + v[p0 + step]) * base + v[p0 + 2 * step];
  };
  for (long o = 0; o < out; ++o)
    for (long c = 0; c < in; ++c) {
      const auto vo = digits(o, n), vc = digits(c, k);
      A(o, c) = M(line(vo, n, 0), line(vc, k, 0)) * M(line(vo, n, 1), line(vc, k, 1)) *
                M(line(vo, n, 2), line(vc, k, 2));
    }
  return A;
}

// D_l assembled from 1D matrices: the mean over the four children of (rows of parity px)
// after (columns of parity py).
Eigen::MatrixXd kronecker_map(const GridModel& m, int l) {
  const int d = m.lattice.chi[l], mid = m.lattice.intermediate_chi(l), K = m.lattice.chi[l + 1];
  const auto cy = child_maps(m.layers[l].y.line(0)), rx = child_maps(m.layers[l].x.line(0));
  Eigen::MatrixXd D = Eigen::MatrixXd::Zero(static_cast<long>(std::pow(d, 9)), static_cast<long>(std::pow(K, 9)));
  for (int py = 0; py < 2; ++py)
    for (int px = 0; px < 2; ++px)
      D += 0.25 * on_lines(rx[px], d, mid, false) * on_lines(cy[py], mid, K, true);
  return D;
}

std::vector<double> magnitudes(const Eigen::MatrixXd& D, int count, double power) {
  const Eigen::VectorXcd mu = Eigen::EigenSolver<Eigen::MatrixXd>(D, false).eigenvalues();
  std::vector<double> v;
  for (long i = 0; i < mu.size(); ++i) v.push_back(std::pow(std::abs(mu[i]), power));
  std::sort(v.begin(), v.end(), std::greater<>());
  v.resize(static_cast<std::size_t>(count));
  return v;
}

TEST(GridEvaluate, SpectrumEqualsKroneckerConstructionDenseAndIterative) {
  const GridLattice g{12, 12, {2, 2, 2}};
  const GridModel m = initialize_grid_model(g, true, InitKind::kDecimation, 0.3, 9);
  const int count = 6;
  // On every rank: each map is solved by one rank and broadcast.
  const Comm comm(MPI_COMM_WORLD);
  const ScalingSpectra dense = grid_scaling_dimensions(comm, m, count, EigenMethod::kDense);
  const ScalingSpectra iterative = grid_scaling_dimensions(comm, m, count, EigenMethod::kIterative);
  const ScalingSpectra automatic = grid_scaling_dimensions(comm, m, count, EigenMethod::kAuto);
  // Auto with one iteration allowed cannot converge (it needs five steady ones) and must
  // fall back to the dense solve.
  const ScalingSpectra fallback = grid_scaling_dimensions(comm, m, count, EigenMethod::kAuto, 1);
  ASSERT_EQ(dense.per_layer.size(), 2u);
  ASSERT_EQ(iterative.per_layer.size(), 2u);
  const Eigen::MatrixXd D0 = kronecker_map(m, 0), D1 = kronecker_map(m, 1);
  const std::vector<std::pair<std::vector<double>, std::vector<const Spectrum*>>> cases = {
      {magnitudes(D0, count, 1), {&dense.per_layer[0], &iterative.per_layer[0], &automatic.per_layer[0], &fallback.per_layer[0]}},
      {magnitudes(D1, count, 1), {&dense.per_layer[1], &iterative.per_layer[1], &automatic.per_layer[1], &fallback.per_layer[1]}},
      {magnitudes(D0 * D1, count, 0.5), {&dense.averaged, &iterative.averaged, &automatic.averaged, &fallback.averaged}}};
  for (const auto& [want, got] : cases)
    for (const Spectrum* s : got) {
      ASSERT_EQ(s->magnitude.size(), static_cast<std::size_t>(count));
      EXPECT_NEAR(s->magnitude[0], 1.0, 1e-10);  // normalization
      EXPECT_NEAR(s->phase[0], 0.0, 1e-10);
      for (int k = 0; k < count; ++k) {
        EXPECT_NEAR(s->magnitude[k], want[k], 1e-9) << "k=" << k;
        EXPECT_NEAR(s->delta[k], -std::log2(want[k]), 1e-6) << "k=" << k;
      }
    }
  EXPECT_EQ(dense.averaged.layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(fallback.averaged.magnitude, dense.averaged.magnitude);  // the dense solve itself
  // The first nontrivial eigenvalue is well inside the unit disc and nonzero: the test
  // compares a genuine spectrum, not a rank-1 map.
  EXPECT_GT(dense.per_layer[0].magnitude[1], 1e-3);
  EXPECT_LT(dense.per_layer[0].magnitude[1], 0.999);
  // The JSON carries the chain's scaling keys.
  const nlohmann::json j = scaling_json(dense);
  EXPECT_EQ(j["layers"], nlohmann::json({0, 1}));
  EXPECT_EQ(j["per_layer"].size(), 2u);
  EXPECT_EQ(j["lambda"][1].get<double>(), dense.averaged.magnitude[1]);
}

TEST(GridEvaluate, JsonHasEveryKey) {
  GridEvaluation ev;
  ev.kl_per_window = 0.25;
  ev.kl_floor_pooled = 1e-5;
  ev.corr_y = {{1, 2}, {0.5, 0.25}, {0.4, 0.2}};
  const GridModel m = product_model(GridLattice{6, 6, {2, 2}});
  const auto flow = grid_layer_flow(m);
  const ScalingSpectra s = grid_scaling_dimensions(Comm(MPI_COMM_SELF), m, 2);
  const nlohmann::json j = grid_evaluation_json(ev, flow, &s);
  for (const char* key : {"kl_per_window", "cross_entropy_per_window", "data_entropy_per_window",
                          "kl_pooled_window", "kl_floor", "corr_x", "corr_y", "corr_diag", "flow", "scaling"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["kl_per_window"].get<double>(), 0.25);
  EXPECT_EQ(j["kl_floor"]["pooled"].get<double>(), 1e-5);
  EXPECT_EQ(j["corr_y"]["model"], nlohmann::json({0.5, 0.25}));
  EXPECT_EQ(j["corr_y"]["data"], nlohmann::json({0.4, 0.2}));
  EXPECT_EQ(j["flow"].size(), 2u);
  EXPECT_EQ(j["flow"][0]["nn_corr_x"].get<double>(), flow[0].nn_corr_x);
  EXPECT_FALSE(grid_evaluation_json(ev, flow, nullptr).contains("scaling"));
}

}  // namespace
}  // namespace cmera
