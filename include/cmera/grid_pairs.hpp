// Exact two-site marginals of the grid MERA at any offset, and the model's correlation
// function along a lattice direction (docs/design-grid.md §6). The joint of a small site
// set S of layer l follows from the joint of its parent set at layer l+1 (the chain's cone
// rule once per direction, docs/design-grid.md §2) through one conditional per touched
// column line and per touched row line; a pair's site sets are followed upward only until
// they fit one 3 x 3 window, whose cached marginal (GridWindowMarginals) starts the
// descent, or reach the top table.
//
// Trade-off: each line's conditional P(fine sites | their parents) is the chain's general
// cone (ConePlan, docs/design.md §2) applied to unit vectors and cached per (line, set),
// not a hand-written kernel per shape: a pair's sets take many shapes (two disjoint cones
// of up to 3 x 3 sites, or their overlapping union), and the general cone serves them all
// with one code path, at the price of dense joints of up to chi^18 entries near the layer
// where the two cones meet (below it each site's own conditional is pulled up instead).
// For tied models a translation class of pairs contracts, at a layer where its two cones
// are disjoint, with their joint summed over every translation of that layer
// (translation_sum): a few shapes serve every class of every offset, so each is built
// once and kept.
//
// Reverse mode (pair_backward, for the grid pair terms of the objective, docs/design-grid.md
// §7): every step of a pair's joint is linear in each of its inputs (a window marginal or
// the top table, line conditionals, the two pulled-up site conditionals), so pair() can
// record its steps on a tape and run them backwards, leaving the adjoints of the windows,
// the top and each line conditional; add_table_gradient turns the conditionals' adjoints
// into W/U gradients through the same general cone (ConePlan::backward_local) that built
// them, and the top marginals' adjoints into the top's gradient, one pass over the table
// per set of top sites. The tape holds one pair's intermediate joints only: memory stays
// at a few dense joints, and g_of_p lets the caller run the reverse pass right after the
// forward (GridPairTerms does), so nothing is recomputed. The steps themselves (no values)
// can be kept as a PairTape and replayed, with the same arithmetic (compute), when the
// same pair is evaluated again on new tables (docs/design-grid.md §7, "Replayed tapes").
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/grid.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/model.hpp"

namespace cmera::grid {

// A site (x, y) of one layer, wrapped.
using GridSite = std::pair<long, long>;

// Dense joint over labelled variables (sites of a layer, or of the intermediate grid during
// a descend), row-major, first label most significant.
struct SetJoint {
  std::vector<long> labels;
  std::vector<int> dims;
  std::vector<double> p;
  int id = -1;  // its value on the tape while pair_backward records (else -1)
};

// Derivatives of a scalar with respect to what pair joints are computed from, summed over
// pairs: window marginals by (layer, corner x, corner y) as stored (wrapped corners), the
// top table's marginals by their top sites (in the marginal's order), and line
// conditionals by the key GridSetMarginals caches them under. The top table enters
// through its marginals because many pairs start from the marginal on one set: a pass over
// the table per distinct set, not per pair (the table has up to 2^24 entries).
struct PairAdjoints {
  using LineKey = std::tuple<int, int, long, std::vector<long>>;  // layer, direction, line, fine
  WindowAdjoints windows;
  std::map<std::vector<long>, std::vector<double>> top_marginals;
  std::map<LineKey, std::vector<double>> conditionals;
  // this += other, entry by entry (fixed order for a fixed `other`).
  void add(const PairAdjoints& other);
};

// to += from, window by window (a window missing from `to` starts at zero).
void add_window_adjoints(const WindowAdjoints& from, WindowAdjoints& to);

// Buffers of one line step: its joint gathered as a matrix and that matrix's adjoint, its
// conditional as a [np x nq] matrix and the conditional's adjoint.
struct LineBuffers {
  std::vector<double> joint, g_joint, map, g_map;
};

// Index maps of one recorded step over its input joint: the input's dims and entries; for
// a line step the strides of its consumed (q) and kept (k) labels and the kept states, or
// `leading` (the consumed labels are the input's first, in order: read in place, no
// strides kept); for a marginal the strides of its labels in the result (qstride) and
// the result's size.
struct StepIndex {
  std::vector<int> dims;
  std::vector<std::size_t> qstride, kstride;
  std::size_t entries = 1, kept = 1, size = 0;
  bool leading = true;
};

// One step of a joint, as pair_backward records it: what its value is computed from
// (values of earlier steps by their place on the tape, a window, the top table, a line
// conditional) and the index maps that computation needs, so that the value can be
// computed again from the tape alone.
struct TapeOp {
  enum class Kind { kWindow, kTop, kConstant, kLine, kJoint, kProject } kind;
  int in = -1;    // the joint it reads (kLine, kJoint, kProject)
  int cond = -1;  // kJoint: the joint used as the conditional
  std::size_t np = 0;  // kLine, kJoint: produced states per consumed state; kConstant: d
  StepIndex index = {};            // kLine, kJoint, kProject
  PairAdjoints::LineKey key = {};  // kLine
  bool transposed = false;         // kLine: the conditional read upwards (pull_up)
  int layer = 0;                   // kWindow: the window (layer, wx, wy), and the set's
  long wx = 0, wy = 0;             // places in it
  std::vector<int> places = {};
  std::vector<long> top_sites = {};  // kTop: the set's top sites
};

// One pair's computation as pair_backward recorded it: its steps with their index maps.
// Pair terms evaluate the same pairs every iteration, and a pair's steps depend on the
// lattice and the pair only, never on the tables' values: a later pair_backward replays
// the tape (each step's arithmetic on the current tables) and skips the cone walks and
// index work that the first one did, which cost more than the arithmetic at chi = 2.
class PairTape {
 public:
  bool empty() const { return ops_.empty(); }
  // Heap and inline bytes the tape holds (the pair terms bound what they keep).
  std::size_t bytes() const;

 private:
  friend class GridSetMarginals;
  std::vector<TapeOp> ops_;
};

// A translation class of the pairs {i, i + (dx, dy)} of a tied model: (a, b) its
// representative, whose cones are disjoint up to `layer`; the class's pairs factorize
// through the joint of the two cones there summed over every translation of that layer,
// the joint of `shape` (their union moved by (sx, sy), canonical).
struct PairClass {
  int layer;
  GridSite a, b;
  long sx, sy;
  std::vector<GridSite> shape;
};

class GridSetMarginals {
 public:
  // `windows` must hold the window marginals of `m` (GridWindowMarginals::forward(m));
  // both must outlive this object. Not thread-safe (caches): one per thread.
  GridSetMarginals(const GridModel& m, const GridWindowMarginals& windows);

  // Joint [chi_0^2] of bottom sites (x, y) and (x + dx, y + dy) (distinct modulo the
  // lattice), the first site most significant.
  std::vector<double> pair(long x, long y, long dx, long dy);
  // Sum over every bottom site i of the joint of (i, i + (dx, dy)) [chi_0^2]. Tied models:
  // per translation class, the two sites' pulled-up conditionals contracted with the
  // class's translation-summed joint (docs/design-grid.md §6); untied: one pair() per site.
  std::vector<double> pair_sum(long dx, long dy);
  // sum_{a,b} f(a) f(b) pair_sum(dx, dy)[a, b] for an observable f of chi_0 values (the
  // correlation function's sum). Tied models take pair_sum's classes, but each is one dot
  // product of the two sites' pulled-up expectations of f with the joint
  // (contract_product).
  double product_sum(long dx, long dy, const std::vector<double>& f);
  // The translation classes of the pairs {i, i + (dx, dy)} of a tied model
  // (docs/design-grid.md §6), and one class's term of product_sum.
  std::vector<PairClass> classes(long dx, long dy) const;
  double product_term(const PairClass& c, const std::vector<double>& f);

  // Reverse mode of pair(): adds to `adj` the derivatives of sum_k g[k] p[k], p =
  // pair(x, y, dx, dy), which it returns, g = g_of_p(p) (so a caller can take the
  // derivative of a function of p in the same pass). With `tape`: an empty one receives
  // the pair's recorded steps; a full one (recorded for this pair, on a model of the same
  // lattice, chi and tying) is replayed instead of walking the cones again, with the same
  // arithmetic in the same order, so p and the adjoints are the same bit for bit.
  std::vector<double> pair_backward(
      long x, long y, long dx, long dy,
      const std::function<std::vector<double>(const std::vector<double>&)>& g_of_p,
      PairAdjoints& adj, PairTape* tape = nullptr);
  // Adds to grad (zeros_like shape) the gradient of the tables that `adj` reaches: W and U
  // through the line conditionals' adjoints, the top through its marginals' adjoints.
  void add_table_gradient(const PairAdjoints& adj, GridModel& grad);

  // Joint of any set of distinct sites of `layer`, in the given order (each site's
  // alphabet chi_layer, first most significant).
  std::vector<double> marginal(int layer, const std::vector<GridSite>& sites);

  // A thread's buffers of step values and adjoints of up to this many entries stay
  // allocated from one pair_backward to the next (release_large_buffers).
  static constexpr std::size_t kKeptEntries = std::size_t{1} << 16;
  // The dense joints of one computation, in entries: the largest, and all of them (a
  // pair's tape keeps each for the reverse pass).
  struct JointSizes {
    std::size_t largest = 0, total = 0;
    std::size_t steps = 0;  // the computation's steps (a tape's length)
    // The bytes a PairTape of these steps holds, about (each step and its input's labels).
    std::size_t tape_bytes = 0;
  };
  // The joints pair(x, y, dx, dy) allocates, found by the same steps with index work only
  // (no joint is computed or allocated): memory checks before a run, since a pair's joints
  // grow as chi^18 near the layer where its cones meet (docs/design-grid.md §4).
  JointSizes pair_sizes(long x, long y, long dx, long dy);
  // The joints computed since the last take_sizes() or pair_sizes() (pair() and the other
  // computations count theirs too): tests compare pair_sizes() with what pair() allocates.
  JointSizes take_sizes();

 private:
  // Site sets of the upward walk: sets[l] for l = 0..top, sets[l+1] the parents of sets[l].
  std::vector<std::vector<GridSite>> walk(int layer, const std::vector<GridSite>& sites,
                                          long* wx, long* wy) const;
  bool fits_window(int layer, const std::vector<GridSite>& set, long* wx, long* wy) const;
  std::vector<GridSite> parents(int layer, const std::vector<GridSite>& set) const;
  std::vector<int> window_places(int layer, long wx, long wy, const std::vector<GridSite>& set) const;
  std::vector<long> top_sites_of(const std::vector<GridSite>& set) const;
  // windows_' window (layer, wx, wy), where a joint starts; one outside its region (a caller
  // whose halo is too narrow for its pairs) is refused with cmera::Error rather than read.
  const double* start_window(int layer, long wx, long wy) const;
  // Recorded only when rho is windows_' own window (layer, wx, wy) and top is m_.top.
  SetJoint from_window(int layer, const double* rho, long wx, long wy,
                       const std::vector<GridSite>& set);
  SetJoint from_top(const std::vector<GridSite>& set, const std::vector<double>& top);
  // The marginal of `top` (m_.top or top_sum()) on `sites`, cached: pairs that reach the
  // top share a few sets. Valid until the next call (the cache is bounded).
  const std::vector<double>& top_marginal(const double* top, const std::vector<long>& sites);
  const std::vector<double>& top_sum();
  const std::vector<double>& window_sum(int layer);
  SetJoint descend(int layer, SetJoint coarse, const std::vector<GridSite>& set);
  PairAdjoints::LineKey line_key(int layer, int dir, long line, const std::vector<long>& fine) const;
  const Model& line_chain(int layer, int dir, long line_key);
  const std::vector<double>& conditional(const PairAdjoints::LineKey& key);
  // The entry of a set's marginal that each entry of a window over alphabet K adds to
  // (window_entries), per (K, the set's window places), cached.
  const std::vector<std::size_t>& window_entries_of(int K, const std::vector<int>& places);
  // op's value from its inputs (`in`: the joint it reads, or kWindow's window; `cond`:
  // kJoint's conditional), into out: the one arithmetic of recording and replay.
  void compute(const TapeOp& op, const double* in, const double* cond, double* out);
  void compute(const TapeOp& op, const double* in, const double* cond, std::vector<double>& out);
  // The entries of op's value.
  std::size_t result_size(const TapeOp& op) const;
  // Steps of a joint that the tape records (when recording_): a line conditional of
  // (layer, dir, line) applied to `consumed` (transposed: pulled up instead of down), a
  // joint's values used as the conditional, and a marginal.
  SetJoint line_step(SetJoint j, const std::vector<long>& consumed,
                     const std::vector<long>& produced, int d, int layer, int dir, long line,
                     const std::vector<long>& fine, bool transposed);
  SetJoint joint_step(const SetJoint& j, const std::vector<long>& consumed,
                      const std::vector<long>& produced, int d, SetJoint cond);
  SetJoint project_step(SetJoint j, const std::vector<long>& labels);
  // Appends op, whose result is `out`, to the tape: out gets its id, and values_ gets a
  // copy of the value only once a step reads it (keep): results that no step reads (a
  // pair's last) are never copied.
  SetJoint record(SetJoint out, TapeOp op);
  // Stores a recorded input for the reverse pass, unless a step reading it stored it.
  void keep(const SetJoint& j);
  void reverse(const std::vector<TapeOp>& tape, const std::vector<double>& g, PairAdjoints& adj);
  // Every step of `tape` computed again into values_ (pair_backward's replay).
  void replay(const std::vector<TapeOp>& tape);
  // Drops the values and adjoints a pair left that are too large to keep for the next
  // (the small ones are reused: their allocations cost more than their arithmetic).
  void release_large_buffers();
  SetJoint pull_up(const std::vector<std::vector<GridSite>>& cone, int top, long value_label);
  struct PairCones {  // the sites' own cones, layers 0..meet
    int meet;
    std::vector<std::vector<GridSite>> a, b;
  };
  PairCones pair_cones(int from, GridSite a, GridSite b) const;
  std::vector<double> contract_pair(const SetJoint& joint, const PairCones& c, long sx, long sy);
  // A tied model's joint of a set summed over every translation of its layer
  // (translation_sum), and what contract_product derives from it and keeps: `reduced`,
  // the joint summed against one site's pulled-up expectation, per (that site's labels in
  // it, its class); `by_b`, the joint as a column-major [other sites' states x that site's
  // cone states] matrix, per that site's labels.
  struct SharedJoint {
    SetJoint joint;
    std::map<std::pair<std::vector<long>, GridSite>, SetJoint> reduced;
    std::map<std::vector<long>, SetJoint> by_b;
  };
  // A site's pulled-up expectation of f, phi[cone state] (contract_product): tied tables
  // make it depend on the site only through its class mod 2^meet, so it is kept per class,
  // with the class representative's cone at `meet` (phi's labels, in order).
  struct Expectation {
    std::vector<GridSite> cone;
    std::vector<double> phi;
  };
  const Expectation& expectation(int meet, GridSite site_class, const std::vector<double>& f);
  // sum rho(cone_a, cone_b) phi_a phi_b for the pair (a, b), whose cones are disjoint at
  // `layer`, with shared.joint the joint of those cones moved by (sx, sy).
  double contract_product(SharedJoint& shared, int layer, GridSite a, GridSite b, long sx,
                          long sy, const std::vector<double>& f);
  SharedJoint& translation_sum(int layer, const std::vector<GridSite>& set);
  std::vector<GridSite> canonical(int layer, const std::vector<GridSite>& set, long* sx, long* sy) const;
  std::vector<double> finish(int from, SetJoint joint, const std::vector<std::vector<GridSite>>& sets,
                             const std::vector<GridSite>& order);

  const GridModel& m_;
  const GridWindowMarginals& windows_;
  std::vector<std::vector<double>> window_sums_;  // tied: per layer, sum of all windows
  std::vector<double> top_sum_;  // tied: sum of the top table over its translations
  std::map<std::pair<const double*, std::vector<long>>, std::vector<double>> top_marginals_;
  std::size_t top_marginal_entries_ = 0;  // cleared beyond 2^24
  std::map<std::tuple<int, int, long>, Model> lines_;  // one-layer chain per line
  std::map<PairAdjoints::LineKey, std::vector<double>> conditionals_;
  // translation_sum's joints by (layer, set), and the entries they and their reductions
  // hold (dropped beyond a bound).
  std::map<std::pair<int, std::vector<GridSite>>, SharedJoint> shared_;
  std::size_t shared_entries_ = 0;
  std::map<std::tuple<int, long, long>, Expectation> expectations_;  // by (meet, class)
  std::vector<double> expectation_f_;  // the f they hold
  std::size_t expectation_entries_ = 0;
  // Every step's result passes through sized(), which adds its entries to sizes_; in
  // sizing mode (pair_sizes) the steps return labels and dims only, with no values.
  bool sizing_ = false;
  JointSizes sizes_;
  SetJoint sized(SetJoint j);
  void add_sizes(const JointSizes& s);
  // In sizing mode, pull_up's result (labels and dims, the value label left off) and the
  // sizes of its steps, by (site x, site y, top layer).
  std::map<std::tuple<long, long, int>, std::pair<SetJoint, JointSizes>> pull_up_sizes_;
  bool recording_ = false;
  std::vector<TapeOp> tape_;  // one pair's steps, in forward order
  // Doubles that keep their allocation from pair to pair and leave new entries
  // uninitialized: every step writes its result over its buffer, and every adjoint is
  // written over at its first contribution (zero-filling them cost a fifth of a large
  // grid's pair terms).
  struct StepBuffer {
    std::unique_ptr<double[]> p;
    std::size_t size = 0, capacity = 0;
    double* resize(std::size_t n) {
      if (capacity < n) {
        p.reset(new double[n]);
        capacity = n;
      }
      size = n;
      return p.get();
    }
    double* data() const { return p.get(); }
  };
  // The steps' results (values_[k] from step k; while recording, only once a step reads
  // it), their adjoints in the reverse pass, and which adjoints it has written.
  std::vector<StepBuffer> values_, adjoints_;
  std::vector<char> live_;
  std::map<std::pair<int, std::vector<int>>, std::vector<std::size_t>> window_entries_;
  LineBuffers scratch_;
};

// Collective: cmera::require_memory for pair joints of `entries_per_thread` doubles on every
// thread of each rank, and `rank_bytes` more per rank (pair terms' tapes); the message is
// `subject`, why such joints grow (chi^18), and `remedy`. Training's pair terms and eval's
// C(r) check theirs with it before building any.
void require_pair_joint_memory(const Comm& comm, double entries_per_thread, double rank_bytes,
                               std::string_view subject, std::string_view remedy);

// Exact C(k) = (1/N) sum_i <s_i s_{i + k (dx, dy)}> for k = 1..max_steps, s = 2x - 1 for a
// binary alphabet and s = x otherwise (not connected), as the chain's correlation
// (docs/design.md §3); `windows` holds m's window marginals. Collective. Tied: every rank
// lists the classes of every k, the classes' shapes (whose joints serve many k) are dealt
// to ranks and threads, and each C(k) adds its classes' values in list order; untied:
// ranks take the distances in turn and each C(k) is one thread's sum. Either way the
// result is the same bit for bit at any rank and thread count.
std::vector<double> model_correlation(const Comm& comm, const GridModel& m,
                                      const GridWindowMarginals& windows, long dx, long dy,
                                      long max_steps);

}  // namespace cmera::grid
