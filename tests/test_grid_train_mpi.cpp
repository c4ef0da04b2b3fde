// Grid models through files and training (docs/design-grid.md §5), at whatever rank count
// ctest runs it: the grid model file round-trips bitwise and a model of the other lattice
// is refused naming both; the grid objective over ranks equals a second code path (the
// window histograms counted here from the samples in memory, GridSweep on one process);
// `train` on a [S, Ly, Lx] dataset gives the same tables on all ranks as on rank 0 alone
// (1e-10; the statistics are integer counts, so in fact bitwise); a run stopped and
// continued from its checkpoint equals the uninterrupted one bitwise; a chain checkpoint
// offered to a grid run, and a grid the model's depth does not fit, are refused.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <functional>

#include "cmera/checkpoint.hpp"
#include "cmera/error.hpp"
#include "cmera/grid_objective.hpp"
#include "cmera/grid_sampler.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/io.hpp"
#include "cmera/provenance.hpp"
#include "cmera/trainer.hpp"
#include "ising_data.hpp"

namespace cmera {
namespace {

namespace fs = std::filesystem;

constexpr long kSamples = 600;

class GridTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new Comm(MPI_COMM_WORLD);
    dir_ = testing::scratch_dir(*world_, "gridtrain");
    // Exact samples of a random 6 x 6 grid model: data with real 3 x 3 structure. Rank 0
    // holds them all (written as its rows), every rank keeps a copy for the references.
    source_ = initialize_grid_model(GridLattice{6, 6, {2, 2}}, false, InitKind::kRandom, 1.0, 17);
    const GridSampler sampler(source_);
    rows_.resize(static_cast<std::size_t>(kSamples * 36));
    for (long k = 0; k < kSamples; ++k) sampler.draw(5, static_cast<std::uint64_t>(k), rows_.data() + k * 36);
    data_ = dir_ + "/grid.h5";
    write_dataset(*world_, data_, kSamples, std::vector<long>{6, 6}, 2, 0,
                  world_->is_root() ? rows_ : std::vector<std::uint8_t>{}, {});
  }
  static void TearDownTestSuite() {
    world_->barrier();
    if (world_->is_root()) fs::remove_all(dir_);
    delete world_;
  }
  static Config config(const std::string& optimizer, bool tied, const std::string& out) {
    Config cfg;
    cfg.data_path = data_;
    cfg.chi = {2, 2};
    cfg.tied = tied;
    cfg.optimizer = optimizer;
    cfg.iterations = 8;
    cfg.restarts = 2;
    cfg.restart_iterations = 2;
    cfg.checkpoint_every = 3;
    cfg.log_seconds = 1e9;
    cfg.output_dir = dir_ + "/" + out;
    if (world_->is_root()) fs::create_directories(cfg.output_dir);
    world_->barrier();
    return cfg;
  }
  static TrainResult run(const Comm& comm, const Config& cfg, long stop_after = -1,
                         const std::string& restart = "") {
    TrainOptions opt;
    opt.checkpoints = true;
    opt.stop_after = stop_after;
    opt.restart = restart;
    return train(comm, cfg, opt);
  }
  static Comm* world_;
  static std::string dir_, data_;
  static GridModel source_;
  static std::vector<std::uint8_t> rows_;
};
Comm* GridTrain::world_ = nullptr;
std::string GridTrain::dir_, GridTrain::data_;
GridModel GridTrain::source_;
std::vector<std::uint8_t> GridTrain::rows_;

void expect_tables_equal(const Tables& a, const Tables& b, double tol) {
  ASSERT_EQ(a.layers.size(), b.layers.size());
  const auto near = [tol](const std::vector<double>& x, const std::vector<double>& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!(std::abs(x[i] - y[i]) <= tol * std::max(1.0, std::abs(y[i])))) return false;
    return true;
  };
  EXPECT_TRUE(near(a.top, b.top));
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    EXPECT_TRUE(near(a.layers[l].W, b.layers[l].W)) << "view layer " << l;
    EXPECT_TRUE(near(a.layers[l].U, b.layers[l].U)) << "view layer " << l;
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(GridTrain, ModelFileRoundTripsBitwiseAndRefusesTheOtherLattice) {
  struct Case { GridLattice g; bool tied; };
  const Case cases[] = {{{6, 6, {2, 2}}, true}, {{6, 6, {2, 3}}, false},
                        {{12, 6, {3, 2}}, false}, {{12, 12, {2, 2, 2}}, false},
                        {{12, 12, {2, 2, 2}, {4, 3}}, false}, {{6, 6, {2, 2}, {3}}, true}};
  for (const Case& c : cases) {
    const GridModel m = initialize_grid_model(c.g, c.tied, InitKind::kRandom, 1.0, 9);
    ModelFileContents out;
    out.model = as_chain_model(m);
    out.grid = c.g;
    out.config_toml = "[model]\nchi = [2, 2]\n";
    out.objective_history = {-1.5, -1.25};
    out.kl_history = {0.5, 0.25};
    out.provenance = provenance("test", out.config_toml);
    const std::string path = dir_ + "/grid_model.h5";
    write_model(*world_, path, out);
    const ModelFileContents in = read_model(*world_, path, nullptr, ModelLattice::grid);
    ASSERT_TRUE(in.grid.has_value());
    EXPECT_EQ(in.grid->lx, c.g.lx);
    EXPECT_EQ(in.grid->ly, c.g.ly);
    EXPECT_EQ(in.grid->chi, c.g.chi);
    EXPECT_EQ(in.grid->intermediate_alphabets(), c.g.intermediate_alphabets());
    EXPECT_EQ(in.model.tied, c.tied);
    expect_tables_equal(in.model.tables, out.model.tables, 0.0);
    const GridModel back = as_grid_model(*in.grid, in.model);
    EXPECT_EQ(back.top, m.top);
    for (int l = 0; l < m.depth(); ++l)
      for (long i = 0; i < static_cast<long>(m.layers[l].x.lines.size()); ++i)
        EXPECT_EQ(back.layers[l].x.lines[i].U, m.layers[l].x.lines[i].U);
    EXPECT_EQ(in.objective_history, out.objective_history);
    EXPECT_EQ(in.kl_history, out.kl_history);
    EXPECT_EQ(in.config_toml, out.config_toml);
    EXPECT_EQ(read_model(*world_, path, nullptr, ModelLattice::any).grid->lx, c.g.lx);
    const std::string chain_reader = error_of([&] { read_model(*world_, path); });
    EXPECT_NE(chain_reader.find(fmt::format("is a grid model ({} x {}), expected a chain model",
                                            c.g.lx, c.g.ly)), std::string::npos)
        << chain_reader;
  }
  // A chain model where a grid is expected.
  ModelFileContents chain;
  chain.model = Model::uniform(Geometry{16, {2, 2}}, true);
  chain.config_toml = "x = 1\n";
  write_model(*world_, dir_ + "/chain_model.h5", chain);
  const std::string grid_reader =
      error_of([&] { read_model(*world_, dir_ + "/chain_model.h5", nullptr, ModelLattice::grid); });
  EXPECT_NE(grid_reader.find("is a chain model (N = 16), expected a grid model"), std::string::npos)
      << grid_reader;
}

// Second code path: histograms counted here from the samples in memory, one GridSweep.
TEST_F(GridTrain, ObjectiveOverRanksEqualsOneProcessSweep) {
  const GridLattice g{6, 6, {2, 2}};
  const GridModel m = initialize_grid_model(g, false, InitKind::kDecimation, 0.3, 4);
  grid::GridWindowStats q(g);
  for (long k = 0; k < kSamples; ++k) q.add(rows_.data() + k * 36, 1.0 / kSamples);
  grid::GridSweep sweep(g);
  sweep.forward(m);
  const double expected = sweep.objective(q) / 36.0;
  GridModel expected_grad = grid::zeros_like(m);
  sweep.gradient(m, q, expected_grad);
  double entropy = 0;
  for (long w = 0; w < 36; ++w)
    for (std::size_t i = 0; i < grid_window_size(2); ++i) {
      const double p = q.window(w % 6, w / 6)[i];
      if (p > 0) entropy -= p * std::log(p);
    }

  // Small chunks: many read blocks, split round robin over the ranks.
  grid::GridObjective objective(*world_, g, data_, {37});
  EXPECT_EQ(objective.samples(), kSamples);
  EXPECT_NEAR(objective.objective(m), expected, 1e-12 * std::abs(expected));
  EXPECT_NEAR(objective.kl_per_window(), -expected - entropy / 36.0, 1e-12);
  GridModel grad = grid::zeros_like(m);
  objective.gradient(m, grad);
  const Tables a = grid::as_chain_tables(grad), b = grid::as_chain_tables(expected_grad);
  Tables b_scaled = b;
  for (auto& l : b_scaled.layers) {
    for (double& x : l.W) x /= 36.0;
    for (double& x : l.U) x /= 36.0;
  }
  for (double& x : b_scaled.top) x /= 36.0;
  expect_tables_equal(a, b_scaled, 1e-12);
}

TEST_F(GridTrain, SameTablesOnAllRanksAsOnRankZeroAlone) {
  for (const std::string optimizer : {"em", "adam"}) {
    Config cfg = config(optimizer, false, "ranks_" + optimizer);
    TrainResult all = train(*world_, cfg);
    ASSERT_TRUE(all.grid.has_value());
    EXPECT_EQ(all.grid->lx, 6);
    ASSERT_EQ(all.objective_history.size(), 8u);
    // EM is monotone in the objective (docs/design.md §4); and it learned something.
    if (optimizer == "em")
      for (std::size_t k = 1; k < all.objective_history.size(); ++k)
        EXPECT_GE(all.objective_history[k], all.objective_history[k - 1] - 1e-12);
    EXPECT_LT(all.kl_history.back(), all.kl_history.front());
    if (world_->is_root()) {
      const Comm self(MPI_COMM_SELF);
      const TrainResult one = train(self, cfg);
      expect_tables_equal(all.model.tables, one.model.tables, 1e-10);
      for (std::size_t k = 0; k < one.objective_history.size(); ++k)
        EXPECT_NEAR(all.objective_history[k], one.objective_history[k], 1e-10);
    }
    world_->barrier();
  }
}

TEST_F(GridTrain, ContinuedFromCheckpointIsBitwiseTheUninterruptedRun) {
  for (const auto& [optimizer, tied] : {std::pair{"em", true}, std::pair{"adam", false}}) {
    const std::string tag = fmt::format("{}_{}", optimizer, tied ? "tied" : "untied");
    const TrainResult whole = run(*world_, config(optimizer, tied, "whole_" + tag));
    const Config cfg = config(optimizer, tied, "parts_" + tag);
    const TrainResult first = run(*world_, cfg, 5);
    ASSERT_TRUE(first.stopped);
    const TrainResult rest = run(*world_, cfg, -1, "latest");
    ASSERT_FALSE(rest.stopped);
    EXPECT_EQ(rest.objective_history, whole.objective_history);
    EXPECT_EQ(rest.kl_history, whole.kl_history);
    expect_tables_equal(rest.model.tables, whole.model.tables, 0.0);
  }
}

TEST_F(GridTrain, ChainCheckpointAndUnfitGridAreRefused) {
  // A chain run's checkpoint offered to a grid run.
  Config chain = config("em", true, "chain");
  chain.data_path = testing::write_ising(*world_, dir_, 16, 200, 0.5, 3);
  chain.chi = {2, 2};
  chain.iterations = 2;
  const TrainResult c = run(*world_, chain);
  ASSERT_FALSE(c.checkpoint.empty());
  const Config grid = config("em", true, "grid_from_chain");
  const std::string why = error_of([&] { run(*world_, grid, -1, c.checkpoint); });
  EXPECT_NE(why.find("is a chain model (N = 16), expected a grid model"), std::string::npos) << why;
  // depth 2 on 6 x 6: the top would be 1 x 1 (GridLattice::validate's message, and the grid).
  Config deep = config("em", true, "deep");
  deep.chi = {2, 2, 2};
  const std::string deep_why = error_of([&] { train(*world_, deep); });
  EXPECT_NE(deep_why.find("is a 6 x 6 grid, Lx x Ly"), std::string::npos) << deep_why;
}

}  // namespace
}  // namespace cmera
