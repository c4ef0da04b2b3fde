// cmera command line: generate, train, eval, sample, info. Parses arguments (CLI11),
// initializes MPI, and turns cmera::Error into one line on rank 0 and a documented exit
// status on every rank. Errors are raised collectively (Comm::check), so no rank is left
// waiting in a collective call when another one fails.
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <utility>

#include "cmera/checkpoint.hpp"
#include "cmera/comm.hpp"
#include "cmera/config.hpp"
#include "cmera/error.hpp"
#include "cmera/evaluate.hpp"
#include "cmera/io.hpp"
#include "cmera/output_guard.hpp"
#include "cmera/ising1d.hpp"
#include "cmera/ising2d.hpp"
#include "cmera/memory.hpp"
#include "cmera/provenance.hpp"
#include "cmera/sampler.hpp"
#include "cmera/signals.hpp"
#include "cmera/trainer.hpp"

namespace cmera {
namespace {

std::string join_args(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

void require_positive(long value, const char* option) {
  if (value <= 0) throw Error(fmt::format("{} must be a positive integer, got {}", option, value));
}

struct GenerateArgs {
  std::string model = "ising1d";
  long sites = 128, samples = 10000;
  double corr = 0.6;
  std::uint64_t seed = 1;
  std::string output;
};

int run_generate(const Comm& comm, const GenerateArgs& a, const std::string& command) {
  require_positive(a.sites, "--sites");
  require_positive(a.samples, "--samples");
  if (!(a.corr >= 0 && a.corr < 1))
    throw Error(fmt::format("--corr must be in [0, 1), got {}", a.corr));
  const long block = dataset_block_rows(comm, a.sites) / comm.size();
  require_memory(comm, static_cast<double>(block) * static_cast<double>(a.sites),
                 fmt::format("a block of {} samples x --sites {}", block, a.sites), "to draw");
  const double u = ising1d::bond_parameter_for(a.corr, a.sites);
  const std::string params = fmt::format(
      "generator = \"ising1d\"\nsites = {}\nsamples = {}\ncorr = {:.17g}\nbond_tanh = {:.17g}\nseed = {}\n",
      a.sites, a.samples, a.corr, u, a.seed);
  require_replaceable(comm, a.output, "dataset", {}, same_parameters(params));
  write_dataset(comm, a.output, a.samples, a.sites, 2, [&](long first, long rows, std::uint8_t* out) {
#pragma omp parallel for schedule(static)
    for (long k = 0; k < rows; ++k)
      ising1d::draw(u, a.sites, a.seed, static_cast<std::uint64_t>(first + k), out + k * a.sites);
  }, provenance(command, params));
  if (comm.is_root())
    fmt::print("wrote {} ({} samples x {} sites, periodic Ising chain, <s_i s_i+1> = {})\n",
               a.output, a.samples, a.sites, a.corr);
  return 0;
}

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

int run_eval(const Comm& comm, const std::string& model_path, const std::string& data_path,
             long max_distance, bool json) {
  const ModelFileContents mf = read_model(comm, model_path);
  DatasetReader data(comm, data_path);
  const long R = max_distance > 0 ? max_distance : mf.model.geometry.sites / 2;
  const Evaluation ev = evaluate(comm, mf.model, data, R, 16384);
  const std::vector<LayerFlow> flow = layer_flow(mf.model);
  const bool tied = mf.model.tied;
  const ScalingSpectra scaling = tied ? scaling_dimensions(mf.model, 8) : ScalingSpectra{};
  if (!comm.is_root()) return 0;
  auto spectrum_json = [](const Spectrum& s) {
    return nlohmann::json{{"layers", s.layers}, {"lambda", s.magnitude}, {"phase", s.phase},
                          {"delta", s.delta}};
  };
  if (json) {
    nlohmann::json j;
    j["model"] = model_path;
    j["data"] = data_path;
    j["kl_per_window"] = ev.kl_per_window;
    j["cross_entropy_per_window"] = ev.cross_entropy_per_window;
    j["data_entropy_per_window"] = ev.data_entropy_per_window;
    j["corr"] = {{"r", ev.r}, {"model", ev.corr_model}, {"data", ev.corr_data}};
    j["flow"] = nlohmann::json::array();
    for (const LayerFlow& f : flow)
      j["flow"].push_back({{"layer", f.layer}, {"marginal", f.marginal},
                           {"mutual_information", f.mutual_information}});
    if (tied) {
      j["scaling"] = spectrum_json(scaling.averaged);
      j["scaling"]["per_layer"] = nlohmann::json::array();
      for (const Spectrum& s : scaling.per_layer)
        j["scaling"]["per_layer"].push_back(spectrum_json(s));
    }
    std::cout << j.dump(1) << std::endl;
  } else {
    fmt::print("model {}\ndata  {}\n", model_path, data_path);
    fmt::print("KL per window            {:.6e} nats\n", ev.kl_per_window);
    fmt::print("cross entropy per window {:.10f} nats\n", ev.cross_entropy_per_window);
    fmt::print("data entropy per window  {:.10f} nats\n\n", ev.data_entropy_per_window);
    fmt::print("{:>6}  {:>14}  {:>14}  {:>12}\n", "r", "C_model(r)", "C_data(r)", "difference");
    for (std::size_t k = 0; k < ev.r.size(); ++k)
      fmt::print("{:>6}  {:>14.10f}  {:>14.10f}  {:>12.3e}\n", ev.r[k], ev.corr_model[k],
                 ev.corr_data[k], ev.corr_model[k] - ev.corr_data[k]);
    fmt::print("\nlearned flow: per layer, mean single-site marginal and I(x_i; x_i+1) (nats)\n");
    for (const LayerFlow& f : flow)
      fmt::print("{:>6}  [{:.6f}]  {:.6e}\n", f.layer, fmt::join(f.marginal, ", "),
                 f.mutual_information);
    if (tied) {
      fmt::print("\nscaling: leading |lambda| of the ascending map, Delta = -log2|lambda|\n");
      auto row = [](const std::string& what, const Spectrum& s) {
        fmt::print("{:>12}  lambda [{:.5f}]\n{:>12}  Delta  [{:.5f}]\n", what,
                   fmt::join(s.magnitude, ", "), "", fmt::join(s.delta, ", "));
      };
      for (const Spectrum& s : scaling.per_layer) row(fmt::format("layer {}", s.layers[0]), s);
      const Spectrum& avg = scaling.averaged;
      if (!avg.layers.empty())
        row(fmt::format("layers {}-{}", avg.layers.front(), avg.layers.back()), avg);
    }
  }
  return 0;
}

int run_sample(const Comm& comm, const std::string& model_path, long count, std::uint64_t seed,
               const std::string& output, const std::string& command) {
  require_positive(count, "--count");
  const std::string params =
      fmt::format("generator = \"cmera-sample\"\nmodel = \"{}\"\ncount = {}\nseed = {}\n",
                  model_path, count, seed);
  require_replaceable(comm, output, "dataset", {model_path}, same_parameters(params));
  const ModelFileContents mf = read_model(comm, model_path);
  const Model& m = mf.model;
  const long n = m.geometry.sites;
  const long block = dataset_block_rows(comm, n) / comm.size();
  require_memory(comm, static_cast<double>(block) * static_cast<double>(n),
                 fmt::format("a block of {} samples with N = {}", block, n), "to draw");
  const AncestralSampler sampler(m);
  write_dataset(comm, output, count, n, m.geometry.chi[0], [&](long first, long rows, std::uint8_t* out) {
#pragma omp parallel for schedule(static)
    for (long k = 0; k < rows; ++k)
      sampler.draw(seed, static_cast<std::uint64_t>(first + k), out + k * n);
  }, provenance(command, params));
  if (comm.is_root()) fmt::print("wrote {} ({} samples x {} sites)\n", output, count, n);
  return 0;
}

int dispatch(int argc, char** argv, const Comm& comm) {
  CLI::App app{"cmera: learn generative models of lattice configurations with a classical MERA\n"
               "(exact causal-cone marginals, no sampling during training)."};
  app.set_version_flag("--version", version_string());
  app.require_subcommand(1);

  GenerateArgs gen;
  auto* generate = app.add_subcommand("generate", "Write a synthetic dataset (HDF5 /configs uint8 [S, N]).");
  generate->require_subcommand(1);
  auto* g1 = generate->add_subcommand("ising1d", "Exact samples of the periodic 1D Ising chain.");
  g1->add_option("--sites", gen.sites, "Number of sites N")->required();
  g1->add_option("--samples", gen.samples, "Number of configurations S")->required();
  g1->add_option("--corr", gen.corr, "Nearest-neighbour correlation <s_i s_i+1> in [0, 1)")->required();
  g1->add_option("--seed", gen.seed, "Random seed")->default_val(1);
  g1->add_option("--output", gen.output, "Output HDF5 file")->required();

  ising2d::Params gen2;
  std::string beta2, output2;
  bool rows2 = false;
  auto* g2 = generate->add_subcommand(
      "ising2d", "Equilibrium samples of the periodic 2D Ising model (J = 1) from Swendsen-Wang\n"
                 "chains; /configs uint8 [S, L, L], rows [c S/C, (c+1) S/C) from chain c in time\n"
                 "order. The file depends on --chains, never on the rank count.");
  g2->add_option("--size", gen2.size, "Linear size L of the L x L torus")->required();
  g2->add_option("--beta", beta2, "Inverse temperature: a number, or 'critical' = ln(1+sqrt 2)/2")
      ->required();
  g2->add_option("--samples", gen2.samples, "Number of configurations S")->required();
  g2->add_option("--seed", gen2.seed, "Random seed")->default_val(1);
  g2->add_option("--output", output2, "Output HDF5 file")->required();
  g2->add_flag("--rows", rows2,
               "Write each configuration's L rows as L consecutive samples, [S*L, L]: the\n"
               "format train/eval read (rows of one configuration are correlated)");
  g2->add_option("--chains", gen2.chains, "Independent Markov chains C (default min(S, 64))");
  g2->add_option("--sweeps-between", gen2.sweeps_between,
                 "Sweeps between a chain's samples. At beta_c, L = 128, tau_int is 5.9 sweeps\n"
                 "(energy) and 4.5 (|m|), lag-10 autocorrelations 0.19 and 0.13: 10 gives\n"
                 "nearly independent samples; off criticality tau_int < 2")
      ->default_val(ising2d::kDefaultSweepsBetween);
  g2->add_option("--thermalization", gen2.thermalization,
                 "Sweeps before a chain's first sample, from a random start (the energy\n"
                 "equilibrates in ~30 at beta_c; 200 leaves no detectable bias)")
      ->default_val(ising2d::kDefaultThermalization);

  std::string config_path;
  std::vector<std::string> overrides;
  auto* train_cmd = app.add_subcommand("train", "Train a MERA on a dataset (config in TOML).");
  train_cmd->add_option("config", config_path, "Config file (TOML)")->required();
  train_cmd->add_option("-P,--set", overrides, "Override a config key: section.key=value")
      ->allow_extra_args(false);
  TrainFlags train_flags;
  const CLI::Option* restart_opt = train_cmd->add_option("--restart", train_flags.restart,
                        "Continue from a checkpoint: 'latest' (newest valid one in output.dir;\n"
                        "a fresh start if there is none) or a checkpoint file");
  const CLI::Option* max_hours_opt = train_cmd->add_option(
      "--max-hours", train_flags.max_hours,
      "Stop with a checkpoint (exit 85) before this much wall time has passed\n"
      "(hours: a finite number > 0; without it, no limit)");

  std::string info_path;
  auto* info = app.add_subcommand("info", "Summarise a cmera file (dataset, model, checkpoint).");
  info->add_option("file", info_path, "HDF5 file")->required();

  std::string model_path, data_path;
  long max_distance = 0;
  bool json = false;
  auto* eval = app.add_subcommand(
      "eval", "Evaluate a model against data: window KL, C(r); the learned flow per layer\n"
              "and, for tied models, scaling dimensions.");
  eval->add_option("model", model_path, "Model file (model.h5)")->required();
  eval->add_option("--data", data_path, "Dataset file")->required();
  eval->add_option("--max-distance", max_distance, "Largest r for C(r) (default N/2)");
  eval->add_flag("--json", json, "Print one JSON object (full double precision)");

  long count = 0;
  std::uint64_t seed = 1;
  std::string output;
  auto* sample = app.add_subcommand("sample", "Draw exact ancestral samples from a model.");
  sample->add_option("model", model_path, "Model file")->required();
  sample->add_option("--count", count, "Number of samples")->required();
  sample->add_option("--seed", seed, "Random seed")->default_val(1);
  sample->add_option("--output", output, "Output HDF5 file (dataset format)")->required();

  // Usage errors become one cmera::Error line like every other bad input; CLI11 alone
  // would only say "A subcommand is required" for a misspelt command.
  std::vector<std::string> names;
  for (const CLI::App* sub : std::as_const(app).get_subcommands(nullptr)) names.push_back(sub->get_name());
  if (argc > 1 && argv[1][0] != '-' && std::ranges::find(names, argv[1]) == names.end()) {
    throw Error(fmt::format("unknown command '{}' (expected one of {}; see cmera --help)", argv[1],
                            fmt::join(names, ", ")));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      if (comm.is_root()) app.exit(e);
      return 0;
    }
    std::string where = "cmera";
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();)
      where += " " + (sub = sub->get_subcommands().front())->get_name();
    throw Error(fmt::format("{} (see {} --help)", e.what(), where));
  }
  const std::string command = join_args(argc, argv);
  if (*g1) return run_generate(comm, gen, command);
  if (*g2) {
    gen2.beta = ising2d::parse_beta(beta2);
    const ising2d::Params p = ising2d::resolved(gen2);
    // A rank holds the samples of its chains: at most ceil(C / ranks) chains of
    // ceil(S / C) samples of L * L sites each.
    const double chains = std::ceil(static_cast<double>(p.chains) / comm.size());
    const double per_chain = std::ceil(static_cast<double>(p.samples) / static_cast<double>(p.chains));
    require_memory(comm, chains * per_chain * static_cast<double>(p.size) * static_cast<double>(p.size),
                   fmt::format("--samples {} of --size {}", p.samples, p.size),
                   "to hold its share of the dataset");
    ising2d::generate(comm, p, output2, rows2, command);
    if (comm.is_root())
      fmt::print("wrote {} ({} samples of the {}x{} Ising torus, beta = {:.10g}, {} chains)\n",
                 output2, p.samples, p.size, p.size, p.beta, p.chains);
    return 0;
  }
  if (*train_cmd) {
    train_flags.restart_given = restart_opt->count() > 0;
    train_flags.max_hours_given = max_hours_opt->count() > 0;
    return run_train(comm, config_path, overrides, train_flags, command);
  }
  if (*info) {
    const std::string text = describe_file(comm, info_path);
    if (comm.is_root()) fmt::print("{}", text);
    return 0;
  }
  if (*eval) {
    if (max_distance < 0) throw Error(fmt::format("--max-distance must be >= 1, got {}", max_distance));
    return run_eval(comm, model_path, data_path, max_distance, json);
  }
  if (*sample) return run_sample(comm, model_path, count, seed, output, command);
  return kExitUsage;
}

}  // namespace
}  // namespace cmera

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int code = 0;
  {
    const cmera::Comm comm(MPI_COMM_WORLD);
    try {
      code = cmera::dispatch(argc, argv, comm);
    } catch (const cmera::Error& e) {
      // Raised on every rank (collective check) or from rank-independent validation.
      if (comm.is_root()) std::cerr << "cmera: error: " << e.what() << std::endl;
      code = e.code();
    } catch (const std::exception& e) {
      // Unexpected and possibly local to this rank: take the whole job down now.
      std::cerr << "cmera: internal error on rank " << comm.rank() << ": " << e.what() << std::endl;
      MPI_Abort(MPI_COMM_WORLD, cmera::kExitRuntime);
    }
  }
  MPI_Finalize();
  return code;
}
