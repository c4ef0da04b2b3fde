// Stop requests (signals.hpp). The handler stores the signal number in a lock-free atomic
// and does nothing else (the only async-signal-safe thing to do); poll() reads it at an
// iteration boundary. Trade-off: a stop waits for the current iteration to finish, which
// keeps the checkpoint consistent without any locking in the numerical code.
#include "cmera/signals.hpp"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fmt/format.h>

namespace cmera {

namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig, std::memory_order_relaxed); }

const char* signal_name(int sig) {
  switch (sig) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "a signal";
  }
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // system calls in MPI and HDF5 resume instead of failing
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

int stop_signal_received() { return g_stop_signal.load(std::memory_order_relaxed); }

StopMonitor::StopMonitor(std::string stop_file, double max_hours)
    : stop_file_(std::move(stop_file)), budget_seconds_(max_hours * 3600.0),
      start_(std::chrono::steady_clock::now()) {}

std::string StopMonitor::poll(const Comm& comm, double next_seconds) const {
  // Codes ordered by priority; the maximum over ranks wins, so any rank's signal counts.
  enum : long long { kGoOn = 0, kBudget = 1, kStopFile = 2, kSignal = 3 };
  long long code = kGoOn, sig = stop_signal_received();
  if (sig != 0) code = kSignal;
  if (comm.is_root() && code == kGoOn) {
    std::error_code ec;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (!stop_file_.empty() && std::filesystem::exists(stop_file_, ec)) code = kStopFile;
    else if (budget_seconds_ > 0 && elapsed + next_seconds > budget_seconds_) code = kBudget;
  }
  code = comm.max(code);
  if (code == kSignal) sig = comm.max(sig);
  switch (code) {
    case kSignal: return fmt::format("received {}", signal_name(static_cast<int>(sig)));
    case kStopFile: return fmt::format("found {}", stop_file_);
    case kBudget: return fmt::format("--max-hours {:g} would be exceeded by the next iteration",
                                     budget_seconds_ / 3600.0);
    default: return {};
  }
}

}  // namespace cmera
