// Long-range and flow diagnostics of `cmera eval` against brute-force enumeration of the
// full joint (brute_force.hpp), at whatever rank count ctest runs: the model's C(r) for
// every r (pair cones split over ranks), pair log-likelihoods with the pair sites split
// over ranks, the per-layer flow (marginal, neighbour mutual information), and the
// ascending-map spectrum, whose maps the test rebuilds from brute-force descents of
// point-mass coarse windows. Brute force limits these to N <= 16; beyond it, the
// factorized C(r) is held to the plain one-cone-per-pair reference (N up to 128, pairs
// meeting at every layer) and the data's C(r) (power spectrum) to direct sums, exactly.
#include <gtest/gtest.h>
#include <mpi.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <complex>
#include <filesystem>
#include <random>

#include "brute_force.hpp"
#include "ising_data.hpp"
#include "model_cases.hpp"
#include "cmera/comm.hpp"
#include "cmera/correlation.hpp"
#include "cmera/error.hpp"
#include "cmera/evaluate.hpp"
#include "cmera/io.hpp"
#include "cmera/siteset.hpp"
#include "cmera/pair_terms.hpp"
#include "cmera/statistics.hpp"

namespace cmera {
namespace {

constexpr double kTol = 1e-12;

using Case = testing::ModelCase;
using testing::random_model;

std::vector<Case> cases() {
  return {{16, {2, 2, 2}, true}, {16, {2, 2, 2}, false}, {12, {2, 2}, true},
          {12, {2, 3}, false},   {8, {3, 2}, true},      {16, {2, 2, 3}, true}};
}

// <s_i s_i+r> averaged over i from the brute-force joint of layer 0.
double brute_correlation(const brute::Dense& joint, long n, int d, long r) {
  double c = 0;
  for (long i = 0; i < n; ++i) {
    const std::vector<double> p = brute::marginalize(joint, {i, (i + r) % n});
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) c += p[a * d + b] * spin_value(a, d) * spin_value(b, d);
  }
  return c / static_cast<double>(n);
}

TEST(Flow, ModelCorrelationAtEveryDistanceMatchesBruteForce) {
  const Comm comm(MPI_COMM_WORLD);
  std::uint64_t seed = 500;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const auto joints = brute::layer_joints(m);
    const std::vector<double> corr = model_correlation(comm, m, c.sites - 1);
    ASSERT_EQ(corr.size(), static_cast<std::size_t>(c.sites - 1));
    for (long r = 1; r < c.sites; ++r)
      EXPECT_NEAR(corr[r - 1], brute_correlation(joints[0], c.sites, c.chi[0], r), kTol)
          << "N=" << c.sites << " r=" << r << " ranks=" << comm.size();
  }
}

// Deep cones, so pairs meet at every layer up to the top; alphabet 3; the full range of r
// and a short one (whose partners do not wrap). Ranks split the reference's distances.
TEST(Flow, ModelCorrelationEqualsOneConePerPair) {
  const Comm comm(MPI_COMM_WORLD);
  std::uint64_t seed = 550;
  const std::vector<Case> big = {{64, {2, 3, 3, 3}, false},
                                 {96, {3, 2, 2, 2, 2}, true},
                                 {128, {2, 2, 2, 2, 2, 2}, true},
                                 {64, {2, 4, 4, 4, 4}, true}};
  for (const Case& c : big) {
    const Model m = random_model(c, seed++);
    for (long max_r : {c.sites - 1, 7L}) {
      const std::vector<double> corr = model_correlation(comm, m, max_r);
      ASSERT_EQ(corr.size(), static_cast<std::size_t>(max_r));
      for (long r = 1 + comm.rank(); r <= max_r; r += comm.size()) {
        const double want = testing::correlation_one_cone_per_pair(m, r);
        EXPECT_NEAR(corr[r - 1], want, 1e-13 * std::max(1.0, std::abs(want)))
            << testing::label(c) << " r=" << r << " R=" << max_r << " ranks=" << comm.size();
      }
    }
  }
}

// Random data (every rank draws the same), written collectively; sample chunks smaller
// than a rank's block, so some ranks make empty reads. Equality is exact: the power
// spectrum's sums are rounded back to the integers the direct sums give.
TEST(Flow, DataCorrelationEqualsDirectSums) {
  const Comm comm(MPI_COMM_WORLD);
  const std::string dir = testing::scratch_dir(comm, "data-corr");
  for (int alphabet : {2, 3})
    for (long n : {48L, 50L, 64L}) {  // 50: the transforms' generic (not 4k) path
      const long samples = 37;
      std::mt19937_64 rng(static_cast<std::uint64_t>(alphabet * 1000 + n));
      std::vector<std::uint8_t> all(static_cast<std::size_t>(samples * n));
      for (auto& x : all) x = static_cast<std::uint8_t>(rng() % static_cast<std::uint64_t>(alphabet));
      const BlockPartition rows{samples, comm.size()};
      const long first = rows.begin(comm.rank());
      const std::vector<std::uint8_t> mine(all.begin() + first * n, all.begin() + rows.end(comm.rank()) * n);
      const std::string path = dir + "/random_" + std::to_string(alphabet) + "_" + std::to_string(n) + ".h5";
      write_dataset(comm, path, samples, n, alphabet, first, mine, {});
      const DatasetReader reader(comm, path);
      for (long chunk : {5L, 64L}) {
        const std::vector<double> got = data_correlation(comm, reader, alphabet, n - 1, chunk);
        ASSERT_EQ(got.size(), static_cast<std::size_t>(n - 1));
        for (long r = 1; r < n; ++r) {
          double sum = 0;
          for (long k = 0; k < samples; ++k)
            for (long i = 0; i < n; ++i)
              sum += spin_value(all[k * n + i], alphabet) * spin_value(all[k * n + (i + r) % n], alphabet);
          EXPECT_EQ(got[r - 1], sum / (static_cast<double>(n) * static_cast<double>(samples)))
              << "alphabet " << alphabet << " N=" << n << " r=" << r << " chunk " << chunk;
        }
      }
    }
  if (comm.is_root()) std::filesystem::remove_all(dir);
}

// Every rank takes its block of left sites i; the sum over ranks of the pair terms'
// log-likelihood equals sum_{r,i} sum_x q log p with p from brute force.
TEST(Flow, PairLikelihoodSplitOverRanksMatchesBruteForce) {
  const Comm comm(MPI_COMM_WORLD);
  std::uint64_t seed = 600;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const auto joints = brute::layer_joints(m);
    const int d = c.chi[0];
    PairStats stats;
    stats.d = d;
    stats.distances = {1, 3, c.sites / 2, c.sites - 1};
    const BlockPartition part{c.sites, comm.size()};
    for (long i = part.begin(comm.rank()); i < part.end(comm.rank()); ++i) stats.sites.push_back(i);
    // Any positive q will do: a fixed distribution that differs per pair and value.
    auto q_of = [d](long r, long i, int x) {
      return (1.0 + static_cast<double>((r * 7 + i * 3 + x) % 5)) / (d * d * 5.0);
    };
    for (long r : stats.distances)
      for (long i : stats.sites)
        for (int x = 0; x < d * d; ++x) stats.q.push_back(q_of(r, i, x));
    PairTerms terms(m.geometry, stats, 0.5);
    const double got = comm.sum(terms.log_likelihood(m));
    double want = 0;
    for (long r : stats.distances)
      for (long i = 0; i < c.sites; ++i) {
        const std::vector<double> p = brute::marginalize(joints[0], {i, (i + r) % c.sites});
        for (int x = 0; x < d * d; ++x) want += 0.5 * q_of(r, i, x) * std::log(p[x]);
      }
    EXPECT_NEAR(got, want, 1e-10 * std::abs(want)) << "N=" << c.sites << " ranks=" << comm.size();
  }
}

TEST(Flow, LayerMarginalsAndMutualInformationMatchBruteForce) {
  std::uint64_t seed = 700;
  for (const Case& c : cases()) {
    const Model m = random_model(c, seed++);
    const auto joints = brute::layer_joints(m);
    const std::vector<LayerFlow> flow = layer_flow(m);
    ASSERT_EQ(flow.size(), static_cast<std::size_t>(m.depth() + 1));
    for (int l = 0; l <= m.depth(); ++l) {
      const long n = m.geometry.sites_at(l);
      const int d = m.geometry.chi[l];
      std::vector<double> marginal(d, 0.0);
      double mi = 0;
      for (long i = 0; i < n; ++i) {
        const std::vector<double> pi = brute::marginalize(joints[l], {i});
        const std::vector<double> pj = brute::marginalize(joints[l], {(i + 1) % n});
        const std::vector<double> pij = brute::marginalize(joints[l], {i, (i + 1) % n});
        for (int a = 0; a < d; ++a) {
          marginal[a] += pi[a] / static_cast<double>(n);
          for (int b = 0; b < d; ++b)
            mi += pij[a * d + b] * std::log(pij[a * d + b] / (pi[a] * pj[b])) /
                  static_cast<double>(n);
        }
      }
      EXPECT_EQ(flow[l].layer, l);
      for (int a = 0; a < d; ++a) EXPECT_NEAR(flow[l].marginal[a], marginal[a], kTol);
      EXPECT_NEAR(flow[l].mutual_information, mi, kTol) << "layer " << l;
      EXPECT_GT(flow[l].mutual_information, 0.0);
    }
  }
}

// D_l from brute force: a depth-1 model with layer l's tables and a point-mass top on
// coarse window k; column k is the mean of the fine windows (1,2,3) and (2,3,4), the two
// children of coarse window 0.
Eigen::MatrixXd brute_layer_map(const Model& m, int l) {
  const int d = m.geometry.chi[l], K = m.geometry.chi[l + 1];
  Model one = Model::uniform(Geometry{6, {d, K}}, true);
  one.tables.layers[0] = m.tables.layers[l];
  one.tables.layers[0].coarse = 3;
  const long in = static_cast<long>(K) * K * K, out = static_cast<long>(d) * d * d;
  Eigen::MatrixXd D(out, in);
  for (long k = 0; k < in; ++k) {
    std::fill(one.tables.top.begin(), one.tables.top.end(), 0.0);
    one.tables.top[k] = 1;
    const brute::Dense fine = brute::layer_joints(one)[0];
    const std::vector<double> odd = brute::marginalize(fine, {1, 2, 3});
    const std::vector<double> even = brute::marginalize(fine, {2, 3, 4});
    for (long x = 0; x < out; ++x) D(x, k) = 0.5 * (odd[x] + even[x]);
  }
  return D;
}

std::vector<double> sorted_magnitudes(const Eigen::MatrixXd& D, double power) {
  const Eigen::VectorXcd mu = Eigen::EigenSolver<Eigen::MatrixXd>(D, false).eigenvalues();
  std::vector<double> v;
  for (const auto& z : mu) v.push_back(std::pow(std::abs(z), power));
  std::sort(v.rbegin(), v.rend());
  return v;
}

TEST(Flow, ScalingSpectrumMatchesBruteForceMaps) {
  std::uint64_t seed = 800;
  for (const Case& c : cases()) {
    if (!c.tied) continue;
    const Model m = random_model(c, seed++);
    const ScalingSpectra s = scaling_dimensions(m, 27);
    Eigen::MatrixXd composed;
    std::size_t k = 0;
    for (int l = 0; l < m.depth(); ++l) {
      if (c.chi[l] != c.chi[l + 1]) continue;
      const Eigen::MatrixXd D = brute_layer_map(m, l);
      const std::vector<double> want = sorted_magnitudes(D, 1.0);
      ASSERT_LT(k, s.per_layer.size());
      EXPECT_EQ(s.per_layer[k].layers, std::vector<int>{l});
      ASSERT_EQ(s.per_layer[k].magnitude.size(), want.size());
      EXPECT_NEAR(want[0], 1.0, 1e-12);  // normalization
      for (std::size_t i = 0; i < want.size(); ++i) {
        EXPECT_NEAR(s.per_layer[k].magnitude[i], want[i], 1e-9) << "layer " << l << " i " << i;
        EXPECT_NEAR(s.per_layer[k].delta[i], -std::log2(want[i]),
                    1e-6 * (1 + std::abs(std::log2(want[i]))));
      }
      composed = (k == 0) ? D : Eigen::MatrixXd(composed * D);
      ++k;
    }
    EXPECT_EQ(k, s.per_layer.size());
    // `averaged` composes the top-most run of square layers: all of them, or none here.
    if (k != static_cast<std::size_t>(m.depth())) {
      EXPECT_TRUE(s.averaged.layers.empty());
      continue;
    }
    const std::vector<double> want = sorted_magnitudes(composed, 1.0 / static_cast<double>(k));
    ASSERT_EQ(s.averaged.magnitude.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(s.averaged.magnitude[i], want[i], 1e-9) << "averaged i " << i;
  }
}

TEST(Flow, ScalingRefusesUntiedModels) {
  const Model m = random_model({16, {2, 2, 2}, false}, 1);
  EXPECT_THROW(scaling_dimensions(m, 8), Error);
}

}  // namespace
}  // namespace cmera
