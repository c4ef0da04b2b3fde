// Multiscale pair terms of the objective (docs/design.md §3): for every distance r in a list
// (dyadic by default) and every site i a rank owns, the exact joint marginal of
// {i, i+r}, its log-likelihood under the data's pair statistics, and the reverse pass.
// Windows fix short-range structure only; these terms pin the correlation function at
// every scale.
//
// Trade-off: below the layer m where their cones meet, the cones of i and i+r are
// independent given layer m, so p(x_i, x_j) = sum_{a,b} rho_m(a, b) T_i(x_i|a) T_j(x_j|b),
// a and b the two sites' own cones at m. The conditionals T ("chains", one per endpoint
// site, shared by every distance; site_chain.hpp) come from the window kernels in
// O(chi^5) per layer (each cone lies inside a 3-site window); only the joint rho_m needs
// a general cone (ConePlan), and only for one layer: it starts from the marginal of the
// pair's cone at m+1, a node shared by every pair whose cone is that same set (at upper
// layers pairs of all distances and positions share few sets; each node is one layer of
// dense work from its own parent node, and the top nodes are marginals of a few covering
// marginals of the top table, one pass over it per cover instead of one per pair and
// pass).
// With tied tables, pairs alike up to a translation (PairClass) skip their own joint
// nodes: the class pulls the chains' functions back to a shared start layer once, and each
// pair is a dot product with its node's marginal there.
// Pairs whose windows already touch at layer 1 keep the plain two-site cone (from layer
// 1). Plans are built once per run; forward and reverse run on threads, and the reverse
// pass adds into shared chain adjoints, nodes and tables in a fixed order, so results do
// not depend on the thread count. The unfactorized reference (one ConePlan per pair) is in
// tests/test_pair_terms.cpp.
#pragma once
#include <array>
#include <cstddef>
#include <map>
#include <utility>
#include <vector>

#include "cmera/model.hpp"
#include "cmera/site_chain.hpp"
#include "cmera/siteset.hpp"

namespace cmera {

// Empirical pair distributions q_{i,i+r} for the rank's pair sites i.
struct PairStats {
  std::vector<long> distances;
  std::vector<long> sites;  // left sites i of the pairs (global indices, increasing)
  int d = 2;
  std::vector<double> q;    // [distance][site][d*d]
};

// Dyadic distances 2, 4, 8, ... up to N/2.
std::vector<long> dyadic_distances(long sites);
// Stride between pair sites: `requested`, or max(1, N * chi_max^2 / 2048) when 0, i.e.
// about 2048 / chi_max^2 pair sites per distance. The joint of a pair costs up to ~chi^8
// against chi^5 per layer for a window, so on large lattices a subset of positions keeps
// the pair terms affordable; every window stays in. A requested stride above N is refused
// (cmera::Error): its one pair site would be weighted by more than N.
long pair_stride(const Geometry& g, long requested);

class PairTerms {
 public:
  PairTerms(const Geometry& g, const PairStats& stats, double weight);
  bool empty() const { return pairs_.empty(); }
  // Forward every cone; returns weight * sum_{r,i} sum_x q log p (no communication).
  double log_likelihood(const Model& model);
  // Joint p(x_i, x_i+r) of pair k (PairStats order) from the last log_likelihood().
  const std::vector<double>& marginal(std::size_t k) const { return pairs_[k].p; }
  // Layer at which pair k's joint is formed (0: the plain two-site cone).
  int meeting_layer(std::size_t k) const { return pairs_[k].meet; }
  // Adds d/dtheta of scale * (the value above) to grad. Requires log_likelihood().
  void gradient(const Model& model, double scale, Tables& grad);
  // How the last log_likelihood() formed the joints (tests check each path is exercised):
  // pairs through a PairClass, those whose start marginal a translation reordered, and the
  // most layers a class's plan spans.
  struct Sharing {
    std::size_t pairs = 0, reordered = 0;
    int layers = 0;
  };
  Sharing sharing() const;
  // Coarse sites of `layer` whose tables some pair cone reads (sorted, unique).
  std::vector<long> tables_read(int layer) const;

 private:
  // One endpoint site from layer 0 up to `top`: at[l] its window and cone at layer l
  // (at[l+1].window is the coarse window feeding at[l].window); up[l] holds
  // P(site = x | window at l) as [x][chi_l^3] (its adjoint is summed per class,
  // ChainClass).
  struct Chain {
    std::vector<ConeInWindow> at;
    // own[l]: which of the five tables under at[l].window (W x3, U x2 of layer l-1) the
    // site's cone reads; l = 0 unused.
    std::vector<std::array<bool, 5>> own;
    int top = 0;       // highest layer a pair needs
    std::vector<std::pair<std::size_t, bool>> pairs = {};  // (unshared pair, as its left site), in order
    std::vector<std::vector<double>> up;
  };
  struct Pair {
    int meet;            // layer of the joint (0: two-site cone of the sites themselves)
    std::size_t left, right;  // chains (when meet > 0)
    std::size_t joint;        // node of the two cones' joint at `meet` (meet 0: the pair's)
    std::vector<double> p = {};   // [x_i][x_j]
    std::vector<std::size_t> left_at = {}, right_at = {};  // window entry of each cone state
    // reverse pass: adjoints of the chains [x][cone state] and of the joint
    std::vector<double> el = {}, er = {}, gj = {};
    long shared = -1;             // its PairClass, or -1: its own joint node
    std::size_t start = 0;        // shared: the node its class's plan starts from
    long order = -1;              // shared: its start marginal's entry order (PairClass::orders), -1: the plan's
    std::vector<double> w = {};   // shared: the adjoint of p, [x]
  };
  // A site set shared by plans: the marginal a plan (or a node below) starts from, and
  // its summed adjoint. At the top it is a marginal of the top table; below, a one-layer
  // plan from its parent node's set. Node sets are the cones of pairs above their
  // meeting layer, where pairs at every distance and position converge onto few sets.
  struct Node {
    int layer;
    std::vector<long> sites;  // sorted, except a pair's joint (its two cones in turn)
    std::size_t parent = 0;   // node at layer + 1 (below the top); top nodes: their cover
    ConePlan plan;            // below the top: from the parent's sites to these
    std::vector<double> p = {}, g = {};  // p: top nodes only (others: plan.marginal())
    std::vector<long> in_cover = {};     // top nodes: positions of `sites` in the cover's
    std::vector<std::size_t> pairs = {};  // unshared pairs whose joint it is, in order
    std::vector<std::size_t> shared_pairs = {};  // shared pairs that start from it, in order
  };
  // Pairs whose joints at the meeting layer m come alike from their cones h layers up
  // (tied tables, pair_key): their chains fall in the same classes at m, and their cones at
  // m and at m + h sit alike, translated by a multiple of 2^h, so the map A from the start
  // marginal P_k (the pair's node at m + h) to the joint is the same for all, and so are
  // U_x = Tl[x_l] (x) Tr[x_r]. Since p_k(x) = <U_x, A P_k> = <A^T U_x, P_k>, the class
  // pulls its d^2 functions U_x back through A once (f), and each pair is a dot product
  // with its start marginal. The reverse pass is linear in the pairs' adjoints w_k: the
  // class forms M_x = sum_k w_k(x) P_k and runs A forward and backward once per x (chain
  // adjoints from A M_x, table gradients of <U_x, A M_x>), each pair's start node receiving
  // sum_x w_k(x) f_x. A class costs about 4 d^2 passes of A against the nodes below its
  // start, so each pair takes the h (or none) that saves the most (share_value).
  struct PairClass {
    int meet, layers;                    // m, and h: its plan starts at m + h
    std::vector<std::size_t> members;    // pairs, in order; the first one's windows serve all
    std::size_t left_class, right_class;  // its chains' classes at meet
    ConePlan plan;                       // the first member's joint, from its start set
    // Start marginals whose sites a translation wrapped into another order: orders[o][e] is
    // the entry holding the plan's start entry e.
    std::vector<std::vector<std::size_t>> orders;
    std::vector<double> f = {};          // [x][start entry]: A^T U_x
    std::vector<double> el = {}, er = {};  // its chains' summed adjoints, [x][cone state]
  };
  // Top sites covering several top nodes (at most kCoverEntries entries): one pass over
  // the top table per cover and pass, the nodes' marginals then come from the small
  // cover marginal. Without covers every distinct top set is a full pass, and a large
  // top (2^24 entries) has a hundred of them against the windows' N_T.
  struct Cover {
    std::vector<long> sites;  // sorted
    std::vector<double> p, g;
  };
  static constexpr std::size_t kCoverEntries = 4096;
  struct Scratch {
    std::vector<double> g, h, j;
  };
  // Chains whose steps at a layer and below are the same (chain_key): with tied tables,
  // chains whose cones sit alike in their windows, with windows of the same parity below,
  // pull up the same functions and pass adjoints down through the same kernels, so their
  // up[l] is computed once and their adjoints at l are summed and descended once (a few
  // classes per layer against one chain per pair site and distance). Untied, every chain
  // is its own class.
  struct ChainClass {
    std::vector<std::size_t> members;  // its chains, in order; the first one's windows and up[] serve all
    std::size_t below = 0;    // the class at layer - 1 its chains belong to (layer >= 2)
    std::vector<double> env;  // its chains' summed adjoint at its layer, [x][window entry]
    std::vector<std::pair<std::size_t, bool>> shared = {};  // (pair class, as its left chains), in order
  };
  std::size_t add_chain(long first, int position);
  std::size_t node(int layer, const std::vector<long>& sites);
  const double* node_marginal(std::size_t k) const;
  std::vector<long> chain_key(const Chain& c, int layer, bool tied) const;
  std::vector<long> pair_key(const Pair& pr, int h) const;
  std::size_t ancestor(std::size_t node, int h) const;
  std::vector<long> start_offsets(const Pair& pr, int h) const;
  std::map<std::vector<long>, std::vector<std::size_t>> pairs_alike(int h, const std::vector<int>& chosen) const;
  double share_value(const std::vector<std::size_t>& members, int h, std::size_t dd,
                     const std::vector<std::size_t>& users) const;
  void group_chains(bool tied);
  void group_pairs(bool tied);
  void class_function(const PairClass& pc, int xl, int xr, std::vector<double>& u) const;
  void share_forward(const Model& model, PairClass& pc);
  void share_reverse(const Model& model, PairClass& pc);
  void build_chains(const Model& model);
  void pair_reverse(double scale, std::size_t k, Scratch& s);
  void descend_chains(const Model& model, Tables& grad);

  Geometry geometry_;
  const PairStats& stats_;
  double weight_;
  std::vector<Chain> chains_;
  std::vector<std::vector<ChainClass>> classes_;    // [layer][class], layers 1..depth
  std::vector<std::vector<std::size_t>> class_of_;  // [chain][layer]: its class there
  int grouped_tied_ = -1;                            // model.tied the classes are for (-1: none yet)
  std::vector<Pair> pairs_;  // [distance][site]
  std::vector<PairClass> pair_classes_;
  std::vector<char> live_;   // nodes some pair or live node reads (not the joints of shared pairs)
  void build_covers();
  std::vector<Node> nodes_;  // parents before children
  std::vector<Cover> covers_;
  std::map<std::pair<int, std::vector<long>>, std::size_t> node_index_;
  std::vector<std::vector<std::size_t>> by_layer_;  // node indices per layer
};

}  // namespace cmera
