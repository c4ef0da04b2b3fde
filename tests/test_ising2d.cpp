// The 2D Ising generator (ising2d.hpp) against exact results. First the references
// themselves: Kaufman's finite-torus energy against a transfer-matrix computation of
// the same lattices, and against Onsager's infinite-lattice energy for large L. Then
// Swendsen-Wang samples at L = 64: energy per site against Kaufman's exact L = 64 value
// at beta = 0.3, beta_c, 0.6 (at beta_c the finite-size shift from Onsager's value is
// -0.0097, about ten standard errors, so the infinite-lattice value would be the wrong
// reference), and <|m|> at beta = 0.6 against Yang's spontaneous magnetization, whose
// finite-size correction is of order exp(-L / xi), xi = 1 / (2 (2K + ln tanh K)) = 0.86
// there, i.e. below 1e-30.
// Standard errors come from blocks of 10 consecutive samples of one chain (100 sweeps,
// many autocorrelation times), and blocks of different chains are independent. The
// seeds are fixed, so each 3-SE check has a fixed outcome; a fresh seed would fail one
// of the four with probability ~1%. Finally chain-partition independence (what makes
// the file the same at any rank count) and the file layouts.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/error.hpp"
#include "cmera/io.hpp"
#include "cmera/ising2d.hpp"
#include "hdf5_attrs.hpp"

namespace {

namespace ising = cmera::ising2d;

// ln Z and <E>/N (E = -sum_bonds s_i s_j) of the periodic L x L lattice by the row
// transfer matrix: Z = Tr T^L, T[a][b] = exp(K (h(a) + v(a, b))) over row states a, b.
// d ln Z / dK by a fourth-order central difference (error < 1e-10 here).
double log_z_transfer(double K, int L) {
  const int states = 1 << L;
  auto spin = [](int a, int x) { return ((a >> x) & 1) ? 1 : -1; };
  std::vector<double> T(static_cast<std::size_t>(states * states));
  for (int a = 0; a < states; ++a)
    for (int b = 0; b < states; ++b) {
      int bonds = 0;
      for (int x = 0; x < L; ++x)
        bonds += spin(a, x) * spin(a, (x + 1) % L) + spin(a, x) * spin(b, x);
      T[a * states + b] = std::exp(K * bonds);
    }
  // P = T^L, renormalized after each product to stay in range.
  std::vector<double> P = T, Q(T.size());
  double log_scale = 0;
  for (int step = 1; step < L; ++step) {
    double biggest = 0;
    for (int a = 0; a < states; ++a)
      for (int b = 0; b < states; ++b) {
        double s = 0;
        for (int c = 0; c < states; ++c) s += P[a * states + c] * T[c * states + b];
        Q[a * states + b] = s;
        biggest = std::max(biggest, s);
      }
    for (double& q : Q) q /= biggest;
    log_scale += std::log(biggest);
    std::swap(P, Q);
  }
  double trace = 0;
  for (int a = 0; a < states; ++a) trace += P[a * states + a];
  return std::log(trace) + log_scale;
}

double energy_transfer(double K, int L) {
  const double h = 2e-4;
  const double d = (8 * (log_z_transfer(K + h, L) - log_z_transfer(K - h, L)) -
                    (log_z_transfer(K + 2 * h, L) - log_z_transfer(K - 2 * h, L))) /
                   (12 * h);
  return -d / (L * L);
}

TEST(Ising2dExact, KaufmanMatchesTransferMatrix) {
  for (int L = 2; L <= 7; ++L)
    for (double beta : {0.1, 0.3, ising::kBetaCritical, 0.5, 0.8})
      EXPECT_NEAR(ising::kaufman_energy_per_site(beta, L), energy_transfer(beta, L), 1e-9)
          << "L = " << L << ", beta = " << beta;
}

TEST(Ising2dExact, KaufmanApproachesOnsager) {
  // Off criticality the finite torus differs from the infinite lattice by ~exp(-L/xi).
  for (double beta : {0.1, 0.3, 0.6, 1.0})
    EXPECT_NEAR(ising::kaufman_energy_per_site(beta, 512), ising::onsager_energy_per_site(beta),
                1e-12)
        << "beta = " << beta;
  // At beta_c the shift is O(1/L) and shrinks as L doubles.
  const double e_c = ising::onsager_energy_per_site(ising::kBetaCritical);
  EXPECT_NEAR(e_c, -std::numbers::sqrt2, 1e-12);
  const double shift64 = ising::kaufman_energy_per_site(ising::kBetaCritical, 64) - e_c;
  const double shift128 = ising::kaufman_energy_per_site(ising::kBetaCritical, 128) - e_c;
  // The value the sampling test uses, against the same formula in 40-digit arithmetic
  // (mpmath): the double-precision evaluation loses nothing that matters.
  EXPECT_NEAR(ising::kaufman_energy_per_site(ising::kBetaCritical, 64), -1.4239383898330109,
              1e-13);
  EXPECT_LT(shift64, 0);
  EXPECT_NEAR(shift128 / shift64, 0.5, 0.05);
  std::printf("  beta_c: Kaufman(64) - Onsager = %.6f, Kaufman(128) - Onsager = %.6f\n", shift64,
              shift128);
  // High-temperature series, t = tanh K: ln Z / N = ln 2 + 2 ln cosh K + t^4 + 2 t^6 + ...
  // (one plaquette and two 1 x 2 rectangles per site), so e = -2t - 4t^3 (1 - t^2) - O(t^5).
  const double t = std::tanh(1e-3);
  EXPECT_NEAR(ising::onsager_energy_per_site(1e-3), -2 * t - 4 * t * t * t * (1 - t * t), 1e-13);
}

TEST(Ising2dExact, SpontaneousMagnetization) {
  EXPECT_EQ(ising::spontaneous_magnetization(0.3), 0.0);
  EXPECT_EQ(ising::spontaneous_magnetization(ising::kBetaCritical), 0.0);
  EXPECT_NEAR(ising::spontaneous_magnetization(0.6), 0.9736087, 1e-6);
  EXPECT_NEAR(ising::spontaneous_magnetization(5.0), 1.0, 1e-12);
}

// Mean and blocked standard error of f over the samples, blocks of `block` consecutive
// samples within one chain (chain c holds rows [P.begin(c), P.end(c)), in time order).
struct Estimate {
  double mean = 0, se = 0;
};

template <class F>
Estimate blocked(const ising::Params& p, const std::vector<std::uint8_t>& data, long block, F f) {
  const cmera::BlockPartition rows = ising::rows_of_chains(p);
  const long n = p.size * p.size;
  std::vector<double> means;
  for (int c = 0; c < p.chains; ++c)
    for (long r = rows.begin(c); r + block <= rows.end(c); r += block) {
      double s = 0;
      for (long k = r; k < r + block; ++k) s += f(data.data() + k * n);
      means.push_back(s / block);
    }
  double mean = 0, var = 0;
  for (double m : means) mean += m;
  mean /= static_cast<double>(means.size());
  for (double m : means) var += (m - mean) * (m - mean);
  var /= static_cast<double>(means.size() - 1);
  return {mean, std::sqrt(var / static_cast<double>(means.size()))};
}

ising::Params sampling_params(double beta, std::uint64_t seed) {
  ising::Params p;
  p.size = 64;
  p.beta = beta;
  p.samples = 3200;
  p.chains = 16;  // 200 samples per chain: 20 blocks of 10
  p.seed = seed;
  return ising::resolved(p);
}

std::vector<std::uint8_t> run_all(const ising::Params& p) {
  std::vector<std::uint8_t> data(static_cast<std::size_t>(p.samples * p.size * p.size));
  ising::run_chains(p, 0, p.chains, data.data());
  return data;
}

TEST(Ising2dSampling, EnergyAndMagnetizationMatchExactResults) {
  const std::uint64_t seed = 2024;
  for (double beta : {0.3, ising::kBetaCritical, 0.6}) {
    const auto p = sampling_params(beta, seed);
    const auto start = std::chrono::steady_clock::now();
    const auto data = run_all(p);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const long L = p.size;
    for (std::uint8_t x : data) ASSERT_LE(x, 1);
    const Estimate e =
        blocked(p, data, 10, [&](const std::uint8_t* x) { return ising::energy_per_site(x, L); });
    const double exact = ising::kaufman_energy_per_site(beta, L);
    std::printf("  beta %.6f: e = %.6f +- %.6f, Kaufman(L=64) %.6f (%+.2f SE), Onsager %.6f; "
                "%.1f s\n",
                beta, e.mean, e.se, exact, (e.mean - exact) / e.se,
                ising::onsager_energy_per_site(beta), seconds);
    EXPECT_LT(std::abs(e.mean - exact), 3 * e.se) << "beta = " << beta;
    if (beta == 0.6) {
      const Estimate m = blocked(p, data, 10, [&](const std::uint8_t* x) {
        return std::abs(ising::magnetization(x, L));
      });
      const double yang = ising::spontaneous_magnetization(beta);
      std::printf("  beta %.6f: <|m|> = %.6f +- %.6f, Yang %.6f (%+.2f SE)\n", beta, m.mean, m.se,
                  yang, (m.mean - yang) / m.se);
      EXPECT_LT(std::abs(m.mean - yang), 3 * m.se);
    }
  }
}

ising::Params small_params(std::uint64_t seed) {
  ising::Params p;
  p.size = 12;
  p.beta = ising::kBetaCritical;
  p.samples = 53;
  p.chains = 7;  // uneven: 7 or 8 samples per chain
  p.thermalization = 20;
  p.sweeps_between = 3;
  p.seed = seed;
  return ising::resolved(p);
}

TEST(Ising2dSampling, OutputIndependentOfChainPartition) {
  const auto p = small_params(5);
  const auto whole = run_all(p);
  const long n = p.size * p.size;
  const cmera::BlockPartition rows = ising::rows_of_chains(p);
  // Chains [0, 3) and [3, 7) in separate calls, as two ranks would run them.
  std::vector<std::uint8_t> split(whole.size());
  ising::run_chains(p, 0, 3, split.data());
  ising::run_chains(p, 3, 7, split.data() + rows.begin(3) * n);
  EXPECT_EQ(whole, split);
  // Chain by chain, as seven ranks would.
  std::vector<std::uint8_t> single(whole.size());
  for (int c = 0; c < p.chains; ++c)
    ising::run_chains(p, c, c + 1, single.data() + rows.begin(c) * n);
  EXPECT_EQ(whole, single);
  EXPECT_NE(whole, run_all(small_params(6)));
}

TEST(Ising2dSampling, SamplesOfAChainFollowTheSchedule) {
  // Sample j of a chain is taken after thermalization + j * sweeps_between sweeps, so a
  // chain with more thermalization reproduces the later samples of a shorter one.
  auto p = small_params(9);
  const auto base = run_all(p);
  p.thermalization += p.sweeps_between;
  const auto later = run_all(p);
  const long n = p.size * p.size;
  const cmera::BlockPartition rows = ising::rows_of_chains(p);
  for (int c = 0; c < p.chains; ++c)
    for (long r = rows.begin(c); r + 1 < rows.end(c); ++r)
      EXPECT_TRUE(std::equal(base.begin() + (r + 1) * n, base.begin() + (r + 2) * n,
                             later.begin() + r * n))
          << "chain " << c << ", row " << r;
}

TEST(Ising2dOptions, ParseAndValidate) {
  EXPECT_EQ(ising::parse_beta("critical"), ising::kBetaCritical);
  EXPECT_EQ(ising::parse_beta("0.25"), 0.25);
  for (const char* bad : {"", "abc", "0", "-0.3", "0.3x", "nan", "inf"})
    EXPECT_THROW(ising::parse_beta(bad), cmera::Error) << "'" << bad << "'";
  ising::Params p;
  p.size = 8;
  p.beta = 0.4;
  p.samples = 10;
  EXPECT_EQ(ising::resolved(p).chains, 10);
  p.samples = 1000;
  EXPECT_EQ(ising::resolved(p).chains, ising::kDefaultMaxChains);
  auto bad = [&](auto change) {
    ising::Params q = p;
    change(q);
    EXPECT_THROW(ising::resolved(q), cmera::Error);
  };
  bad([](ising::Params& q) { q.size = 1; });
  bad([](ising::Params& q) { q.samples = 0; });
  bad([](ising::Params& q) { q.chains = 1001; });
  bad([](ising::Params& q) { q.chains = -1; });
  bad([](ising::Params& q) { q.sweeps_between = 0; });
  bad([](ising::Params& q) { q.thermalization = -1; });
  bad([](ising::Params& q) { q.beta = -1; });
}

TEST(Ising2dFile, GenerateWritesBothLayouts) {
  const cmera::Comm comm(MPI_COMM_WORLD);
  const auto p = small_params(3);
  const auto expected = run_all(p);
  const auto dir = std::filesystem::temp_directory_path();
  const std::string cube = (dir / "cmera_test_ising2d.h5").string();
  const std::string rows = (dir / "cmera_test_ising2d_rows.h5").string();
  ising::generate(comm, p, cube, false, "test");
  ising::generate(comm, p, rows, true, "test");

  // [S, L, L] with alphabet 2 and the dataset kind, read back with plain HDF5.
  const hid_t file = H5Fopen(cube.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  EXPECT_EQ(fixed_string_attr(file, "cmera_kind"), "dataset");
  EXPECT_NE(fixed_string_attr(file, "parameters").find("generator = \"ising2d\""),
            std::string::npos);
  const hid_t dset = H5Dopen2(file, "configs", H5P_DEFAULT);
  const hid_t space = H5Dget_space(dset);
  hsize_t dims[3] = {};
  ASSERT_EQ(H5Sget_simple_extent_ndims(space), 3);
  H5Sget_simple_extent_dims(space, dims, nullptr);
  EXPECT_EQ(dims[0], static_cast<hsize_t>(p.samples));
  EXPECT_EQ(dims[1], static_cast<hsize_t>(p.size));
  EXPECT_EQ(dims[2], static_cast<hsize_t>(p.size));
  int alphabet = 0;
  const hid_t attr = H5Aopen(dset, "alphabet", H5P_DEFAULT);
  H5Aread(attr, H5T_NATIVE_INT, &alphabet);
  EXPECT_EQ(alphabet, 2);
  std::vector<std::uint8_t> got(expected.size());
  H5Dread(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, got.data());
  EXPECT_EQ(got, expected);
  H5Aclose(attr);
  H5Sclose(space);
  H5Dclose(dset);
  H5Fclose(file);

  // Rows layout: the dataset format the rest of cmera reads, [S * L, L].
  {
    cmera::DatasetReader reader(comm, rows);
    EXPECT_EQ(reader.shape().samples, p.samples * p.size);
    EXPECT_EQ(reader.shape().sites, p.size);
    EXPECT_EQ(reader.shape().alphabet, 2);
    std::vector<std::uint8_t> flat;
    reader.read(0, p.samples * p.size, cmera::CyclicRange::make(0, p.size, p.size), flat);
    EXPECT_EQ(flat, expected);
  }
  std::filesystem::remove(cube);
  std::filesystem::remove(rows);
}

}  // namespace
