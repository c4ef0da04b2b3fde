// `cmera train config.toml`: a chain model from a [S, N] dataset, a grid model from a
// [S, Ly, Lx] one (trainer.hpp); the output directory is prepared and locked, model.h5 is
// checked replaceable before any work, stop requests (signals, STOP file, --max-hours)
// end the run with a checkpoint and exit status 85, and model.h5 is written at the end.
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <vector>

#include "cmera/checkpoint.hpp"
#include "cmera/config.hpp"
#include "cmera/error.hpp"
#include "cmera/io.hpp"
#include "cmera/output_guard.hpp"
#include "cmera/provenance.hpp"
#include "cmera/signals.hpp"
#include "cmera/trainer.hpp"
#include "commands.hpp"

namespace cmera::cli {

namespace {

struct TrainFlags {
  std::string restart;   // "" (not given), "latest" or a checkpoint path
  double max_hours = 0;  // 0 (not given): no budget
  bool restart_given = false, max_hours_given = false;
};

// Exit status kExitCheckpointed (85) when stopped early: the job script's cue to continue.
int run_train(const Comm& comm, const std::string& config_path,
              const std::vector<std::string>& overrides, const TrainFlags& flags,
              const std::string& command) {
  install_stop_handlers();  // first: a signal during setup is a stop request, not a kill
  // Given but empty or zero would silently mean "start fresh" or "no limit".
  if (flags.restart_given && flags.restart.empty())
    throw Error("--restart must be 'latest' or a checkpoint file, got an empty string");
  if (flags.max_hours_given && !(std::isfinite(flags.max_hours) && flags.max_hours > 0))
    throw Error(fmt::format("--max-hours must be a finite number of hours > 0, got {}",
                            flags.max_hours));
  const Config cfg = load_config(config_path, overrides);
  prepare_output_dir(comm, cfg.output_dir);
  const OutputDirLock lock(comm, cfg.output_dir);
  const std::string path = (std::filesystem::path(cfg.output_dir) / "model.h5").string();
  const auto require_model_replaceable = [&] {
    require_replaceable(comm, path, "model", {cfg.data_path}, [&](const FileIdentity& id) {
      const std::string diff = config_difference(id.config_toml, path + ":/config", cfg, "model.h5");
      return diff.empty() ? diff : "it was trained with another config: " + diff;
    });
  };
  const StopMonitor stop((std::filesystem::path(cfg.output_dir) / "STOP").string(), flags.max_hours);
  TrainOptions options;
  options.checkpoints = true;
  options.restart = flags.restart;
  options.command = command;
  options.stop = &stop;
  options.before_work = require_model_replaceable;
  TrainResult res = train(comm, cfg, options);
  if (res.stopped) {
    // Before the first iteration there is nothing new to save: --restart latest then
    // continues from the checkpoint it started from, or starts afresh.
    if (comm.is_root())
      fmt::print("stopped {}: {}; {}; exit status {} (continue with --restart latest)\n",
                 res.stopped_at, res.stop_reason,
                 res.checkpoint.empty() ? "nothing new to checkpoint" : "checkpoint " + res.checkpoint,
                 static_cast<int>(kExitCheckpointed));
    return kExitCheckpointed;
  }
  require_model_replaceable();  // a file may have appeared there while it trained
  ModelFileContents out;
  out.model = std::move(res.model);
  out.grid = res.grid;
  out.config_toml = cfg.to_toml();
  out.objective_history = res.objective_history;
  out.kl_history = res.kl_history;
  out.provenance = provenance(command, out.config_toml);
  write_model(comm, path, out);
  if (comm.is_root()) {
    const double kl = out.kl_history.empty() ? NAN : out.kl_history.back();
    fmt::print("wrote {}  (final KL/window {:.3e}, {:.4f} s/iter)\n", path, kl,
               res.seconds_per_iteration);
  }
  return 0;
}

struct TrainArgs {
  std::string config_path;
  std::vector<std::string> overrides;
  TrainFlags flags;
};

}  // namespace

Command add_train(CLI::App& app, const Comm& comm, const std::string& line) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* train_cmd = app.add_subcommand("train", "Train a MERA on a dataset (config in TOML).");
  train_cmd->add_option("config", a->config_path, "Config file (TOML)")->required();
  train_cmd->add_option("-P,--set", a->overrides, "Override a config key: section.key=value")
      ->allow_extra_args(false);
  const CLI::Option* restart_opt = train_cmd->add_option("--restart", a->flags.restart,
                        "Continue from a checkpoint: 'latest' (newest valid one in output.dir;\n"
                        "a fresh start if there is none) or a checkpoint file");
  const CLI::Option* max_hours_opt = train_cmd->add_option(
      "--max-hours", a->flags.max_hours,
      "Stop with a checkpoint (exit 85) before this much wall time has passed\n"
      "(hours: a finite number > 0; without it, no limit)");
  return {train_cmd, [&comm, a, line, restart_opt, max_hours_opt] {
    a->flags.restart_given = restart_opt->count() > 0;
    a->flags.max_hours_given = max_hours_opt->count() > 0;
    return run_train(comm, a->config_path, a->overrides, a->flags, line);
  }};
}

}  // namespace cmera::cli
