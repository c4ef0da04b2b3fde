// The grid objective over a rank grid (grid_objective.hpp, docs/design-grid.md §5) at the
// current rank count and several forced rank layouts: the regions equal the cones found
// window by window with the lattice's own rule (grid_window_cone); lattice datasets read
// back as periodic boxes (contiguous and chunked); the statistics equal brute-force
// counting; objective, KL and every gradient entry equal the single-process GridSweep on
// the whole lattice to 1e-12, with pair terms to 1e-11, and are bitwise the same at 1 and 2
// threads; bad datasets are refused with one clear message.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/error.hpp"
#include "cmera/grid.hpp"
#include "cmera/grid_decomposition.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/grid_objective.hpp"
#include "cmera/grid_pairs.hpp"
#include "cmera/grid_sampler.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/io.hpp"
#include "scratch_dir.hpp"

namespace cmera::grid {
namespace {

namespace fs = std::filesystem;

struct Case {
  long lx, ly;
  std::vector<int> chi;
  bool tied;
};

std::string label(const Case& c) {
  return fmt::format("{}x{} chi [{}] {}", c.lx, c.ly, fmt::join(c.chi, ","),
                     c.tied ? "tied" : "untied");
}

// Depth 2 binary (tied and untied, a square and an oblong grid) and depth 1 with a
// ternary alphabet (chi_0^9 cells that are not a power of two).
const std::vector<Case> kCases = {{12, 12, {2, 2, 2}, true},
                                  {12, 12, {2, 2, 2}, false},
                                  {16, 12, {2, 2, 2}, false},
                                  {6, 6, {3, 2}, true}};

GridModel model_of(const Case& c, std::uint64_t seed) {
  return initialize_grid_model(GridLattice{c.lx, c.ly, c.chi}, c.tied, InitKind::kRandom, 1.0,
                               seed);
}

// Every table entry of a grid model, in a fixed order.
std::vector<double> entries(const GridModel& m) {
  std::vector<double> out;
  for (const GridLayerTables& l : m.layers)
    for (const LineTables* dir : {&l.y, &l.x})
      for (const LayerTables& t : dir->lines) {
        out.insert(out.end(), t.W.begin(), t.W.end());
        out.insert(out.end(), t.U.begin(), t.U.end());
      }
  out.insert(out.end(), m.top.begin(), m.top.end());
  return out;
}

// The layouts to try at this rank count: every forced px x py that fits (px * py = ranks,
// at most one rank per window column and row) and, if there is one, the chosen one (0, 0).
std::vector<std::pair<int, int>> layouts(int ranks, const GridLattice& g) {
  std::vector<std::pair<int, int>> out;
  for (int px = 1; px <= ranks; ++px)
    if (ranks % px == 0 && px <= g.lx && ranks / px <= g.ly) out.emplace_back(px, ranks / px);
  if (!out.empty()) out.insert(out.begin(), {0, 0});
  return out;
}

class GridObjectiveTest : public ::testing::Test {
 protected:
  std::string file(const std::string& name) const { return scratch.file(name); }

  // S samples of `source` (every rank draws all of them: streams are per sample).
  static std::vector<std::uint8_t> draw(const GridModel& source, long S) {
    const GridSampler sampler(source);
    const long n = source.lattice.sites_at(0);
    std::vector<std::uint8_t> all(static_cast<std::size_t>(S * n));
    for (long k = 0; k < S; ++k) sampler.draw(7, static_cast<std::uint64_t>(k), all.data() + k * n);
    return all;
  }

  // A [S, dims...] dataset of `all`, each rank writing its block of samples.
  void write(const std::string& path, const std::vector<std::uint8_t>& all, long S,
             const std::vector<long>& dims, int alphabet) const {
    const long n = static_cast<long>(all.size()) / S;
    const BlockPartition rows{S, comm.size()};
    const long first = rows.begin(comm.rank()), mine = rows.count(comm.rank());
    const std::vector<std::uint8_t> block(all.begin() + first * n, all.begin() + (first + mine) * n);
    write_dataset(comm, path, S, dims, alphabet, first, block, {{"source", "unit test"}});
  }

  Comm comm;
  cmera::testing::ScratchDir scratch{comm, "gridobj"};
};

// The error text of f() (which must throw cmera::Error).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no cmera::Error)";
}

// Owned blocks tile the bottom layer exactly once over the ranks, and each layer's region
// is exactly the set of coarse windows that the windows of the layer below reach through
// grid_window_cone (not a superset). Pure index arithmetic, so every rank count and layout
// up to 8 ranks is checked on every process.
TEST_F(GridObjectiveTest, RegionsAreExactlyTheCones_mpi) {
  for (const GridLattice& g : {GridLattice{12, 12, {2, 2, 2}}, GridLattice{16, 12, {2, 2, 2}},
                               GridLattice{6, 6, {3, 2}}, GridLattice{24, 12, {2, 2, 2, 2}}})
    for (int ranks = 1; ranks <= 8; ++ranks)
      for (const auto& [px, py] : layouts(ranks, g)) {
        const std::string what = fmt::format("{}x{} depth {} at {} ranks as {} x {}", g.lx, g.ly,
                                             g.depth(), ranks, px, py);
        std::vector<int> owners(static_cast<std::size_t>(g.sites_at(0)), 0);
        for (int r = 0; r < ranks; ++r) {
          const GridDecomposition dec(g, ranks, r, px, py);
          if (px > 0) {
            EXPECT_EQ(dec.ranks_x(), px) << what;
            EXPECT_EQ(dec.ranks_y(), py) << what;
          }
          const GridRegion& reg = dec.region();
          for (long i = 0; i < reg.windows(0); ++i)
            ++owners[g.site(0, reg.x[0].at(i % reg.x[0].length), reg.y[0].at(i / reg.x[0].length))];
          for (int l = 0; l < g.depth(); ++l) {
            std::set<std::pair<long, long>> reached, region;
            for (long i = 0; i < reg.windows(l); ++i) {
              const auto c = grid_window_cone(g, l, reg.x[l].at(i % reg.x[l].length),
                                              reg.y[l].at(i / reg.x[l].length));
              reached.insert({c.cx, c.cy});
            }
            for (long i = 0; i < reg.windows(l + 1); ++i)
              region.insert({reg.x[l + 1].at(i % reg.x[l + 1].length),
                             reg.y[l + 1].at(i / reg.x[l + 1].length)});
            ASSERT_EQ(region, reached) << what << " rank " << r << " layer " << l + 1;
          }
        }
        for (int k : owners) ASSERT_EQ(k, 1) << what;
      }
}

// The forward over a region computes its windows at every layer exactly as the whole
// lattice's forward does (bitwise: same kernels, same order), and nothing else: at chi = 2
// a half-step's three line maps take 3 * 2^3 1D kernel calls, so a layer's calls are 24 per
// intermediate window (columns cx .. cx+2, rows y .. y+2) that some region window hangs off
// plus 24 per region window (docs/design-grid.md §3), counted here from grid_window_cone.
TEST_F(GridObjectiveTest, RegionForwardComputesOnlyItsWindows_mpi) {
  for (const Case& c : {kCases[1], kCases[2]}) {
    const GridModel m = model_of(c, 5);
    const GridLattice& g = m.lattice;
    GridWindowMarginals whole(g);
    whole.forward(m);
    for (int ranks = 1; ranks <= 8; ++ranks)
      for (const auto& [px, py] : layouts(ranks, g)) {
        const GridRegion region = GridDecomposition(g, ranks, ranks - 1, px, py).region();
        GridWindowMarginals part(g, region);
        part.forward(m);
        long expected = 0;
        for (int l = 0; l <= g.depth(); ++l) {
          std::set<std::pair<long, long>> intermediate;
          for (long i = 0; i < region.windows(l); ++i) {
            const long x = region.x[l].at(i % region.x[l].length),
                       y = region.y[l].at(i / region.x[l].length);
            const std::size_t size = grid_window_size(c.chi[l]);
            for (std::size_t k = 0; k < size; ++k)
              ASSERT_EQ(part.window(l, x, y)[k], whole.window(l, x, y)[k])
                  << label(c) << " layer " << l << " window (" << x << ", " << y << ")";
            if (l < g.depth()) intermediate.insert({grid_window_cone(g, l, x, y).cx, y});
          }
          if (l < g.depth())
            expected += 24 * (static_cast<long>(intermediate.size()) + region.windows(l));
        }
        EXPECT_EQ(part.kernel_calls(), expected)
            << label(c) << " at " << ranks << " ranks as " << px << " x " << py;
      }
  }
}

// The chosen layout is the most balanced factor pair, more ranks along the longer axis;
// impossible layouts are refused with one clear line.
TEST_F(GridObjectiveTest, LayoutChoiceAndRefusals_mpi) {
  const GridLattice square{12, 12, {2, 2, 2}}, wide{16, 12, {2, 2, 2}}, tall{12, 16, {2, 2, 2}};
  const auto shape = [](const GridLattice& g, int ranks, int px = 0, int py = 0) {
    const GridDecomposition d(g, ranks, 0, px, py);
    return std::pair{d.ranks_x(), d.ranks_y()};
  };
  EXPECT_EQ(shape(square, 4), std::pair(2, 2));
  EXPECT_EQ(shape(wide, 6), std::pair(3, 2));
  EXPECT_EQ(shape(tall, 6), std::pair(2, 3));
  EXPECT_EQ(shape(square, 7), std::pair(7, 1));
  EXPECT_EQ(shape(GridLattice{6, 12, {2, 2}}, 7), std::pair(1, 7));  // 7 > 6 columns
  EXPECT_EQ(shape(square, 6, 0, 1), std::pair(6, 1));
  EXPECT_EQ(shape(square, 6, 2, 0), std::pair(2, 3));
  EXPECT_NE(error_of([&] { shape(square, 4, 2, 3); })
                .find("grid rank layout 2 x 3 does not match the 4 ranks of the run"),
            std::string::npos);
  EXPECT_NE(error_of([&] { shape(GridLattice{6, 6, {3, 2}}, 7, 7, 1); })
                .find("grid rank layout 7 x 1 has more ranks along an axis than the 6 x 6 "
                      "bottom windows"),
            std::string::npos);
  EXPECT_NE(error_of([&] { shape(GridLattice{6, 6, {3, 2}}, 49); })
                .find("49 ranks cannot be laid out on the 6 x 6 bottom windows"),
            std::string::npos);
}

// Periodic boxes of a [S, Ly, Lx] dataset, wrapped in either direction, whole rings
// included, from a contiguous (collective MPI-IO) and a chunked (serial handle) layout,
// against the values written.
TEST_F(GridObjectiveTest, LatticeBoxReads_mpi) {
  const long S = 13, ly = 7, lx = 9;
  const auto value = [](long s, long y, long x) {
    return static_cast<std::uint8_t>((s * 31 + y * 7 + x * 3) % 251);
  };
  std::vector<std::uint8_t> all;
  for (long s = 0; s < S; ++s)
    for (long y = 0; y < ly; ++y)
      for (long x = 0; x < lx; ++x) all.push_back(value(s, y, x));
  const std::string contiguous = file("box.h5"), chunked = file("box_chunked.h5");
  write(contiguous, all, S, {ly, lx}, 251);
  if (comm.is_root()) {  // chunks that straddle the box edges, gzip: a user's own file
    const hsize_t dims[3] = {S, ly, lx}, chunk[3] = {4, 3, 4};
    const hid_t f = H5Fcreate(chunked.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t s = H5Screate_simple(3, dims, nullptr);
    const hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(p, 3, chunk);
    H5Pset_deflate(p, 1);
    const hid_t d = H5Dcreate2(f, "configs", H5T_STD_U8LE, s, H5P_DEFAULT, p, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data());
    H5Dclose(d);
    H5Pclose(p);
    H5Sclose(s);
    H5Fclose(f);
  }
  comm.barrier();
  for (const std::string& path : {contiguous, chunked}) {
    const DatasetReader reader(comm, path, true);
    EXPECT_EQ(reader.shape().sample_dims, (std::vector<long>{ly, lx})) << path;
    EXPECT_EQ(reader.shape().sites, ly * lx) << path;
    // Each rank its own box (ranks differ), every call collective.
    const long r = comm.rank();
    for (const auto& [rows, cols] :
         {std::pair{CyclicRange::make(r, 3, ly), CyclicRange::make(2 * r + 5, 6, lx)},
          std::pair{CyclicRange::make(ly - 1 - r, ly, ly), CyclicRange::make(r, 2, lx)},
          std::pair{CyclicRange::make(5, 4, ly), CyclicRange::make(lx - 2, lx, lx)},
          std::pair{CyclicRange::make(0, r % 2 == 0 ? 0 : 2, ly), CyclicRange::make(1, 3, lx)}})
      for (const auto& [first, count] : {std::pair{0L, S}, std::pair{3L, 5L}, std::pair{12L, 1L}}) {
        std::vector<std::uint8_t> out;
        reader.read_box(first, count, rows, cols, out);
        ASSERT_EQ(out.size(), static_cast<std::size_t>(count * rows.length * cols.length));
        for (long k = 0; k < count; ++k)
          for (long i = 0; i < rows.length; ++i)
            for (long j = 0; j < cols.length; ++j)
              ASSERT_EQ(out[(k * rows.length + i) * cols.length + j],
                        value(first + k, rows.at(i), cols.at(j)))
                  << path << " rows " << rows.start << "+" << rows.length << " cols " << cols.start
                  << "+" << cols.length;
      }
  }
  // The chain's reader still refuses lattice samples.
  EXPECT_NE(error_of([&] { DatasetReader r(comm, contiguous); })
                .find("a grid dataset [S, Ly, Lx]; a chain model reads [samples, sites]"),
            std::string::npos);
}

// Statistics, objective, KL and gradient of GridObjective against the single-process
// whole-lattice sweep with histograms filled by GridWindowStats::add, at every layout.
TEST_F(GridObjectiveTest, EqualsSingleProcessSweep_mpi) {
  const long S = 41;
  for (const Case& c : kCases) {
    const GridModel data_model = model_of(c, 11), m = model_of(c, 12);
    const GridLattice& g = m.lattice;
    const auto all = draw(data_model, S);
    const std::string path = file("data.h5");
    write(path, all, S, {c.ly, c.lx}, c.chi[0]);

    // Truth: brute-force counts per window, the whole-lattice sweep.
    const long n = g.sites_at(0), cells = static_cast<long>(grid_window_size(c.chi[0]));
    std::vector<long> counts(static_cast<std::size_t>(n * cells), 0);
    for (long k = 0; k < S; ++k)
      for (long y = 0; y < c.ly; ++y)
        for (long x = 0; x < c.lx; ++x) {
          long cell = 0;
          for (long dy = 0; dy < 3; ++dy)
            for (long dx = 0; dx < 3; ++dx)
              cell = cell * c.chi[0] + all[k * n + ((y + dy) % c.ly) * c.lx + (x + dx) % c.lx];
          ++counts[(y * c.lx + x) * cells + cell];
        }
    double entropy = 0;
    for (long v : counts)
      if (v > 0) entropy -= static_cast<double>(v) / S * std::log(static_cast<double>(v) / S);
    entropy /= static_cast<double>(n);
    GridWindowStats q(g);
    for (long k = 0; k < S; ++k) q.add(all.data() + k * n, 1.0 / S);
    GridSweep whole(g);
    whole.forward(m);
    const double objective = whole.objective(q) / static_cast<double>(n);
    GridModel grad_whole = zeros_like(m);
    whole.gradient(m, q, grad_whole);
    std::vector<double> truth = entries(grad_whole);
    for (double& v : truth) v /= static_cast<double>(n);

    for (const auto& [px, py] : layouts(comm.size(), g))
      for (long chunk : {4096L, 7L}) {
        const std::string what = fmt::format("{} as {} x {} chunk {} at {} ranks", label(c), px,
                                             py, chunk, comm.size());
        GridObjective obj(comm, g, path, GridObjectiveOptions{chunk, px, py});
        EXPECT_EQ(obj.samples(), S) << what;
        const GridDecomposition& dec = obj.decomposition();
        if (px > 0) EXPECT_EQ(std::pair(dec.ranks_x(), dec.ranks_y()), std::pair(px, py)) << what;
        // Histograms of the owned windows: the counts over S, exactly.
        const GridWindowStats& st = obj.statistics();
        long owned = 0;
        for (long oy = 0; oy < dec.owned_y().length; ++oy)
          for (long ox = 0; ox < dec.owned_x().length; ++ox, ++owned) {
            const long x = dec.owned_x().at(ox), y = dec.owned_y().at(oy);
            const double* w = st.window(x, y);
            for (long k = 0; k < cells; ++k)
              ASSERT_EQ(w[k], static_cast<double>(counts[(y * c.lx + x) * cells + k]) / S)
                  << what << " window (" << x << ", " << y << ") cell " << k;
          }
        EXPECT_EQ(comm.sum(static_cast<long long>(owned)), n) << what;
        EXPECT_NEAR(obj.entropy_per_window(), entropy, 1e-12 * entropy) << what;

        const double o = obj.objective(m);
        EXPECT_NEAR(o, objective, 1e-12 * std::abs(objective)) << what;
        EXPECT_NEAR(obj.kl_per_window(), -objective - entropy, 1e-12 * std::abs(objective))
            << what;
        GridModel grad = zeros_like(m);
        for (double& v : grad.top) v = 1;  // overwritten, not added to
        obj.gradient(m, grad);
        const auto got = entries(grad);
        ASSERT_EQ(got.size(), truth.size());
        for (std::size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], truth[i], 1e-12 * std::abs(truth[i]) + 1e-300)
              << what << " entry " << i << " of " << got.size();
      }
  }
}

// With pair terms (docs/design-grid.md §7): the objective and every gradient entry at every
// layout against one process on the whole lattice, with the pair histograms counted here
// from the samples and every pair's joint and reverse pass run over the whole lattice's
// windows (GridSetMarginals, whose joints and reverse pass test_grid_pairs checks against
// brute force and finite differences). The rank runs count from two box reads, hold only
// their pairs, start them from a padded region, and feed the window adjoints through
// their own sweeps; stride 2 and the coarser sites of longer distances (every r/2-th)
// exercise the site choice and its weight; the second case adds diagonal pairs (r = 1, 3
// and min(Lx, Ly)/2 along (1, 1) and (1, -1)), whose upper sites the ranks read from their
// rows shifted by r.
TEST_F(GridObjectiveTest, PairTermsEqualSingleProcess_mpi) {
  const long S = 37;
  for (const auto& [c, stride, diagonals] :
       {std::tuple{kCases[0], 1L, false}, std::tuple{kCases[2], 2L, true}}) {
    const GridModel data_model = model_of(c, 51), m = model_of(c, 52);
    const GridLattice& g = m.lattice;
    const auto all = draw(data_model, S);
    const std::string path = file("pairs.h5");
    write(path, all, S, {c.ly, c.lx}, c.chi[0]);
    const long n = g.sites_at(0);
    const int d = c.chi[0];

    GridWindowStats q(g);
    for (long k = 0; k < S; ++k) q.add(all.data() + k * n, 1.0 / S);
    GridSweep whole(g);
    whole.forward(m);
    GridSetMarginals sets(m, whole.marginals());
    PairAdjoints adj;
    double pair_sum = 0;
    long pairs = 0;
    // x and y at the default distances (dyadic, up to each axis's L/2), the diagonals at
    // `diagonal_distances`.
    std::vector<long> dyadic;
    for (long r = 1; r <= std::max(c.lx, c.ly) / 2; r *= 2) dyadic.push_back(r);
    const std::vector<long> diagonal_distances =
        diagonals ? std::vector<long>{1, 3, std::min(c.lx, c.ly) / 2} : std::vector<long>{};
    for (const auto& [ux, uy, distances] :
         {std::tuple{1, 0, dyadic}, std::tuple{0, 1, dyadic}, std::tuple{1, 1, diagonal_distances},
          std::tuple{1, -1, diagonal_distances}})
      for (long r : distances) {
        if (r > (uy == 0 ? c.lx : ux == 0 ? c.ly : std::min(c.lx, c.ly)) / 2) continue;
        const long dx = ux * r, dy = uy * r;
        const long s = std::max(stride, r / 2);  // sites of distance r: every s-th
        const double weight = 0.7 * static_cast<double>(n) /
                              static_cast<double>(((c.lx + s - 1) / s) * ((c.ly + s - 1) / s));
        for (long corner_y = 0; corner_y < c.ly; corner_y += s)
          for (long x = 0; x < c.lx; x += s, ++pairs) {
            const long y = uy < 0 ? (corner_y + r) % c.ly : corner_y;  // (1, -1): {(x, y + r), (x + r, y)}
            std::vector<double> hist(static_cast<std::size_t>(d * d), 0.0);
            for (long k = 0; k < S; ++k)
              hist[all[k * n + y * c.lx + x] * d +
                   all[k * n + ((y + dy + c.ly) % c.ly) * c.lx + (x + dx) % c.lx]] += 1.0 / S;
            const auto p = sets.pair(x, y, dx, dy);
            std::vector<double> gp(hist.size(), 0.0);
            for (std::size_t e = 0; e < hist.size(); ++e)
              if (hist[e] > 0) {
                pair_sum += weight * hist[e] * std::log(p[e]);
                gp[e] = weight * hist[e] / p[e];
              }
            sets.pair_backward(x, y, dx, dy, [&](const std::vector<double>&) { return gp; }, adj);
          }
      }
    const double objective = (whole.objective(q) + pair_sum) / static_cast<double>(n);
    GridModel grad_whole = zeros_like(m);
    sets.add_table_gradient(adj, grad_whole);
    whole.gradient(m, q, grad_whole, &adj.windows);
    std::vector<double> truth = entries(grad_whole);
    for (double& v : truth) v /= static_cast<double>(n);

    for (const auto& [px, py] : layouts(comm.size(), g)) {
      const std::string what = fmt::format("{} stride {}{} as {} x {} at {} ranks", label(c),
                                           stride, diagonals ? " with diagonals" : "", px, py,
                                           comm.size());
      GridObjectiveOptions o{7, px, py};
      o.pairs = true;
      o.pair_stride = stride;
      o.pair_weight = 0.7;
      o.pair_diagonal_distances = diagonal_distances;
      GridObjective obj(comm, g, path, o);
      EXPECT_EQ(obj.pair_terms(), pairs) << what;
      EXPECT_NEAR(obj.objective(m), objective, 1e-11 * std::abs(objective)) << what;
      GridModel grad = zeros_like(m);
      obj.gradient(m, grad);
      const auto got = entries(grad);
      ASSERT_EQ(got.size(), truth.size());
      double scale = 0;
      for (double v : truth) scale = std::max(scale, std::abs(v));
      for (std::size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], truth[i], 1e-11 * scale) << what << " entry " << i << " of " << got.size();
    }
  }
}

// objective.symmetry = "spin_flip": the objective (windows, pairs along both axes and the
// diagonals) and its gradient on a dataset with averaged statistics equal those of the
// dataset together with its flipped copy (x -> chi_0 - 1 - x at every site) read as is.
// The flipped copy is the independent truth: average_with_flip's index reversal is never
// used to build it. A ternary alphabet checks the digit-wise flip beyond bits.
TEST_F(GridObjectiveTest, SpinFlipEqualsTheDataWithItsFlippedCopy_mpi) {
  const long S = 23;
  for (const Case& c : {kCases[1], kCases[3]}) {
    const GridModel data_model = model_of(c, 61), m = model_of(c, 62);
    const long n = m.lattice.sites_at(0);
    const std::vector<std::uint8_t> once = draw(data_model, S);
    std::vector<std::uint8_t> both = once;
    for (const std::uint8_t x : once) both.push_back(static_cast<std::uint8_t>(c.chi[0] - 1 - x));
    ASSERT_EQ(both.size(), static_cast<std::size_t>(2 * S * n));
    const std::string once_path = file("once.h5"), both_path = file("both.h5");
    write(once_path, once, S, {c.ly, c.lx}, c.chi[0]);
    write(both_path, both, 2 * S, {c.ly, c.lx}, c.chi[0]);
    GridObjectiveOptions o{5};
    o.pairs = true;
    o.pair_stride = 1;
    o.pair_diagonal_distances = {1, 2};
    GridObjective truth(comm, m.lattice, both_path, o);
    o.spin_flip = true;
    GridObjective flipped(comm, m.lattice, once_path, o);
    const std::string what = fmt::format("{} at {} ranks", label(c), comm.size());
    const double expected = truth.objective(m);
    EXPECT_NEAR(flipped.objective(m), expected, 1e-13 * std::abs(expected)) << what;
    EXPECT_NEAR(flipped.kl_per_window(), truth.kl_per_window(), 1e-13) << what;
    GridModel g_truth = zeros_like(m), g_flipped = zeros_like(m);
    truth.gradient(m, g_truth);
    flipped.gradient(m, g_flipped);
    const auto want = entries(g_truth), got = entries(g_flipped);
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::abs(v));
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-13 * scale) << what << " entry " << i;
    // The spin flip changed the statistics: the plain objective on `once` differs.
    o.spin_flip = false;
    GridObjective plain(comm, m.lattice, once_path, o);
    EXPECT_GT(std::abs(plain.objective(m) - expected), 1e-6 * std::abs(expected)) << what;
  }
}

// Objective and every gradient entry bitwise equal at 1 and 2 threads per rank, on every
// layout (regions whose sizes are not multiples of 3 exercise the untied colouring's
// serial leftovers).
TEST_F(GridObjectiveTest, ThreadCountIndependent_mpi) {
  const int saved = omp_get_max_threads();
  for (const Case& c : {kCases[0], kCases[2]}) {
    const GridModel m = model_of(c, 21);
    const std::string path = file("threads.h5");
    write(path, draw(model_of(c, 22), 17), 17, {c.ly, c.lx}, c.chi[0]);
    for (const auto& [px, py] : layouts(comm.size(), m.lattice)) {
      std::vector<double> objective;
      std::vector<std::vector<double>> grads;
      for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        GridObjectiveOptions o{4096, px, py};
        o.pairs = true;  // windows and pair terms
        GridObjective obj(comm, m.lattice, path, o);
        objective.push_back(obj.objective(m));
        GridModel grad = zeros_like(m);
        obj.gradient(m, grad);
        grads.push_back(entries(grad));
      }
      const std::string what = fmt::format("{} as {} x {}", label(c), px, py);
      EXPECT_EQ(objective[0], objective[1]) << what;
      for (std::size_t i = 0; i < grads[0].size(); ++i)
        ASSERT_EQ(grads[0][i], grads[1][i]) << what << " entry " << i;
    }
  }
  omp_set_num_threads(saved);
}

// The pair terms record each pair's steps on the first evaluation and replay them on the
// later ones (GridPairTerms' tapes), on whichever thread takes the pair: an objective
// evaluated on one model and then on another equals, bit for bit, a fresh objective on the
// second (objective and every gradient entry), at 2 threads per rank; and a model of
// another tying on the same lattice gets new tapes, not the old ones.
TEST_F(GridObjectiveTest, ReplayedPairTermsEqualAFreshObjective_mpi) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  for (const Case& c : {kCases[0], kCases[2]}) {
    const GridModel first = model_of(c, 31), second = model_of(c, 32);
    const std::string path = file("replay.h5");
    write(path, draw(model_of(c, 33), 19), 19, {c.ly, c.lx}, c.chi[0]);
    GridObjectiveOptions o{4096};
    o.pairs = true;
    o.pair_stride = 1;
    o.pair_diagonal_distances = {1, 2};
    const auto evaluate = [&](GridObjective& obj, const GridModel& m, std::vector<double>* grad) {
      const double value = obj.objective(m);
      GridModel g = zeros_like(m);
      obj.gradient(m, g);
      *grad = entries(g);
      return value;
    };
    GridObjective reused(comm, first.lattice, path, o), fresh(comm, first.lattice, path, o);
    std::vector<double> g_reused, g_fresh, g_first;
    const double v_first = evaluate(reused, first, &g_first);
    const double v_reused = evaluate(reused, second, &g_reused);
    const double v_fresh = evaluate(fresh, second, &g_fresh);
    const std::string what = fmt::format("{} at {} ranks", label(c), comm.size());
    EXPECT_NE(v_first, v_fresh) << what;
    EXPECT_EQ(v_reused, v_fresh) << what;
    ASSERT_EQ(g_reused.size(), g_fresh.size());
    for (std::size_t i = 0; i < g_reused.size(); ++i) ASSERT_EQ(g_reused[i], g_fresh[i]) << what << " entry " << i;
    // The other tying: its line keys differ, so tapes recorded for this one must not serve.
    GridModel other = model_of(Case{c.lx, c.ly, c.chi, !c.tied}, 34);
    GridObjective other_fresh(comm, other.lattice, path, o);
    std::vector<double> g_other, g_other_fresh;
    EXPECT_EQ(evaluate(reused, other, &g_other), evaluate(other_fresh, other, &g_other_fresh)) << what;
    EXPECT_EQ(g_other, g_other_fresh) << what;
  }
  omp_set_num_threads(saved);
}

// A value outside the alphabet is named by file, sample, row and column on every rank;
// a dataset of another shape is refused naming the file and both shapes.
TEST_F(GridObjectiveTest, RefusesBadDatasets_mpi) {
  const Case c{12, 12, {2, 2, 2}, false};
  const GridModel source = model_of(c, 3);
  const long S = 9;
  auto all = draw(source, S);
  all[(5 * c.ly + 3) * c.lx + 7] = 2;  // sample 5, y = 3, x = 7
  const std::string bad = file("bad.h5");
  write(bad, all, S, {c.ly, c.lx}, 0);
  std::string what = error_of([&] { GridObjective o(comm, source.lattice, bad, {3}); });
  EXPECT_NE(what.find(bad + ": /configs[5, 3, 7] = 2 is outside the alphabet 0..1 "
                            "(model.chi[0] = 2)"),
            std::string::npos)
      << what;

  const std::string flat = file("flat.h5");
  write(flat, all, S, {c.ly * c.lx}, 2);
  what = error_of([&] { GridObjective o(comm, source.lattice, flat); });
  EXPECT_NE(what.find(flat + ": /configs is [9, 144], but the 12 x 12 grid model needs "
                             "[samples, Ly, Lx] = [9, 12, 12]"),
            std::string::npos)
      << what;

  what = error_of([&] { GridObjective o(comm, source.lattice, flat, {0}); });
  EXPECT_NE(what.find("chunk_samples = 0: the statistics pass reads at least one sample"),
            std::string::npos)
      << what;

  const std::string other = file("other.h5");
  write(other, std::vector<std::uint8_t>(static_cast<std::size_t>(S * 12 * 16), 0), S, {12, 16},
        2);
  what = error_of([&] { GridObjective o(comm, source.lattice, other); });
  EXPECT_NE(what.find(other + ": /configs is [9, 12, 16], but the 12 x 12 grid model needs "
                              "[samples, Ly, Lx] = [9, 12, 12]"),
            std::string::npos)
      << what;
}

}  // namespace
}  // namespace cmera::grid
