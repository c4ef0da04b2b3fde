// Checkpoint files (checkpoint.hpp) on top of the model writer of src/io/model_file.cpp and reader: a
// checkpoint is a model file of kind "checkpoint" with ModelFileExtras, written durably
// (fsync before and after the rename) because it is the one file a crashed job needs.
// Trade-off: a restart reads every table on every rank (simple, and any rank count works);
// at N = 65536, chi = 4 that is still well under a second.
#include "cmera/checkpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "cmera/error.hpp"
#include "cmera/io.hpp"
#include "cmera/output_guard.hpp"
#include "cmera/provenance.hpp"

namespace cmera {

namespace fs = std::filesystem;

namespace {

// At most 18 digits: every such number fits a long (a longer one is not a checkpoint).
const std::regex kCheckpointName(R"(checkpoint-(\d{1,18})\.h5)");

// More state tables than any optimizer keeps (Adam: logits, two moments, step counts).
constexpr long long kMaxOptimizerStates = 16;

std::string state_group(std::size_t k, const char* prefix = "") {
  return fmt::format("{}/optimizer/state_{}", prefix, k);
}
// The candidate phase's best finished start (checkpoint.hpp).
constexpr const char* kBest = "/best";
const std::string kBestModel = std::string(kBest) + "/model";

template <class T>
std::vector<T> concatenated(std::vector<T> a, const std::vector<T>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Checkpoints in `dir` (rank 0's view), newest first.
std::vector<std::pair<long, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<long, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, kCheckpointName))
      found.emplace_back(std::stol(m[1].str()), entry.path().string());
  }
  std::sort(found.rbegin(), found.rend());
  return found;
}

// depth as load_config leaves it (a Config built in code may still say -1 = "from chi").
Config resolved(Config c) {
  c.depth = static_cast<int>(c.chi.size()) - 1;
  return c;
}

// The keys a continued run may change; everything else must match the checkpoint's.
Config without_run_controls(Config c) {
  c = resolved(std::move(c));
  const Config defaults;
  c.iterations = defaults.iterations;
  c.checkpoint_every = defaults.checkpoint_every;
  c.log_seconds = defaults.log_seconds;
  c.data_chunk_samples = defaults.data_chunk_samples;
  c.output_dir = defaults.output_dir;
  c.keep_checkpoints = defaults.keep_checkpoints;
  return c;
}

// First key whose value differs, as "section.key = a (checkpoint) vs b (this run)".
std::string first_difference(const Config& saved, const Config& now, const std::string& saved_label) {
  std::istringstream a(without_run_controls(saved).to_toml()), b(without_run_controls(now).to_toml());
  std::string la, lb, section;
  const auto value = [](const std::string& line) { return line.substr(0, line.find(" #")); };
  while (std::getline(a, la) && std::getline(b, lb)) {
    if (!la.empty() && la[0] == '[') section = la.substr(1, la.size() - 2);
    if (value(la) != value(lb)) {
      auto trim = [](std::string s) { return s.erase(s.find_last_not_of(' ') + 1); };
      return fmt::format("{}.{} ({}) vs {} (this run)", section, trim(value(la)), saved_label,
                         trim(value(lb).substr(value(lb).find('=') + 2)));
    }
  }
  return {};
}

// 64-bit FNV-1a of the config's keys that a continued run may not change: names the
// temporaries of every run of this configuration (an identity, not a security measure).
std::string config_digest(const Config& cfg) {
  std::uint64_t h = 14695981039346656037ull;
  for (const unsigned char c : without_run_controls(cfg).to_toml()) h = (h ^ c) * 1099511628211ull;
  return fmt::format("{:016x}", h);
}

// A fresh identity for a training run: 64 random bits from rank 0, on every rank.
std::string new_run_id(const Comm& comm) {
  std::string id;
  if (comm.is_root()) {
    std::random_device entropy;
    const std::uint64_t bits = (std::uint64_t{entropy()} << 32) ^ entropy() ^
                               static_cast<std::uint64_t>(getpid()) ^
                               static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    id = fmt::format("{:016x}", bits);
  }
  comm.broadcast(id);
  return id;
}

}  // namespace

std::string checkpoint_path(const std::string& dir, long iteration) {
  return (fs::path(dir) / fmt::format("checkpoint-{:08d}.h5", iteration)).string();
}

std::string config_difference(const std::string& saved_toml, const std::string& where,
                              const Config& now, const std::string& saved_label) {
  return first_difference(parse_config_text(saved_toml, where, {}), now, saved_label);
}

CheckpointSeries::CheckpointSeries(const Comm& comm, const Config& cfg, const TrainingState* resumed,
                                   std::optional<GridLattice> grid)
    : run_id_(resumed && !resumed->run_id.empty() ? resumed->run_id : new_run_id(comm)),
      grid_(std::move(grid)),
      temporary_tag_(config_digest(cfg) + "." + run_id_) {
  std::string problem;
  if (comm.is_root()) {
    remove_leftovers(cfg);
    const auto present = list_checkpoints(cfg.output_dir);
    if (!resumed && !present.empty())
      problem = fmt::format("output.dir '{}' already holds checkpoints (newest: {}); continue that "
                            "run with --restart latest, or move them away, or choose another "
                            "output.dir", cfg.output_dir, present.front().second);
    for (const auto& [iteration, path] : resumed ? present : decltype(present){}) {
      std::string why_not;
      const std::optional<FileIdentity> id = identify_cmera_file(path, why_not);
      if (id && id->kind == "checkpoint" && id->run_id == run_id_)
        mine_.emplace_back(iteration, path);
      else if (iteration > resumed->iteration() && problem.empty())
        problem = fmt::format("{} was not written by the run being continued ({}), and continuing "
                              "to iteration {} would write over it; move it away",
                              path, id ? "another run's checkpoint" : why_not, iteration);
    }
  }
  comm.broadcast(problem);
  comm.check(problem.empty(), problem);
}

CheckpointWrite CheckpointSeries::write(const Comm& comm, const Config& cfg,
                                        const std::string& command, const Model& model,
                                        const std::vector<const Tables*>& optimizer_state,
                                        const std::vector<double>& objective_history,
                                        const std::vector<double>& kl_history, int candidate,
                                        long data_samples, const CandidatePhaseWrite* candidates) {
  const auto start = std::chrono::steady_clock::now();
  const long iteration = candidates ? 0 : static_cast<long>(objective_history.size());
  CheckpointWrite result{checkpoint_path(cfg.output_dir, iteration)};
  // A file of this name that this run did not write appeared since the start: refuse it.
  // (Rank 0 keeps the list; all ranks must take the same branch into the collective check.)
  const bool known = std::any_of(mine_.begin(), mine_.end(), [&](const auto& c) { return c.second == result.path; });
  if (comm.max(known ? 1LL : 0LL) == 0)
    require_replaceable(comm, result.path, "checkpoint", {cfg.data_path}, [&](const FileIdentity& id) {
      return id.run_id == run_id_ ? std::string() : std::string("another run's checkpoint");
    });
  const bool has_best = candidates && candidates->best_candidate >= 0;
  const std::vector<double> none;
  const std::vector<double>& best_objective = has_best ? *candidates->best_objective_history : none;

  ModelFileContents contents;
  contents.model = model;  // ModelFileContents owns its model: one copy of the tables
  contents.grid = grid_;
  contents.config_toml = resolved(cfg).to_toml();
  contents.objective_history = concatenated(best_objective, objective_history);
  contents.kl_history = concatenated(has_best ? *candidates->best_kl_history : none, kl_history);
  contents.provenance = provenance(command, contents.config_toml);
  ModelFileExtras extras;
  extras.kind = "checkpoint";
  extras.version = {"checkpoint_format_version", kCheckpointFormatVersion};
  extras.integers = {{"iteration", iteration},
                     {"candidate", candidate},
                     {"seed", static_cast<long long>(cfg.seed)},
                     {"data_samples", data_samples},
                     {"ranks", comm.size()},
                     {"optimizer_states", static_cast<long long>(optimizer_state.size())},
                     {"phase", candidates ? 1 : 0},
                     {"best_candidate", has_best ? candidates->best_candidate : -1},
                     {"best_iterations", static_cast<long long>(best_objective.size())}};
  extras.strings = {{"run_id", run_id_}};
  extras.temporary_tag = temporary_tag_;
  for (std::size_t k = 0; k < optimizer_state.size(); ++k) {
    extras.table_sets.push_back(state_group(k));
    extras.tables.push_back(optimizer_state[k]);
  }
  if (has_best) {
    extras.table_sets.push_back(kBestModel);
    extras.tables.push_back(&candidates->best_model->tables);
    for (std::size_t k = 0; k < candidates->best_optimizer_state.size(); ++k) {
      extras.table_sets.push_back(state_group(k, kBest));
      extras.tables.push_back(candidates->best_optimizer_state[k]);
    }
  }
  std::function<void()> hold;
  if (const char* delay = std::getenv("CMERA_TEST_CHECKPOINT_DELAY"))
    hold = [seconds = std::atof(delay)] {
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    };
  write_model(comm, result.path, contents, &extras, /*durable=*/true, hold);
  if (comm.is_root()) {
    std::error_code ec;
    result.bytes = static_cast<long long>(fs::file_size(result.path, ec));
    std::erase_if(mine_, [&](const auto& c) { return c.second == result.path; });
    mine_.emplace_back(iteration, result.path);
    prune(cfg.keep_checkpoints);
    remove_leftovers(cfg);
  }
  comm.barrier();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// Rank 0: keeps this run's newest `keep` checkpoints.
void CheckpointSeries::prune(int keep) {
  std::sort(mine_.rbegin(), mine_.rend());
  for (std::size_t k = static_cast<std::size_t>(keep); k < mine_.size(); ++k) {
    std::error_code ec;
    fs::remove(mine_[k].second, ec);
  }
  if (mine_.size() > static_cast<std::size_t>(keep)) mine_.resize(static_cast<std::size_t>(keep));
}

// Rank 0: removes the temporaries that killed writers of a run of this configuration left
// (named after it: `checkpoint-<n>.h5.tmp.<config digest>.<run id>`, write_model's
// temporary_tag); never another configuration's, never anything else.
void CheckpointSeries::remove_leftovers(const Config& cfg) const {
  const std::regex leftover("checkpoint-\\d+\\.h5\\.tmp\\." + config_digest(cfg) + "\\.[0-9a-f]{16}");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(cfg.output_dir, ec))
    if (std::regex_match(entry.path().filename().string(), leftover)) fs::remove(entry.path(), ec);
}

TrainingState read_checkpoint(const Comm& comm, const std::string& path, const Config& cfg,
                              long data_samples, const std::optional<GridLattice>& grid) {
  ModelFileExtras extras;
  extras.kind = "checkpoint";
  extras.version = {"checkpoint_format_version", kCheckpointFormatVersion};
  extras.integers = {{"iteration", 0},      {"candidate", 0},      {"data_samples", 0},
                     {"optimizer_states", 0}, {"phase", 0},          {"best_candidate", 0},
                     {"best_iterations", 0}};
  extras.strings = {{"run_id", ""}};
  const auto integer = [&](const char* name) {
    for (const auto& [key, value] : extras.integers)
      if (key == name) return value;
    return 0LL;
  };
  extras.before_tables = [&](const std::string& config_toml, ModelFileExtras& self) {
    const std::string diff = config_difference(config_toml, path + ":/config", cfg, "checkpoint");
    if (!diff.empty()) throw Error(fmt::format("{}: written for another config: {}", path, diff));
    if (integer("data_samples") != data_samples)
      throw Error(fmt::format("{}: written for a dataset of {} samples, {} has {}", path,
                              integer("data_samples"), cfg.data_path, data_samples));
    // Same config, so the same optimizer: the file says how many state tables it holds
    // (the trainer checks the number against the optimizer; the bound here only keeps a
    // damaged count from asking for billions of groups).
    const long long states = integer("optimizer_states");
    if (states < 0 || states > kMaxOptimizerStates)
      throw Error(fmt::format("{}: optimizer_states = {} is outside 0..{}", path, states,
                              kMaxOptimizerStates));
    // Candidate phase: start `candidate` is in progress, so starts 0..candidate-1 have
    // finished and the best of them is recorded, unless there are none.
    const long long phase = integer("phase"), candidate = integer("candidate"),
                    best = integer("best_candidate");
    const bool consistent =
        phase == 0 ? best == -1 && integer("best_iterations") == 0
        : phase == 1 ? candidate >= 0 && candidate < cfg.restarts &&
                           (candidate == 0 ? best == -1 : best >= 0 && best < candidate)
                     : false;
    if (!consistent)
      throw Error(fmt::format("{}: inconsistent phase = {}, candidate = {}, best_candidate = {}, "
                              "best_iterations = {}", path, phase, candidate, best,
                              integer("best_iterations")));
    for (long long k = 0; k < states; ++k)
      self.table_sets.push_back(state_group(static_cast<std::size_t>(k)));
    if (best < 0) return;
    self.table_sets.push_back(kBestModel);
    for (long long k = 0; k < states; ++k)
      self.table_sets.push_back(state_group(static_cast<std::size_t>(k), kBest));
  };
  ModelFileContents file =
      read_model(comm, path, &extras, grid ? ModelLattice::grid : ModelLattice::chain);
  if (grid && (file.grid->lx != grid->lx || file.grid->ly != grid->ly))
    throw Error(fmt::format("{}: its model is a {} x {} grid, the dataset a {} x {} grid", path,
                            file.grid->lx, file.grid->ly, grid->lx, grid->ly));
  if (file.model.geometry.chi != cfg.chi || file.model.tied != cfg.tied)
    throw Error(fmt::format("{}: its model does not match model.chi / model.tied", path));
  // Main phase: the history is the run's. Candidate phase: best_iterations of the best
  // start's, then the start in progress's.
  const bool candidates = integer("phase") == 1;
  const long long length = static_cast<long long>(file.objective_history.size());
  const long long best_length = integer("best_iterations");
  if (integer("iteration") != (candidates ? 0 : length) || best_length < 0 || best_length > length ||
      (integer("best_candidate") >= 0) != (integer("best_iterations") > 0) ||
      file.kl_history.size() != file.objective_history.size())
    throw Error(fmt::format("{}: iteration {} and best_iterations {} do not match its history "
                            "({} entries)", path, integer("iteration"),
                            integer("best_iterations"), length));

  TrainingState state;
  const auto split = [best_length](std::vector<double>& all, std::vector<double>& best) {
    best.assign(all.begin(), all.begin() + best_length);
    all.erase(all.begin(), all.begin() + best_length);
  };
  split(file.objective_history, state.best.objective_history);
  split(file.kl_history, state.best.kl_history);
  state.model = std::move(file.model);
  state.objective_history = std::move(file.objective_history);
  state.kl_history = std::move(file.kl_history);
  state.candidate = static_cast<int>(integer("candidate"));
  state.run_id = extras.strings.front().second;
  state.candidate_phase = candidates;
  state.best_candidate = static_cast<int>(integer("best_candidate"));
  const auto states = static_cast<std::ptrdiff_t>(integer("optimizer_states"));
  auto loaded = std::make_move_iterator(extras.loaded.begin());
  state.optimizer_state.assign(loaded, loaded + states);
  if (state.best_candidate >= 0) {
    state.best.model.geometry = state.model.geometry;
    state.best.model.tied = state.model.tied;
    state.best.model.tables = *(loaded + states);
    state.best.optimizer_state.assign(loaded + states + 1, loaded + 2 * states + 1);
  }
  return state;
}

std::optional<TrainingState> find_restart(const Comm& comm, const std::string& spec,
                                          const Config& cfg, long data_samples,
                                          std::string* path_used,
                                          const std::optional<GridLattice>& grid) {
  if (spec != "latest") {
    *path_used = spec;
    return read_checkpoint(comm, spec, cfg, data_samples, grid);
  }
  std::string listing;
  if (comm.is_root())
    for (const auto& [iteration, path] : list_checkpoints(cfg.output_dir)) listing += path + "\n";
  comm.broadcast(listing);
  std::istringstream paths(listing);
  std::string path, refused;
  int count = 0;
  while (std::getline(paths, path)) {
    ++count;
    try {
      TrainingState state = read_checkpoint(comm, path, cfg, data_samples, grid);
      if (comm.is_root() && !refused.empty())
        fmt::print("restart: falling back to {}\n", path);
      *path_used = path;
      return state;
    } catch (const Error& e) {  // raised on every rank alike (collective checks)
      refused = e.what();
      if (comm.is_root()) fmt::print("restart: refused checkpoint {}\n", refused);
    }
  }
  if (count > 0)
    throw Error(fmt::format("--restart latest: none of the {} checkpoints in {} is valid (last "
                            "refusal: {}); move them away to start afresh",
                            count, cfg.output_dir, refused));
  return std::nullopt;
}

}  // namespace cmera
