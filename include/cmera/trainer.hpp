// Training driver: statistics pass, initialization with restarts, the optimization loop
// (objective, reverse pass, table-gradient reduction to owners, update, halo refresh),
// progress lines and the objective history.
#pragma once
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/config.hpp"
#include "cmera/io.hpp"

namespace cmera {

struct TrainResult {
  Model model;
  std::vector<double> objective_history;  // mean per window of sum q log p
  std::vector<double> kl_history;         // KL per window (nats)
  double seconds_per_iteration = 0;
};

TrainResult train(const Comm& comm, const Config& config);

}  // namespace cmera
