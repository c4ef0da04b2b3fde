// Checkpoint and restart through the library API, at whatever rank count ctest runs it.
// A run stopped part way (TrainOptions::stop_after) and continued from its checkpoint must
// equal the uninterrupted run bitwise at the same rank count (tables, both histories),
// for EM and Adam, tied and untied, stopped in the main phase or during the candidate
// starts; continued on another rank count (the first part on one rank) it agrees to the
// rank-count tolerance, 1e-10 relative. Damaged, foreign and
// future-format checkpoints are refused, and `latest` falls back past them.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iterator>

#include "cmera/checkpoint.hpp"
#include "cmera/integrity.hpp"
#include "cmera/error.hpp"
#include "cmera/trainer.hpp"
#include "ising_data.hpp"

namespace cmera {
namespace {

namespace fs = std::filesystem;

class Restart : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new Comm(MPI_COMM_WORLD);
    dir_ = testing::scratch_dir(*world_, "restart");
    data_ = testing::write_ising(*world_, dir_, 32, 3000, 0.5, 5);
  }
  static void TearDownTestSuite() {
    world_->barrier();
    if (world_->is_root()) fs::remove_all(dir_);
    delete world_;
  }
  static Config config(const std::string& optimizer, bool tied, const std::string& out) {
    Config cfg;
    cfg.data_path = data_;
    cfg.chi = {2, 2, 3, 2};
    cfg.tied = tied;
    cfg.optimizer = optimizer;
    cfg.iterations = 24;
    cfg.restarts = 2;
    cfg.restart_iterations = 4;
    cfg.checkpoint_every = 5;
    cfg.log_seconds = 1e9;
    cfg.output_dir = dir_ + "/" + out;
    if (world_->is_root()) fs::create_directories(cfg.output_dir);
    world_->barrier();
    return cfg;
  }
  static TrainResult run(const Comm& comm, const Config& cfg, long stop_after = -1,
                         const std::string& restart = "", long stop_in_candidates = -1) {
    TrainOptions opt;
    opt.checkpoints = true;
    opt.stop_after = stop_after;
    opt.stop_in_candidates = stop_in_candidates;
    opt.restart = restart;
    return train(comm, cfg, opt);
  }
  static Comm* world_;
  static std::string dir_, data_;
};
Comm* Restart::world_ = nullptr;
std::string Restart::dir_, Restart::data_;

void expect_bitwise_equal(const TrainResult& a, const TrainResult& b) {
  EXPECT_EQ(a.objective_history, b.objective_history);
  EXPECT_EQ(a.kl_history, b.kl_history);
  EXPECT_EQ(a.model.tables.top, b.model.tables.top);
  for (std::size_t l = 0; l < a.model.tables.layers.size(); ++l) {
    EXPECT_EQ(a.model.tables.layers[l].W, b.model.tables.layers[l].W) << "layer " << l;
    EXPECT_EQ(a.model.tables.layers[l].U, b.model.tables.layers[l].U) << "layer " << l;
  }
}

double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return worst;
}

TEST_F(Restart, TwoPartsEqualOnePartBitwise) {
  for (const char* optimizer : {"em", "adam"})
    for (bool tied : {true, false}) {
      SCOPED_TRACE(std::string(optimizer) + (tied ? " tied" : " untied"));
      const std::string tag = std::string(optimizer) + (tied ? "-tied" : "-untied");
      const TrainResult whole = run(*world_, config(optimizer, tied, "whole-" + tag));
      const Config cfg = config(optimizer, tied, "parts-" + tag);
      const TrainResult first = run(*world_, cfg, 13);
      EXPECT_TRUE(first.stopped);
      EXPECT_EQ(first.objective_history.size(), 13u);
      EXPECT_EQ(first.checkpoint, checkpoint_path(cfg.output_dir, 13));
      const TrainResult second = run(*world_, cfg, -1, "latest");
      EXPECT_FALSE(second.stopped);
      expect_bitwise_equal(whole, second);

      // Extending a finished run (-P train.iterations=M) equals running to M at once.
      Config longer = cfg;
      longer.iterations = 30;
      const TrainResult extended = run(*world_, longer, -1, "latest");
      Config direct = config(optimizer, tied, "direct-" + tag);
      direct.iterations = 30;
      expect_bitwise_equal(run(*world_, direct), extended);
    }
}

// Stops during the candidate starts, each continued from the candidate-phase checkpoint
// (always checkpoint-00000000.h5): in start 1 before any start has finished, at the end of
// start 1, in start 2 with a best start saved beside it, in the last start; then to the
// end. The result equals the uninterrupted run bitwise, and a stop at the last start's
// last iteration is the post-selection checkpoint of the main phase.
TEST_F(Restart, StopsDuringCandidateStartsContinueBitwise) {
  // Adam untied keeps the most state (logits, moments, step counts, owner-exchanged rows).
  for (const auto& [optimizer, tied] : {std::pair{"em", true}, std::pair{"adam", false}}) {
    SCOPED_TRACE(std::string(optimizer) + (tied ? " tied" : " untied"));
    const std::string tag = std::string(optimizer) + (tied ? "-tied" : "-untied");
    Config whole_cfg = config(optimizer, tied, "cwhole-" + tag);
    whole_cfg.restarts = 3;
    const TrainResult whole = run(*world_, whole_cfg);
    Config cfg = config(optimizer, tied, "cparts-" + tag);
    cfg.restarts = 3;
    for (long at : {2, 4, 6, 9}) {  // start r, iteration k: at = 4 r + k
      const TrainResult part = run(*world_, cfg, -1, "latest", at);
      EXPECT_TRUE(part.stopped);
      EXPECT_EQ(part.checkpoint, checkpoint_path(cfg.output_dir, 0));
      EXPECT_EQ(part.stopped_at, fmt::format("in candidate start {}/3, iteration {} of 4",
                                             (at - 1) / 4 + 1, at - 4 * ((at - 1) / 4)));
      std::string used;
      const auto state = find_restart(*world_, "latest", cfg, 3000, &used);
      ASSERT_TRUE(state.has_value());
      EXPECT_TRUE(state->candidate_phase);
      EXPECT_EQ(state->candidate, (at - 1) / 4);
      EXPECT_EQ(state->best_candidate >= 0, at > 4);
    }
    // 12: the last start's last iteration, which is the main phase's first boundary.
    const TrainResult selected = run(*world_, cfg, -1, "latest", 12);
    EXPECT_FALSE(selected.stopped);
    expect_bitwise_equal(whole, selected);

    Config again = config(optimizer, tied, "cend-" + tag);
    again.restarts = 3;
    const TrainResult at_selection = run(*world_, again, 4);
    EXPECT_EQ(at_selection.stopped_at, "at iteration 4 of 24");
    EXPECT_EQ(at_selection.checkpoint, checkpoint_path(again.output_dir, 4));
    expect_bitwise_equal(whole, run(*world_, again, -1, "latest"));
  }
}

// The first part on one rank, the rest on all of them.
TEST_F(Restart, OtherRankCountAgreesToTolerance) {
  for (const char* optimizer : {"em", "adam"}) {
    SCOPED_TRACE(optimizer);
    const TrainResult whole = run(*world_, config(optimizer, false, std::string("w1-") + optimizer));
    const Config cfg = config(optimizer, false, std::string("x1-") + optimizer);
    if (world_->is_root()) {
      const Comm self(MPI_COMM_SELF);
      EXPECT_TRUE(run(self, cfg, 9).stopped);
    }
    world_->barrier();
    const TrainResult second = run(*world_, cfg, -1, "latest");
    EXPECT_LT(max_relative_difference(second.objective_history, whole.objective_history), 1e-10);
    EXPECT_LT(max_relative_difference(second.model.tables.top, whole.model.tables.top), 1e-10);
    for (std::size_t l = 0; l < whole.model.tables.layers.size(); ++l) {
      EXPECT_LT(max_relative_difference(second.model.tables.layers[l].U,
                                        whole.model.tables.layers[l].U), 1e-10);
      EXPECT_LT(max_relative_difference(second.model.tables.layers[l].W,
                                        whole.model.tables.layers[l].W), 1e-10);
    }
  }
}

// Rank 0 rewrites an integer attribute of a closed file (serial HDF5) and re-stamps it.
void set_int_attribute(const std::string& path, const char* name, long long value) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  ASSERT_GE(a, 0);
  EXPECT_GE(H5Awrite(a, H5T_NATIVE_LLONG, &value), 0);
  H5Aclose(a);
  H5Fclose(f);
  EXPECT_EQ(stamp_integrity(path), "");  // as another cmera version would have written it
}

std::string refusal(const Comm& comm, const std::string& path, const Config& cfg) {
  try {
    read_checkpoint(comm, path, cfg, 3000);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(Restart, BadCheckpointsAreRefusedAndLatestFallsBack) {
  Config cfg = config("adam", true, "bad");
  cfg.keep_checkpoints = 3;
  EXPECT_TRUE(run(*world_, cfg, 15).stopped);  // checkpoints 5, 10, 15
  const std::string c10 = checkpoint_path(cfg.output_dir, 10);
  const std::string c15 = checkpoint_path(cfg.output_dir, 15);
  EXPECT_FALSE(fs::exists(checkpoint_path(cfg.output_dir, 4)));  // pruned: keep 3

  Config other = cfg;
  other.chi = {2, 2, 2, 2};
  EXPECT_NE(refusal(*world_, c15, other).find("model.chi = [2, 2, 3, 2] (checkpoint) vs [2, 2, 2, 2]"),
            std::string::npos) << refusal(*world_, c15, other);
  other = cfg;
  other.seed = 99;
  EXPECT_NE(refusal(*world_, c15, other).find("train.seed"), std::string::npos);

  const std::string odd = cfg.output_dir + "/odd-phase.h5";  // not a name `latest` lists
  if (world_->is_root()) {
    fs::copy_file(c10, odd);
    set_int_attribute(odd, "phase", 7);
    set_int_attribute(c10, "checkpoint_format_version", kCheckpointFormatVersion + 1);
    fs::resize_file(c15, fs::file_size(c15) / 2);  // truncated
  }
  world_->barrier();
  EXPECT_NE(refusal(*world_, c10, cfg)
                .find(fmt::format("checkpoint format version {}, this cmera reads {}",
                                  kCheckpointFormatVersion + 1, kCheckpointFormatVersion)),
            std::string::npos) << refusal(*world_, c10, cfg);
  EXPECT_NE(refusal(*world_, c15, cfg), "");
  EXPECT_NE(refusal(*world_, odd, cfg).find("inconsistent phase = 7"), std::string::npos)
      << refusal(*world_, odd, cfg);

  // latest skips 15 (truncated) and 10 (future format), continues from 5, and ends where
  // an uninterrupted run ends.
  std::string used;
  const auto state = find_restart(*world_, "latest", cfg, 3000, &used);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(used, checkpoint_path(cfg.output_dir, 5));
  EXPECT_EQ(state->iteration(), 5);
  // Continuing from 5 would write over 15, which no longer verifies, so it cannot be known
  // to be this run's: refused until the user moves it away.
  EXPECT_THROW(run(*world_, cfg, -1, "latest"), Error);
  if (world_->is_root()) fs::rename(c15, cfg.output_dir + "/damaged-15.h5");
  world_->barrier();
  expect_bitwise_equal(run(*world_, config("adam", true, "bad-ref")),
                       run(*world_, cfg, -1, "latest"));

  // An explicit path is refused with an error, never replaced.
  EXPECT_THROW(run(*world_, cfg, -1, c10), Error);
  // Nothing to restart from: a fresh start.
  const TrainResult fresh = run(*world_, config("em", true, "empty"), -1, "latest");
  EXPECT_EQ(fresh.objective_history.size(), 24u);
}

// Rotation deletes only the checkpoints of the run being continued: a user's file named
// like a checkpoint and another run's checkpoint (same config, its own run id) survive,
// byte for byte, however many newer checkpoints the run writes.
TEST_F(Restart, RotationTouchesOnlyThisRunsCheckpoints) {
  Config cfg = config("em", true, "rotation");
  cfg.keep_checkpoints = 1;
  Config elsewhere = cfg;
  elsewhere.output_dir = config("em", true, "rotation-other").output_dir;
  EXPECT_TRUE(run(*world_, elsewhere, 5).stopped);
  EXPECT_TRUE(run(*world_, cfg, 10).stopped);
  const std::string user_file = checkpoint_path(cfg.output_dir, 2);
  const std::string other_run = checkpoint_path(cfg.output_dir, 3);
  if (world_->is_root()) {
    std::ofstream(user_file) << "a user's notes";
    fs::copy_file(checkpoint_path(elsewhere.output_dir, 5), other_run);
  }
  world_->barrier();
  const auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string user_bytes = bytes(user_file), other_bytes = bytes(other_run);
  const TrainResult done = run(*world_, cfg, -1, "latest");
  EXPECT_EQ(done.objective_history.size(), 24u);
  world_->barrier();
  EXPECT_EQ(bytes(user_file), user_bytes);
  EXPECT_EQ(bytes(other_run), other_bytes);
  EXPECT_FALSE(fs::exists(checkpoint_path(cfg.output_dir, 10)));  // this run's: rotated
  EXPECT_TRUE(fs::exists(checkpoint_path(cfg.output_dir, 24)));
  // A fresh start there is refused: it would have to rotate a run it does not continue.
  EXPECT_THROW(run(*world_, cfg), Error);
}

}  // namespace
}  // namespace cmera
