// Requests to stop training early, with a checkpoint: SIGUSR1 or SIGTERM (Slurm's warning
// signal, a scheduler's or user's kill), a file named STOP in the output directory, or a
// wall-time budget (--max-hours). The signal handler only sets a flag; StopMonitor::poll,
// called by every rank at each iteration boundary, turns the flags into one collective
// decision, so all ranks stop after the same iteration.
#pragma once
#include <chrono>
#include <string>

#include "cmera/comm.hpp"

namespace cmera {

// Installs the SIGUSR1 / SIGTERM handlers (idempotent). Until then these signals kill.
void install_stop_handlers();
// The last stop signal received (0: none); async-signal-safe flag, never cleared.
int stop_signal_received();

class StopMonitor {
 public:
  // stop_file: path whose existence requests a stop ("" = none); max_hours <= 0: no budget.
  StopMonitor(std::string stop_file, double max_hours);
  // Collective. Why to stop now ("" = go on). `next_seconds`: the time the caller needs to
  // reach the next boundary and write a checkpoint there; the budget stops the run while
  // that still fits.
  std::string poll(const Comm& comm, double next_seconds) const;

 private:
  std::string stop_file_;
  double budget_seconds_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace cmera
