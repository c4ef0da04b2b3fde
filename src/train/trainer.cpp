// Training driver (trainer.hpp). One iteration: forward sweep over the rank's cones,
// objective allreduce, reverse sweep, table gradients reduced (tied: allreduce; untied:
// to the owning rank), update of owned rows, refresh of the halo tables other ranks'
// cones read. Candidate starts ("restarts") run the same loop for a few iterations and
// the best objective continues: random and even decimation starts can stall (docs/design.md §4).
// Stop requests are polled at every iteration boundary of both phases. Trade-off: the
// candidate phase is deterministic, so it could be replayed instead of saved, but a long
// one (large train.restart_iterations) must not run twice; a stop there saves the start in
// progress and the best finished start (twice a main-phase checkpoint's size), and the
// periodic train.checkpoint_every checkpoints stay in the main phase, so a hard kill during
// the candidate phase still restarts it from the beginning.
#include "cmera/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>
#include <functional>
#include <optional>

#include "cmera/checkpoint.hpp"
#include "cmera/error.hpp"
#include "cmera/grid_objective.hpp"
#include "cmera/grid_pair_terms.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/init.hpp"
#include "cmera/memory.hpp"
#include "cmera/optimizer.hpp"
#include "cmera/rng.hpp"
#include "cmera/signals.hpp"
#include "cmera/statistics.hpp"
#include "cmera/window_sweep.hpp"

namespace cmera {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What the training loop needs of a lattice's objective: everything that is fixed for a
// run on a given rank layout. Parameters are a chain Model (a grid's chain view).
class TrainingProblem {
 public:
  virtual ~TrainingProblem() = default;
  // Rows of the tables this rank updates.
  virtual const UpdateScope& scope() const = 0;
  // Objective per window (global); also records the window part for kl_per_window.
  virtual double objective(const Model& m) = 0;
  virtual double kl_per_window() const = 0;
  // Gradient of the objective of the model last passed to objective(), complete on the
  // rows in scope().
  virtual void gradient(const Model& m, Tables& grad) = 0;
  // Candidate start `seed`'s initial model (docs/design.md §4).
  virtual Model initial_model(const Config& cfg, std::uint64_t seed) const = 0;
  // Every rank gets every row (for results handed to callers: eval, sampling, files).
  virtual void replicate(Model&) const {}
  // After owners updated their rows: copy them to the ranks whose cones read them.
  virtual void refresh_halo(Model&) {}
};

// The chain's problem: windows and pair terms over the rank's cones.
class Problem final : public TrainingProblem {
 public:
  // Owns its statistics (the sweep and the pair terms keep references to them).
  Problem(const Comm& comm, const Geometry& g, bool tied, WindowStats stats,
          PairStats pair_stats, double pair_weight)
      : comm_(comm), g_(g), tied_(tied), stats_(std::move(stats)),
        pair_stats_(std::move(pair_stats)), sweep_(g, stats_.first, stats_.count),
        pairs_(g, pair_stats_, pair_weight) {
    for (int l = 0; l < g.depth(); ++l) {
      const BlockPartition owners{g.sites_at(l + 1), comm.size()};
      scope_.first.push_back(owners.begin(comm.rank()));
      scope_.count.push_back(owners.count(comm.rank()));
      if (!tied) {
        touched_.push_back(tables_touched(l));
        const std::size_t d = g.chi[l], K = g.chi[l + 1];
        w_exchange_.emplace_back(comm, owners, touched_.back(), K * d * d);
        u_exchange_.emplace_back(comm, owners, touched_.back(), d * d * d * d);
      }
    }
    double h = 0;
    for (double e : stats_.entropy) h += e;
    entropy_per_window_ = comm.sum(h) / static_cast<double>(g.sites);
  }

  const UpdateScope& scope() const override { return scope_; }

  // Mean over windows of sum_x q log p plus the weighted pair terms.
  double objective(const Model& m) override {
    sweep_.forward(m);
    double local[2] = {sweep_.log_likelihood(stats_), pairs_.log_likelihood(m)};
    comm_.sum_inplace(local, 2);
    window_objective_ = local[0] / static_cast<double>(g_.sites);
    return (local[0] + local[1]) / static_cast<double>(g_.sites);
  }
  double kl_per_window() const override { return -window_objective_ - entropy_per_window_; }

  // Complete on the rows this rank owns (and everywhere for tied tables and the top).
  void gradient(const Model& m, Tables& grad) override {
    zero_touched(grad);
    sweep_.gradient(m, stats_, 1.0 / static_cast<double>(g_.sites), grad);
    pairs_.gradient(m, 1.0 / static_cast<double>(g_.sites), grad);
    for (int l = 0; l < g_.depth(); ++l) {
      LayerTables& t = grad.layers[l];
      if (tied_) {
        comm_.sum_inplace(t.W.data(), t.W.size());
        comm_.sum_inplace(t.U.data(), t.U.size());
      } else {
        w_exchange_[l].reduce_to_owners(t.W);
        u_exchange_[l].reduce_to_owners(t.U);
      }
    }
    comm_.sum_inplace(grad.top.data(), grad.top.size());
  }

  Model initial_model(const Config& cfg, std::uint64_t seed) const override {
    return initialize_model(g_, cfg.tied, parse_init_kind(cfg.init), cfg.init_noise, seed);
  }

  void replicate(Model& m) const override {
    if (tied_) return;
    for (int l = 0; l < g_.depth(); ++l) {
      const BlockPartition owners{g_.sites_at(l + 1), comm_.size()};
      LayerTables& t = m.tables.layers[l];
      comm_.replicate_blocks(t.W, owners, t.w_size());
      comm_.replicate_blocks(t.U, owners, t.u_size());
    }
  }

  void refresh_halo(Model& m) override {
    if (tied_) return;
    for (int l = 0; l < g_.depth(); ++l) {
      w_exchange_[l].scatter_from_owners(m.tables.layers[l].W);
      u_exchange_[l].scatter_from_owners(m.tables.layers[l].U);
    }
  }

 private:
  void zero_touched(Tables& grad) const {
    for (int l = 0; l < g_.depth(); ++l) {
      LayerTables& t = grad.layers[l];
      if (tied_) {
        std::fill(t.W.begin(), t.W.end(), 0.0);
        std::fill(t.U.begin(), t.U.end(), 0.0);
        continue;
      }
      for (long j : touched_[l]) {
        std::fill_n(t.w(j), t.w_size(), 0.0);
        std::fill_n(t.u(j), t.u_size(), 0.0);
      }
    }
    std::fill(grad.top.begin(), grad.top.end(), 0.0);
  }

  // Table indices of `layer` read by this rank's window and pair cones (sorted).
  std::vector<long> tables_touched(int layer) const {
    std::vector<long> all = pairs_.tables_read(layer);
    const CyclicRange r = sweep_.tables_touched(layer);
    for (long k = 0; k < r.length; ++k) all.push_back(r.at(k));
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    return all;
  }

  const Comm& comm_;
  Geometry g_;
  bool tied_;
  const WindowStats stats_;
  const PairStats pair_stats_;
  WindowSweep sweep_;
  PairTerms pairs_;
  UpdateScope scope_;
  std::vector<std::vector<long>> touched_;
  double window_objective_ = 0;
  std::vector<IndexExchange> w_exchange_, u_exchange_;
  double entropy_per_window_ = 0;
};

// The grid's problem (docs/design-grid.md §5): grid::GridObjective behind the chain view.
// Its objective and gradient are complete on every rank, so every rank updates every row.
class GridProblem final : public TrainingProblem {
 public:
  GridProblem(const Comm& comm, const Config& cfg, const GridLattice& g)
      : objective_(comm, g, cfg.data_path, options(cfg)),
        model_(GridModel::uniform(g, cfg.tied)), grad_(grid::zeros_like(model_)) {
    for (const LayerTables& t : grid::as_chain_tables(model_).layers) {
      scope_.first.push_back(0);
      scope_.count.push_back(t.count());
    }
  }
  long samples() const { return objective_.samples(); }
  const UpdateScope& scope() const override { return scope_; }
  long pair_terms() const { return objective_.pair_terms(); }
  long pair_stride() const { return objective_.pair_stride(); }
  // Windows and, with objective.pairs, the pair terms along x and y (and the diagonals).
  double objective(const Model& m) override {
    grid::from_chain_tables(m.tables, model_);
    return objective_.objective(model_);
  }
  double kl_per_window() const override { return objective_.kl_per_window(); }
  void gradient(const Model&, Tables& grad) override {
    objective_.gradient(model_, grad_);
    grad = grid::as_chain_tables(grad_);
  }
  Model initial_model(const Config& cfg, std::uint64_t seed) const override {
    return as_chain_model(initialize_grid_model(model_.lattice, cfg.tied,
                                                parse_init_kind(cfg.init), cfg.init_noise, seed));
  }

 private:
  static grid::GridObjectiveOptions options(const Config& cfg) {
    grid::GridObjectiveOptions o;
    o.chunk_samples = cfg.data_chunk_samples;
    o.pairs = cfg.pairs;
    o.pair_distances = cfg.pair_distances;
    o.pair_diagonal_distances = cfg.pair_diagonal_distances;
    o.pair_stride = cfg.pair_stride;
    o.pair_weight = cfg.pair_weight;
    o.spin_flip = cfg.spin_flip();
    return o;
  }
  grid::GridObjective objective_;
  GridModel model_, grad_;  // the model last passed to objective(), and its gradient
  UpdateScope scope_;
};

std::unique_ptr<Optimizer> make_optimizer(const Config& c, const Model& m, long samples) {
  if (c.optimizer == "adam") {
    AdamSettings s;
    s.learning_rate = c.learning_rate;
    s.decay_steps = c.learning_rate_decay;
    return make_adam(s, m);
  }
  EmSettings s;
  s.pseudocount = c.pseudocount;
  s.counts_scale = static_cast<double>(samples) * static_cast<double>(m.geometry.sites);
  return make_em(s);
}

struct Candidate {
  Model model;
  std::unique_ptr<Optimizer> optimizer;
  std::vector<double> objective, kl;
};

// A trajectory read from a checkpoint, with its optimizer state put back in place.
Candidate restore(const Comm& comm, const Config& cfg, RunState&& saved, long samples) {
  Candidate c;
  c.model = std::move(saved.model);
  c.optimizer = make_optimizer(cfg, c.model, samples);
  const std::vector<Tables*> slots = c.optimizer->mutable_state();
  comm.check(slots.size() == saved.optimizer_state.size(),
             fmt::format("the checkpoint holds {} optimizer state tables, the {} optimizer "
                         "keeps {}", saved.optimizer_state.size(), cfg.optimizer, slots.size()));
  for (std::size_t k = 0; k < slots.size(); ++k) *slots[k] = std::move(saved.optimizer_state[k]);
  c.objective = std::move(saved.objective_history);
  c.kl = std::move(saved.kl_history);
  return c;
}

// Runs `iterations` more steps on a candidate, printing progress when `report` is set.
// After each step, `boundary` (if set) may end the run early by returning true.
void run(const Comm& comm, TrainingProblem& prob, Candidate& cand, long iterations, const Config& cfg,
         bool report, long total_target, const std::function<bool()>& boundary = {}) {
  Tables grad = Tables::zeros_like(cand.model.tables);
  const auto start = Clock::now();
  auto last_print = start;
  double objective = prob.objective(cand.model);
  for (long it = 0; it < iterations; ++it) {
    prob.gradient(cand.model, grad);
    cand.optimizer->step(cand.model, grad, prob.scope());
    prob.refresh_halo(cand.model);
    objective = prob.objective(cand.model);
    if (!std::isfinite(objective))
      throw Error(fmt::format("objective became {} at iteration {}; lower train.learning_rate "
                              "or use train.optimizer = \"em\"", objective, cand.objective.size() + 1),
                  kExitRuntime);
    cand.objective.push_back(objective);
    cand.kl.push_back(prob.kl_per_window());
    const bool last = it + 1 == iterations;
    if (report && comm.is_root() &&
        (it == 0 || last || seconds_since(last_print) >= cfg.log_seconds)) {
      const double per_it = seconds_since(start) / static_cast<double>(it + 1);
      const long done = static_cast<long>(cand.objective.size());
      fmt::print("iter {:>6}/{}  objective {:.10f}  KL/window {:.3e}  {:.4f} s/iter  ETA {:.1f} s\n",
                 done, total_target, objective, cand.kl.back(), per_it,
                 per_it * static_cast<double>(total_target - done));
      std::fflush(stdout);
      last_print = Clock::now();
    }
    if (boundary && boundary()) return;
  }
}

// The model's geometry on the dataset's lattice, refused before any work when it does not
// fit the data, the rank count or the node's memory.
Geometry checked_geometry(const Comm& comm, const Config& cfg, const DatasetReader& data) {
  Geometry g{data.shape().sites, cfg.chi};
  try {
    g.validate();
  } catch (const Error& e) {
    throw Error(fmt::format("{} (dataset {} has N = {} sites)", e.what(), cfg.data_path, g.sites));
  }
  data.require_alphabet(g.chi[0]);
  if (!cfg.intermediate_chi.empty())
    throw Error(fmt::format("model.intermediate_chi applies to grids only; dataset {} is a chain "
                            "of N = {} sites",
                            cfg.data_path, g.sites));
  if (comm.size() > g.sites)
    throw Error(fmt::format("{} MPI ranks for a lattice of {} sites: use at most {} ranks",
                            comm.size(), g.sites, g.sites));
  // Every rank holds the whole model several times over (tables, gradient, optimizer
  // state, the best candidate): a typo in model.chi must not end in an out-of-memory kill
  // after the job has waited in the queue.
  constexpr double kTableCopies = 8;
  require_memory(comm, kTableCopies * g.table_bytes(cfg.tied),
                 fmt::format("model.chi = [{}] with N = {}", fmt::join(g.chi, ", "), g.sites),
                 "for its tables, gradient and optimizer state");
  return g;
}

std::vector<long> pair_distances(const Config& cfg, const Geometry& g) {
  std::vector<long> distances;
  if (cfg.pairs) distances = cfg.pair_distances.empty() ? dyadic_distances(g.sites) : cfg.pair_distances;
  for (long r : distances)
    if (r >= g.sites)
      throw Error(fmt::format("objective.pair_distances: distance {} is outside 1..{}", r, g.sites - 1));
  return distances;
}

// The checkpoint options.restart names, if any (announced on rank 0).
std::optional<TrainingState> resumed_state(const Comm& comm, const Config& cfg,
                                           const TrainOptions& opt, long samples,
                                           const std::optional<GridLattice>& grid) {
  if (opt.restart.empty()) return std::nullopt;
  const auto t = Clock::now();
  std::string path;
  std::optional<TrainingState> resumed = find_restart(comm, opt.restart, cfg, samples, &path, grid);
  if (comm.is_root() && !resumed)
    fmt::print("restart: no checkpoint in {}, starting afresh\n", cfg.output_dir);
  else if (comm.is_root())
    fmt::print("restart: continuing from {} ({}, read in {:.3f} s)\n", path,
               resumed->candidate_phase
                   ? fmt::format("candidate start {}/{}, iteration {}", resumed->candidate + 1,
                                 cfg.restarts, resumed->objective_history.size())
                   : fmt::format("iteration {}", resumed->iteration()),
               seconds_since(t));
  return resumed;
}

// A checkpoint continues only under a config that reaches it: train.iterations at least
// its iteration, and in the candidate phase the same start length
// min(train.restart_iterations, train.iterations).
void require_continuable(const Config& cfg, const TrainingState& resumed, long probe) {
  if (resumed.iteration() > cfg.iterations)
    throw Error(fmt::format("the checkpoint is at iteration {}, beyond train.iterations = {}; "
                            "raise train.iterations to continue", resumed.iteration(),
                            cfg.iterations));
  if (resumed.candidate_phase &&
      (static_cast<long>(resumed.objective_history.size()) > probe ||
       (resumed.best_candidate >= 0 &&
        static_cast<long>(resumed.best.objective_history.size()) != probe)))
    throw Error(fmt::format("the checkpoint was written during candidate start {}/{}, and "
                            "train.iterations = {} changes the starts' length to {} iterations; "
                            "keep train.iterations as it was until the starts are done",
                            resumed.candidate + 1, cfg.restarts, cfg.iterations, probe));
}

// What both phases share: the checkpoint series, stop polling and its timing, the result.
struct Session {
  const Comm& comm;
  const Config& cfg;
  const TrainOptions& opt;
  long samples;
  std::optional<CheckpointSeries> series;
  TrainResult res;
  // The stop poll's estimate of the time to the next boundary: one iteration plus the
  // last checkpoint write, with a margin.
  double per_iteration = 0, checkpoint_seconds = 0, last_checkpoint_seconds = 0;

  // Collective: why the run must stop now ("" to go on).
  std::string stop_reason() const {
    return opt.stop ? opt.stop->poll(comm, 1.5 * (per_iteration + last_checkpoint_seconds))
                    : std::string();
  }
  void record(const CheckpointWrite& w, const std::string& where) {
    last_checkpoint_seconds = w.seconds;
    checkpoint_seconds += w.seconds;
    res.checkpoint = w.path;
    if (comm.is_root())
      fmt::print("checkpoint: wrote {} ({}, {:.2f} MB, {:.3f} s)\n", w.path, where,
                 static_cast<double>(w.bytes) / 1e6, w.seconds);
  }
  void stop(std::string why, std::string where) {
    res.stopped = true;
    res.stop_reason = std::move(why);
    res.stopped_at = std::move(where);
  }
};

// The best of the candidate starts, each run for `probe` iterations (continuing `resumed`
// when it was saved in this phase); `chosen` gets its index. A stop between two
// iterations of a start saves that start and the best finished one so far (checkpoint.hpp),
// so a continued run makes the same choice with the same numbers. Returns false if stopped.
bool select_candidate(Session& s, TrainingProblem& prob, long probe,
                      std::optional<TrainingState>& resumed, Candidate& best, int& chosen) {
  const Config& cfg = s.cfg;
  const auto t_candidates = Clock::now();
  long timed = 0;  // candidate iterations run by this process
  double best_objective = -INFINITY;
  int first = 0;
  Candidate resumed_start;
  if (resumed) {
    first = resumed->candidate;
    if (resumed->best_candidate >= 0) {
      chosen = resumed->best_candidate;
      best = restore(s.comm, cfg, std::move(resumed->best), s.samples);
      best_objective = best.objective.back();
    }
    resumed_start = restore(s.comm, cfg, std::move(*resumed), s.samples);
  }
  for (int r = first; r < cfg.restarts; ++r) {
    Candidate c;
    if (resumed && r == first) {
      c = std::move(resumed_start);
    } else {
      const std::uint64_t seed = splitmix64(cfg.seed ^ splitmix64(static_cast<std::uint64_t>(r)));
      c.model = prob.initial_model(cfg, seed);
      c.optimizer = make_optimizer(cfg, c.model, s.samples);
    }
    const auto where = [&] {
      return fmt::format("candidate start {}/{}, iteration {} of {}", r + 1, cfg.restarts,
                         c.objective.size(), probe);
    };
    run(s.comm, prob, c, probe - static_cast<long>(c.objective.size()), cfg, cfg.restarts == 1,
        cfg.iterations, [&] {
          const long k = static_cast<long>(c.objective.size());
          // The last start's last boundary is the post-selection one of the main phase.
          if (r + 1 == cfg.restarts && k == probe) return false;
          s.per_iteration = seconds_since(t_candidates) / static_cast<double>(++timed);
          std::string why = s.stop_reason();
          if (why.empty() && r * probe + k == s.opt.stop_in_candidates)
            why = fmt::format("reached {} candidate iterations", r * probe + k);
          if (why.empty()) return false;
          if (s.series) {
            CandidatePhaseWrite phase;
            if (chosen >= 0)
              phase = {chosen, &best.model, best.optimizer->state(), &best.objective, &best.kl};
            s.record(s.series->write(s.comm, cfg, s.opt.command, c.model, c.optimizer->state(),
                                     c.objective, c.kl, r, s.samples, &phase),
                     where());
          }
          s.stop(why, "in " + where());
          return true;
        });
    if (s.res.stopped) return false;
    const double obj = c.objective.empty() ? prob.objective(c.model) : c.objective.back();
    if (cfg.restarts > 1 && s.comm.is_root())
      fmt::print("start {}/{}: objective {:.10f} after {} iterations\n", r + 1, cfg.restarts,
                 obj, probe);
    if (obj > best_objective || chosen < 0) {
      best_objective = obj;
      best = std::move(c);
      chosen = r;
    }
  }
  return true;
}

// The main phase: `best` runs up to train.iterations. Checkpoint and stop decisions happen
// at iteration boundaries, identically on every rank (the stop poll is collective), and
// never change the numbers. `resumed_main`: best was read from a main-phase checkpoint.
void run_main_phase(Session& s, TrainingProblem& prob, Candidate& best, int chosen, bool resumed_main) {
  const Config& cfg = s.cfg;
  const auto t1 = Clock::now();
  const long first_main = static_cast<long>(best.objective.size());
  long last_written = resumed_main ? first_main : -1;
  const auto save = [&] {
    const long done = static_cast<long>(best.objective.size());
    if (!s.series || done == last_written) return;
    s.record(s.series->write(s.comm, cfg, s.opt.command, best.model, best.optimizer->state(),
                             best.objective, best.kl, chosen, s.samples),
             fmt::format("iteration {}", done));
    last_written = done;
  };
  // True (after a checkpoint) when the run must stop at this boundary.
  const auto stop_here = [&] {
    const long done = static_cast<long>(best.objective.size());
    if (done > first_main)
      s.per_iteration = (seconds_since(t1) - s.checkpoint_seconds) / static_cast<double>(done - first_main);
    std::string why = s.stop_reason();
    if (why.empty() && done == s.opt.stop_after) why = fmt::format("reached {} iterations", done);
    if (why.empty() || done >= cfg.iterations) return false;
    save();
    s.stop(why, fmt::format("at iteration {} of {}", done, cfg.iterations));
    return true;
  };
  save();  // the state right after candidate selection
  if (!stop_here())
    run(s.comm, prob, best, cfg.iterations - first_main, cfg, true, cfg.iterations, [&] {
      const long done = static_cast<long>(best.objective.size());
      if ((cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0) || done == cfg.iterations)
        save();
      return stop_here();
    });
  // A run whose iterations all went to the candidate starts reports their rate.
  const long main_iters = static_cast<long>(best.objective.size()) - first_main;
  s.res.seconds_per_iteration =
      main_iters > 0 ? (seconds_since(t1) - s.checkpoint_seconds) / static_cast<double>(main_iters)
                     : s.per_iteration;
}

// The grid of a [S, Ly, Lx] dataset, refused before any work when the model does not fit
// it (docs/design-grid.md §1) or the node's memory.
GridLattice checked_lattice(const Comm& comm, const Config& cfg, const DatasetReader& data) {
  const GridLattice g{data.shape().lx(), data.shape().ly(), cfg.chi, cfg.intermediate_chi};
  try {
    g.validate();
  } catch (const Error& e) {
    throw Error(fmt::format("{} (dataset {} is a {} x {} grid, Lx x Ly)", e.what(), cfg.data_path,
                            g.lx, g.ly));
  }
  data.require_alphabet(g.chi[0]);
  // Tables, gradient (twice: grid and chain view), optimizer state, the best candidate;
  // and the sweep's window marginals of every layer with their gradients, and the
  // histograms (8 chi_l^9 bytes per site of each layer, docs/design-grid.md §4); and each
  // thread's kernel scratch, ten 3 x 3 tensors over the largest alphabet (grid_kernels.hpp),
  // which an intermediate alphabet can make the largest item.
  constexpr double kTableCopies = 10, kScratchTensors = 10;
  double windows = static_cast<double>(g.sites_at(0)) * std::pow(g.chi[0], 9.0);
  for (int l = 0; l <= g.depth(); ++l)
    windows += 2 * static_cast<double>(g.sites_at(l)) * std::pow(g.chi[l], 9.0);
  windows += kScratchTensors * omp_get_max_threads() * std::pow(g.max_alphabet(), 9.0);
  require_memory(comm, kTableCopies * g.table_bytes(cfg.tied) + 8 * windows,
                 fmt::format("model.chi = [{}], intermediate [{}] on a {} x {} grid",
                             fmt::join(g.chi, ", "), fmt::join(g.intermediate_alphabets(), ", "), g.lx, g.ly),
                 "for its tables, window marginals, kernel scratch, gradient and optimizer state");
  return g;
}

const char* symmetry_note(const Config& cfg) {
  return cfg.spin_flip() ? "; statistics averaged with their spin flips" : "";
}

// The chain's statistics pass and problem (windows and pair terms over this rank's cones).
std::unique_ptr<TrainingProblem> chain_problem(const Comm& comm, const Config& cfg,
                                               const DatasetReader& data, const Geometry& g,
                                               const std::vector<long>& distances, long stride) {
  const auto t0 = Clock::now();
  const BlockPartition windows{g.sites, comm.size()};
  const long first = windows.begin(comm.rank()), count = windows.count(comm.rank());
  WindowStats stats =
      count_window_stats(comm, data, g.chi[0], first, count, cfg.data_chunk_samples);
  PairStats pair_stats = count_pair_stats(comm, data, g.chi[0], first, count, stride,
                                          distances, cfg.data_chunk_samples);
  if (cfg.spin_flip()) {
    average_with_flip(stats);
    average_with_flip(pair_stats);
  }
  if (comm.is_root())
    fmt::print("statistics pass: {} samples x {} sites, {} pair distances (every {} sites) in "
               "{:.2f} s on {} ranks{}\n", data.shape().samples, g.sites, distances.size(), stride,
               seconds_since(t0), comm.size(), symmetry_note(cfg));
  // Pairs at every stride-th site stand for all sites: weight them up by the stride.
  return std::make_unique<Problem>(comm, g, cfg.tied, std::move(stats), std::move(pair_stats),
                                   cfg.pair_weight * static_cast<double>(stride));
}

std::unique_ptr<TrainingProblem> grid_problem(const Comm& comm, const Config& cfg,
                                              const GridLattice& g) {
  const auto t0 = Clock::now();
  auto prob = std::make_unique<GridProblem>(comm, cfg, g);
  if (comm.is_root()) {
    fmt::print("statistics pass: {} samples of a {} x {} grid in {:.2f} s on {} ranks{}\n",
               prob->samples(), g.lx, g.ly, seconds_since(t0), comm.size(), symmetry_note(cfg));
    if (cfg.pairs)
      fmt::print("pair terms: {} along {} (distance r from sites every max({}, r/2) on "
                 "both axes)\n", prob->pair_terms(),
                 cfg.pair_diagonal_distances.empty() ? "x and y" : "x, y and both diagonals",
                 prob->pair_stride());
  }
  return prob;
}

}  // namespace

TrainResult train(const Comm& comm, const Config& cfg, const TrainOptions& opt) {
  DatasetReader data(comm, cfg.data_path, /*lattice_samples=*/true);
  // The lattice comes from the dataset's shape: [S, Ly, Lx] a grid, [S, N] a chain.
  std::optional<GridLattice> grid;
  std::optional<Geometry> chain;
  std::vector<long> distances;  // the chain's pair terms
  long stride = 1;
  if (data.shape().is_grid()) {
    grid = checked_lattice(comm, cfg, data);
    if (cfg.pairs) {  // refused here, before any work or checkpoint
      grid::grid_pair_distances(*grid, cfg.pair_distances);
      grid::grid_diagonal_distances(*grid, cfg.pair_diagonal_distances);
      grid::grid_pair_stride(*grid, cfg.pair_stride);
    }
  } else {
    if (!cfg.pair_diagonal_distances.empty())
      throw Error(fmt::format("objective.pair_diagonal_distances applies to grids only; {} holds a "
                              "chain [S, N]", cfg.data_path));
    chain = checked_geometry(comm, cfg, data);
    distances = pair_distances(cfg, *chain);
    stride = pair_stride(*chain, cfg.pair_stride);
  }

  // The checkpoint to continue, and the checkpoints this run may write and rotate, are
  // settled before any work, so that a refusal costs nothing.
  Session s{comm, cfg, opt, data.shape().samples, {}, {}};
  std::optional<TrainingState> resumed = resumed_state(comm, cfg, opt, s.samples, grid);
  if (opt.checkpoints) s.series.emplace(comm, cfg, resumed ? &*resumed : nullptr, grid);
  if (opt.before_work) opt.before_work();

  const std::unique_ptr<TrainingProblem> problem =
      grid ? grid_problem(comm, cfg, *grid)
           : chain_problem(comm, cfg, data, *chain, distances, stride);
  TrainingProblem& prob = *problem;
  std::fflush(stdout);  // a batch log (a file) shows the run has started training

  // Stop requests are polled collectively at every iteration boundary of both phases and
  // once here. The statistics pass itself is not interrupted (it reads each sample once,
  // see statistics.cpp); a stop requested during it ends the run before its first
  // iteration, with nothing new to checkpoint.
  if (std::string why = s.stop_reason(); !why.empty()) {
    s.stop(why, "after the statistics pass, before the first iteration");
    return std::move(s.res);
  }
  const long probe = std::min(cfg.restart_iterations, cfg.iterations);  // iterations per start
  if (resumed) require_continuable(cfg, *resumed, probe);
  const bool resumed_main = resumed && !resumed->candidate_phase;

  Candidate best;
  int chosen = -1;  // the best finished start; with train.seed, the whole RNG state (checkpoint.hpp)
  if (resumed_main) {
    chosen = resumed->candidate;
    best = restore(comm, cfg, std::move(*resumed), s.samples);
  } else if (!select_candidate(s, prob, probe, resumed, best, chosen)) {
    return std::move(s.res);
  }
  run_main_phase(s, prob, best, chosen, resumed_main);
  prob.replicate(best.model);
  s.res.model = std::move(best.model);
  s.res.grid = grid;
  s.res.objective_history = std::move(best.objective);
  s.res.kl_history = std::move(best.kl);
  return std::move(s.res);
}

}  // namespace cmera
