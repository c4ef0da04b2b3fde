// Requests to stop training early, with a checkpoint: SIGUSR1, SIGTERM or SIGINT (Slurm's
// warning signal, a scheduler's or user's kill, Ctrl-C), a file named STOP in the output
// directory, or a wall-time budget (--max-hours). The signal handler only sets a flag;
// StopMonitor::poll, called by every rank at each iteration boundary of every phase of
// training, turns the flags into one collective decision, so all ranks stop after the same
// iteration. Under Open MPI's mpirun only SIGUSR1 sent to mpirun reaches the ranks as
// itself: mpirun turns its own SIGTERM or SIGINT into SIGCONT, SIGTERM one second later
// and SIGKILL one second after that, and exits 1 (README, "Exit status").
#pragma once
#include <chrono>
#include <string>

#include "cmera/comm.hpp"

namespace cmera {

// Installs the SIGUSR1 / SIGTERM / SIGINT handlers (idempotent). Until then these signals
// kill; only `cmera train` installs them, because only training polls the flag.
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
