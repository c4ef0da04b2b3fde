// Training driver: statistics pass, initialization with restarts, the optimization loop
// (objective, reverse pass, table-gradient reduction to owners, update, halo refresh),
// progress lines and the objective history.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/config.hpp"
#include "cmera/grid.hpp"
#include "cmera/io.hpp"

namespace cmera {

class StopMonitor;

// Checkpoints, restart and stop requests (checkpoint.hpp, signals.hpp). The library
// default is a plain run that writes nothing; the CLI turns everything on.
struct TrainOptions {
  bool checkpoints = false;           // write checkpoints into config.output_dir
  std::string restart;                // "" (fresh), "latest" or a checkpoint path
  std::string command;                // recorded in the checkpoints' provenance
  const StopMonitor* stop = nullptr;  // polled after the statistics pass and at every
                                      // iteration boundary of both phases
  long stop_after = -1;               // stop with a checkpoint once this many iterations
                                      // are done (tests: a run in two parts)
  long stop_in_candidates = -1;       // the same in the candidate phase, counting every
                                      // start's iterations (start r, iteration k: r *
                                      // restart_iterations + k)
  std::function<void()> before_work;  // collective; runs once the inputs, the restart and the
                                      // checkpoints are settled, before the statistics pass
                                      // (the CLI checks there that it may write model.h5)
};

struct TrainResult {
  Model model;                            // a grid's chain view (io.hpp, as_chain_model)
  std::optional<GridLattice> grid;        // set when the dataset was a grid [S, Ly, Lx]
  std::vector<double> objective_history;  // mean per window of sum q log p
  std::vector<double> kl_history;         // KL per window (nats)
  double seconds_per_iteration = 0;       // main phase, checkpoint writes excluded
  bool stopped = false;                   // stopped early (with a checkpoint) on request
  std::string stop_reason;                // why: "received SIGUSR1", "found .../STOP", ...
  std::string stopped_at;                 // where: "at iteration 40 of 300", "in candidate
                                          // start 2/4, iteration 7 of 20", "after the statistics
                                          // pass, before the first iteration" (no checkpoint)
  std::string checkpoint;                 // the last checkpoint written ("" if none)
};

// The lattice is the dataset's: [S, N] trains a chain, [S, Ly, Lx] a grid
// (docs/design-grid.md §5, §7).
// Runs the candidate starts and the main phase up to config.iterations (or continues the
// checkpoint options.restart names). Checkpoints: after candidate selection, every
// train.checkpoint_every iterations of the main phase, at the end, and on a stop in either
// phase (a stop during a candidate start saves that start and the best finished one). At
// the same rank count a continued run is bitwise identical to an uninterrupted one.
TrainResult train(const Comm& comm, const Config& config, const TrainOptions& options = {});

}  // namespace cmera
