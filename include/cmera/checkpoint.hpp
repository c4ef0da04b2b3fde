// Checkpoints: the complete state of a training run at an iteration boundary, of the main
// phase or of the candidate starts before it, as one HDF5 file per checkpoint,
// `<output.dir>/checkpoint-<iteration>.h5`. The file is a model file (io.hpp; `cmera eval`
// and `cmera sample` read it) of kind "checkpoint", plus the optimizer state and the
// counters a restart needs. Everything is stored as global arrays in natural site order,
// so a restart may use any rank count.
//
// Layout beyond the model file (checkpoint_format_version 2):
//   root int64 attributes  checkpoint_format_version, iteration (main phase: = history
//                          length; candidate phase: 0), candidate (main phase: the chosen
//                          candidate start; candidate phase: the start in progress),
//                          seed (train.seed), data_samples, ranks (rank count that wrote it,
//                          informational), optimizer_states (number of
//                          /optimizer/state_<k> groups), phase (0 main, 1 candidate starts),
//                          best_candidate (candidate phase: the best finished start so far,
//                          -1 while none has finished; main phase -1), best_iterations
//                          (entries of /history that are the best start's; main phase 0)
//   /optimizer/state_<k>   tables shaped like /model: Optimizer::state()[k] (Adam: logits,
//                          first moments, second moments, per-row step counts; EM: none)
//   candidate phase only, when best_candidate >= 0:
//   /best/model, /best/optimizer/state_<k>   the best finished start's tables and state
// In the candidate phase /model, /optimizer and the entries of /history after the first
// best_iterations are the start in progress; those first entries are the best start's.
// Trade-off: the two starts share the model file's one history instead of a new dataset
// kind in src/io/model_file.cpp, and every candidate-phase checkpoint is named checkpoint-00000000.h5
// (iteration 0: no iteration of the run's history is final before selection), so each one
// replaces the last by an atomic rename and is always older than the post-selection
// checkpoint-<restart_iterations>.h5, whatever rotation keeps.
// Version 1 (main phase only) is refused; a run checkpointed by it continues with the cmera
// that wrote it.
// RNG state: training draws random numbers only for the candidate starts' initial tables,
// from counter-based streams keyed by (train.seed, candidate), so seed and candidate are
// the whole RNG state.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/config.hpp"
#include "cmera/grid.hpp"
#include "cmera/model.hpp"

namespace cmera {

// One trajectory: the chosen start in the main phase, or a candidate start.
struct RunState {
  Model model;
  std::vector<Tables> optimizer_state;  // Optimizer::state() order
  std::vector<double> objective_history, kl_history;
};

struct TrainingState : RunState {
  int candidate = 0;
  std::string run_id;            // the run that wrote it ("" from a cmera that did not record it)
  bool candidate_phase = false;  // before selection: *this is start `candidate` part way
  int best_candidate = -1;       // candidate phase: best finished start (-1: none yet)
  RunState best;                 // ... and its state

  // The run's iteration (the name's number): the history length in the main phase, 0
  // before selection.
  long iteration() const {
    return candidate_phase ? 0 : static_cast<long>(objective_history.size());
  }
};

// What a candidate-phase checkpoint adds to write_checkpoint's arguments (which then
// describe the start in progress): the best finished start so far, if any.
struct CandidatePhaseWrite {
  int best_candidate = -1;  // -1: none finished yet (the other fields are then unused)
  const Model* best_model = nullptr;
  std::vector<const Tables*> best_optimizer_state;
  const std::vector<double>* best_objective_history = nullptr;
  const std::vector<double>* best_kl_history = nullptr;
};

struct CheckpointWrite {
  std::string path;
  double seconds = 0;  // collective write, close, fsync and rename
  long long bytes = 0;
};

constexpr int kCheckpointFormatVersion = 2;

std::string checkpoint_path(const std::string& dir, long iteration);

// How a saved config (TOML read from `where`) differs from `now` in the keys a continued
// run may not change ("section.key = a (<saved_label>) vs b (this run)"), or "" if it
// does not.
std::string config_difference(const std::string& saved_toml, const std::string& where,
                              const Config& now, const std::string& saved_label);

// The checkpoints of one training run in cfg.output_dir. A run has an identity (run_id,
// recorded in every checkpoint it writes, kept across restarts); rotation deletes only
// checkpoints of the same run, so a user's file, or another run's checkpoint, is never
// touched whatever its name. Rank 0 keeps the list of this run's checkpoints present.
class CheckpointSeries {
 public:
  // Collective; call before any work. `resumed`: the state a restart continues (its run id
  // is kept), or null for a fresh start, which gets a new run id. Refuses (cmera::Error,
  // exit 2, naming the file) a fresh start in a directory that holds checkpoint files
  // (continue them with --restart latest, or move them away), and a restart where a
  // checkpoint file of a later iteration was not written by this run (continuing would
  // have to write over it).
  // `grid`: the run trains a grid, whose models are chain views (io.hpp, as_chain_model).
  CheckpointSeries(const Comm& comm, const Config& cfg, const TrainingState* resumed,
                   std::optional<GridLattice> grid = {});
  const std::string& run_id() const { return run_id_; }

  // Collective: writes the checkpoint (optimizer state taken from `optimizer_state`,
  // pointers into the live optimizer, to avoid copies) into cfg.output_dir, then deletes
  // this run's checkpoints but the newest cfg.keep_checkpoints, and the temporaries that
  // killed writers of this configuration left (also done at construction). With `candidates`, a candidate-phase checkpoint: the
  // arguments are start `candidate` part way. Test hook: CMERA_TEST_CHECKPOINT_DELAY=
  // <seconds> holds the write open (temporary file complete, not yet renamed) for that
  // long, so a test can kill the job inside the window.
  CheckpointWrite write(const Comm& comm, const Config& cfg, const std::string& command,
                        const Model& model, const std::vector<const Tables*>& optimizer_state,
                        const std::vector<double>& objective_history,
                        const std::vector<double>& kl_history, int candidate, long data_samples,
                        const CandidatePhaseWrite* candidates = nullptr);

 private:
  void prune(int keep);
  void remove_leftovers(const Config& cfg) const;

  std::string run_id_;
  std::optional<GridLattice> grid_;
  std::string temporary_tag_;  // config digest and run id: names this run's temporaries
  std::vector<std::pair<long, std::string>> mine_;  // rank 0: (iteration, path), this run's
};

// Collective: reads and validates the checkpoint at `path` against the run's config:
// kind, format version, the same model, data and training settings (only train.iterations,
// train.checkpoint_every, train.log_seconds, data.chunk_samples and [output] may differ),
// the same dataset size, the same lattice (`grid` set: a grid run, whose checkpoint holds a
// grid model; a chain checkpoint is refused, and vice versa). Throws cmera::Error with one
// line naming the problem.
TrainingState read_checkpoint(const Comm& comm, const std::string& path, const Config& cfg,
                              long data_samples, const std::optional<GridLattice>& grid = {});

// Collective: what `--restart SPEC` resumes from. SPEC "latest": the newest checkpoint in
// cfg.output_dir that passes read_checkpoint, printing one line for each one refused and
// the fallback taken; nothing if the directory holds no checkpoint (a fresh start), an
// error if it holds some but none is valid. Any other SPEC is a checkpoint path, read or
// refused with an error.
std::optional<TrainingState> find_restart(const Comm& comm, const std::string& spec,
                                          const Config& cfg, long data_samples,
                                          std::string* path_used,
                                          const std::optional<GridLattice>& grid = {});

}  // namespace cmera
