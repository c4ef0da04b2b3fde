// Training driver: statistics pass, initialization with restarts, the optimization loop
// (objective, reverse pass, table-gradient reduction to owners, update, halo refresh),
// progress lines and the objective history.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/config.hpp"
#include "cmera/io.hpp"

namespace cmera {

class StopMonitor;

// Checkpoints, restart and stop requests (checkpoint.hpp, signals.hpp). The library
// default is a plain run that writes nothing; the CLI turns everything on.
struct TrainOptions {
  bool checkpoints = false;           // write checkpoints into config.output_dir
  std::string restart;                // "" (fresh), "latest" or a checkpoint path
  std::string command;                // recorded in the checkpoints' provenance
  const StopMonitor* stop = nullptr;  // polled at every iteration boundary of the main phase
  long stop_after = -1;               // stop with a checkpoint once this many iterations
                                      // are done (tests: a run in two parts)
  std::function<void()> before_work;  // collective; runs once the inputs, the restart and the
                                      // checkpoints are settled, before the statistics pass
                                      // (the CLI checks there that it may write model.h5)
};

struct TrainResult {
  Model model;
  std::vector<double> objective_history;  // mean per window of sum q log p
  std::vector<double> kl_history;         // KL per window (nats)
  double seconds_per_iteration = 0;       // main phase, checkpoint writes excluded
  bool stopped = false;                   // stopped early (with a checkpoint) on request
  std::string stop_reason;
  std::string checkpoint;                 // the last checkpoint written ("" if none)
};

// Runs the candidate starts and the main phase up to config.iterations (or continues the
// checkpoint options.restart names). Checkpoints happen only in the main phase: after
// candidate selection, every train.checkpoint_every iterations, at the end and on a stop.
// At the same rank count a continued run is bitwise identical to an uninterrupted one.
TrainResult train(const Comm& comm, const Config& config, const TrainOptions& options = {});

}  // namespace cmera
