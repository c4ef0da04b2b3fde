// Training at whatever rank count ctest runs it: the P-rank run equals a 1-rank run of
// the same config (run on MPI_COMM_SELF inside the same job) to 1e-10 relative, for EM
// and Adam, tied and untied, with windows and pair terms: the domain decomposition
// changes only the summation order.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>

#include "cmera/ising1d.hpp"
#include "ising_data.hpp"
#include "cmera/trainer.hpp"

namespace cmera {
namespace {

using testing::scratch_dir;
using testing::write_ising;

double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return worst;
}

double max_table_difference(const Tables& a, const Tables& b) {
  double worst = max_relative_difference(a.top, b.top);
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    worst = std::max(worst, max_relative_difference(a.layers[l].W, b.layers[l].W));
    worst = std::max(worst, max_relative_difference(a.layers[l].U, b.layers[l].U));
  }
  return worst;
}

class Training : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new Comm(MPI_COMM_WORLD);
    dir_ = scratch_dir(*world_, "training");
  }
  static void TearDownTestSuite() {
    world_->barrier();
    if (world_->is_root()) std::filesystem::remove_all(dir_);
    delete world_;
  }
  static Comm* world_;
  static std::string dir_;
};
Comm* Training::world_ = nullptr;
std::string Training::dir_;

// The tolerance: sums of per-rank partials differ in the last bits; 30 iterations of a
// contracting update keep that far below 1e-10.
constexpr double kRankTolerance = 1e-10;

TEST_F(Training, SameResultAtEveryRankCount) {
  const std::string data = write_ising(*world_, dir_, 48, 4000, 0.5, 11);
  for (const char* optimizer : {"em", "adam"})
    for (bool tied : {true, false}) {
      Config cfg;
      cfg.data_path = data;
      cfg.chi = {2, 2, 3, 2};
      cfg.tied = tied;
      cfg.optimizer = optimizer;
      cfg.iterations = 30;
      cfg.restarts = 2;
      cfg.restart_iterations = 5;
      cfg.log_seconds = 1e9;
      const TrainResult parallel = train(*world_, cfg);
      if (world_->is_root()) {
        const Comm self(MPI_COMM_SELF);
        const TrainResult serial = train(self, cfg);
        SCOPED_TRACE(std::string(optimizer) + (tied ? " tied" : " untied"));
        EXPECT_LT(max_relative_difference(parallel.objective_history, serial.objective_history),
                  kRankTolerance);
        EXPECT_LT(max_table_difference(parallel.model.tables, serial.model.tables), kRankTolerance);
      }
      // Every rank holds the same final tables (owners broadcast their rows).
      std::vector<double> top = parallel.model.tables.top;
      world_->broadcast(top.data(), top.size(), 0);
      EXPECT_EQ(top, parallel.model.tables.top);
    }
}

}  // namespace
}  // namespace cmera
