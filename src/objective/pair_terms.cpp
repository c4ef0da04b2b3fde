// Multiscale pair terms (pair_terms.hpp): chains of window conditionals below the
// meeting layer, one-layer ConePlans from shared cone-set nodes above it.
#include "cmera/pair_terms.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "cmera/error.hpp"
#include "cmera/window_kernels.hpp"

namespace cmera {

using cone::wrap;

namespace {
// Calls body(at), at(e) the entry of a shared pair's start marginal that holds its class
// plan's start entry e: e itself, or orders[order][e] where a translation reordered the
// start set. Two instantiations, so the common case runs without a gather.
template <class Body>
void with_start_order(const std::vector<std::vector<std::size_t>>& orders, long order, Body&& body) {
  if (order < 0) {
    body([](std::size_t e) { return e; });
  } else {
    const std::size_t* at = orders[static_cast<std::size_t>(order)].data();
    body([at](std::size_t e) { return at[e]; });
  }
}

// env[x][window entry at[a]] += from[x][a]: a cone's adjoint into its window's.
void add_cone_adjoint(const std::vector<std::size_t>& at, const std::vector<double>& from, int d,
                      std::size_t w, std::vector<double>& env) {
  const std::size_t n = at.size();
  for (int x = 0; x < d; ++x)
    for (std::size_t a = 0; a < n; ++a) env[x * w + at[a]] += from[x * n + a];
}

// Entry order of one set's marginal as another's: `from` and `to` list the same sites (as
// offsets) in two orders, each marginal row-major over its own order with K states per
// site; order[e] is the entry of `to`'s marginal holding entry e of `from`'s.
std::vector<std::size_t> entry_order(const std::vector<long>& from, const std::vector<long>& to, int K) {
  const std::size_t n = from.size();
  std::vector<std::size_t> stride(n);  // of from's site i in to's marginal
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t j = static_cast<std::size_t>(std::find(to.begin(), to.end(), from[i]) - to.begin());
    stride[i] = 1;
    for (std::size_t k = j + 1; k < n; ++k) stride[i] *= static_cast<std::size_t>(K);
  }
  std::size_t size = 1;
  for (std::size_t i = 0; i < n; ++i) size *= static_cast<std::size_t>(K);
  std::vector<std::size_t> order(size);
  for (std::size_t e = 0; e < size; ++e) {
    std::size_t rest = e, at = 0;
    for (std::size_t i = n; i-- > 0;) {
      at += (rest % K) * stride[i];
      rest /= K;
    }
    order[e] = at;
  }
  return order;
}
}  // namespace

std::vector<long> dyadic_distances(long sites) {
  std::vector<long> r;
  for (long d = 2; d <= sites / 2; d *= 2) r.push_back(d);
  return r;
}

long pair_stride(const Geometry& g, long requested) {
  // The pair sites stand for all N sites, weighted by the stride: a stride beyond N would
  // weigh the single pair site i = 0 by more than N.
  if (requested > g.sites)
    throw Error(fmt::format("objective.pair_stride = {} is larger than the lattice (N = {} "
                            "sites); use 1..N, or 0 for automatic", requested, g.sites));
  if (requested > 0) return requested;
  const long chi = *std::max_element(g.chi.begin(), g.chi.end());
  return std::max(1L, g.sites * chi * chi / 2048);
}

std::size_t PairTerms::add_chain(long first, int position) {
  Chain c;
  c.at.push_back(site_in_window(geometry_, first, position));
  c.own.push_back({});
  for (int l = 0; l < geometry_.depth(); ++l) {
    std::array<bool, 5> own{};
    c.at.push_back(ascend(geometry_, l, c.at.back(), &own));
    c.own.push_back(own);
  }
  chains_.push_back(std::move(c));
  return chains_.size() - 1;
}

PairTerms::PairTerms(const Geometry& g, const PairStats& stats, double weight)
    : geometry_(g), stats_(stats), weight_(weight) {
  // One chain per site, in the window the site starts (any window holding the site would
  // do: it contains the site's cone at every layer), shared by every pair it ends.
  std::map<long, std::size_t> index;
  auto chain = [&](long site) {
    const auto it = index.find(wrap(site, g.sites));
    if (it != index.end()) return it->second;
    return index[wrap(site, g.sites)] = add_chain(site, 0);
  };
  by_layer_.resize(static_cast<std::size_t>(g.depth()) + 1);
  for (long r : stats.distances)
    for (long i : stats.sites) {
      const std::size_t left = chain(i), right = chain(i + r);
      // Highest layer up to which the two cones share no site (hence no table): the
      // joint formed there has the fewest layers of dense work above it.
      int meet = 0;
      while (meet < g.depth() && disjoint(chains_[left].at[meet + 1].cone, chains_[right].at[meet + 1].cone))
        ++meet;
      if (meet == 0) {
        pairs_.push_back({0, left, right, node(0, {wrap(i, g.sites), wrap(i + r, g.sites)})});
        continue;
      }
      const ConeInWindow &a = chains_[left].at[meet], &b = chains_[right].at[meet];
      std::vector<long> joint = a.cone;
      joint.insert(joint.end(), b.cone.begin(), b.cone.end());
      pairs_.push_back({meet, left, right, node(meet, joint)});
      pairs_.back().left_at = window_entries(g, meet, a);
      pairs_.back().right_at = window_entries(g, meet, b);
      chains_[left].top = std::max(chains_[left].top, meet);
      chains_[right].top = std::max(chains_[right].top, meet);
    }
  build_covers();
  for (Chain& c : chains_) {
    c.up.resize(static_cast<std::size_t>(c.top) + 1);
    for (int l = 0; l <= c.top; ++l) {
      c.up[l].assign(g.chi[0] * window_size(g.chi[l]), 0.0);
    }
  }
}

std::size_t PairTerms::node(int layer, const std::vector<long>& sites) {
  const auto key = std::make_pair(layer, sites);
  const auto it = node_index_.find(key);
  if (it != node_index_.end()) return it->second;
  Node n{layer, sites, 0, ConePlan(geometry_, layer, sites, std::min(layer + 1, geometry_.depth()))};
  if (layer == geometry_.depth()) {
    std::size_t size = 1;
    for (std::size_t k = 0; k < sites.size(); ++k) size *= static_cast<std::size_t>(geometry_.chi.back());
    n.p.assign(size, 0.0);
  } else {
    n.parent = node(layer + 1, n.plan.top_sites());
  }
  nodes_.push_back(std::move(n));
  by_layer_[layer].push_back(nodes_.size() - 1);
  return node_index_[key] = nodes_.size() - 1;
}

// Greedy over the top nodes in site order: a node joins the current cover while the
// union stays within kCoverEntries entries (a node larger than that is its own cover).
void PairTerms::build_covers() {
  const int T = geometry_.depth();
  const std::size_t K = static_cast<std::size_t>(geometry_.chi.back());
  std::vector<std::size_t> tops = by_layer_[T];
  std::sort(tops.begin(), tops.end(), [&](std::size_t a, std::size_t b) {
    std::vector<long> x = nodes_[a].sites, y = nodes_[b].sites;
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    return x < y;
  });
  auto entries = [&](std::size_t sites) {
    std::size_t n = 1;
    for (std::size_t k = 0; k < sites; ++k) n = std::min(n * K, kCoverEntries + 1);
    return n;
  };
  std::vector<std::vector<std::size_t>> members;
  std::set<long> current;
  for (std::size_t k : tops) {
    std::set<long> grown = current;
    grown.insert(nodes_[k].sites.begin(), nodes_[k].sites.end());
    if (members.empty() || entries(grown.size()) > kCoverEntries) {
      members.emplace_back();
      grown = std::set<long>(nodes_[k].sites.begin(), nodes_[k].sites.end());
    }
    members.back().push_back(k);
    current = grown;
    covers_.resize(members.size());
    covers_.back().sites.assign(current.begin(), current.end());
  }
  for (std::size_t c = 0; c < covers_.size(); ++c) {
    Cover& cv = covers_[c];
    std::size_t n = 1;
    for (std::size_t k = 0; k < cv.sites.size(); ++k) n *= K;
    cv.p.assign(n, 0.0);
    cv.g.assign(n, 0.0);
    for (std::size_t k : members[c]) {
      Node& nd = nodes_[k];
      nd.parent = c;
      nd.in_cover.clear();
      for (long s : nd.sites)
        nd.in_cover.push_back(std::lower_bound(cv.sites.begin(), cv.sites.end(), s) - cv.sites.begin());
    }
  }
}

const double* PairTerms::node_marginal(std::size_t k) const {
  const Node& n = nodes_[k];
  return n.layer == geometry_.depth() ? n.p.data() : n.plan.marginal().data();
}

// What a chain's steps at layers 1..l depend on, as a key: with tied tables, where its cone
// sits in its window at each layer up to l (and which of the window's tables it reads),
// and the parity of its windows below l (which of the two window kernels a step takes);
// untied, also the windows themselves.
std::vector<long> PairTerms::chain_key(const Chain& c, int l, bool tied) const {
  std::vector<long> key;
  for (int j = 0; j <= l; ++j) {
    const long M = geometry_.sites_at(j);
    key.push_back(tied ? (j < l ? c.at[j].window % 2 : -1) : c.at[j].window);
    std::vector<long> offsets;
    for (long site : c.at[j].cone) offsets.push_back(wrap(site - c.at[j].window, M));
    std::sort(offsets.begin(), offsets.end());
    key.push_back(static_cast<long>(offsets.size()));
    key.insert(key.end(), offsets.begin(), offsets.end());
    if (j > 0)
      for (bool b : c.own[j]) key.push_back(b);
  }
  return key;
}

void PairTerms::group_chains(bool tied) {
  const int top = geometry_.depth();
  classes_.assign(static_cast<std::size_t>(top) + 1, {});
  class_of_.assign(chains_.size(), std::vector<std::size_t>(static_cast<std::size_t>(top) + 1, 0));
  const int d = geometry_.chi[0];
  for (int l = 1; l <= top; ++l) {
    std::map<std::vector<long>, std::size_t> index;
    for (std::size_t k = 0; k < chains_.size(); ++k) {
      if (chains_[k].top < l) continue;
      const auto [it, added] = index.try_emplace(chain_key(chains_[k], l, tied), classes_[l].size());
      if (added) {
        ChainClass cl;
        if (l > 1) cl.below = class_of_[k][l - 1];
        cl.env.assign(d * window_size(geometry_.chi[l]), 0.0);
        classes_[l].push_back(std::move(cl));
      }
      classes_[l][it->second].members.push_back(k);
      class_of_[k][l] = it->second;
    }
  }
  group_pairs(tied);
  grouped_tied_ = tied;
}

// What the map from a pair's cone set h layers above its meeting layer m down to its
// joint at m depends on, with tied tables: its chains' classes at m, and where its two
// cones (at m) and their cone at m + h sit relative to the left cone's window, whose
// position mod 2^h fixes which sites the isometries of layers m .. m + h - 1 feed. Equal
// keys: the same map, up to a translation.
std::vector<long> PairTerms::pair_key(const Pair& pr, int h) const {
  const int m = pr.meet;
  const long base = chains_[pr.left].at[m].window, step = 1L << h;
  std::vector<long> key{m, h, static_cast<long>(class_of_[pr.left][m]), static_cast<long>(class_of_[pr.right][m]),
                        base % step};
  for (long s : nodes_[pr.joint].sites) key.push_back(wrap(s - base, geometry_.sites_at(m)));
  std::vector<long> start = start_offsets(pr, h);
  std::sort(start.begin(), start.end());  // as a set: a translation may wrap and reorder it
  key.insert(key.end(), start.begin(), start.end());
  return key;
}

// The sites of a pair's cone h layers above its meeting layer (its ancestor node's, in
// that node's order), relative to its left cone's window there.
std::vector<long> PairTerms::start_offsets(const Pair& pr, int h) const {
  const long base = chains_[pr.left].at[pr.meet].window >> h, M = geometry_.sites_at(pr.meet + h);
  std::vector<long> offsets;
  for (long s : nodes_[ancestor(pr.joint, h)].sites) offsets.push_back(wrap(s - base, M));
  return offsets;
}

std::size_t PairTerms::ancestor(std::size_t node, int h) const {
  for (int k = 0; k < h; ++k) node = nodes_[node].parent;
  return node;
}

// Pairs grouped by pair_key at h; with `chosen`, only those that chose h.
std::map<std::vector<long>, std::vector<std::size_t>> PairTerms::pairs_alike(int h, const std::vector<int>& chosen) const {
  std::map<std::vector<long>, std::vector<std::size_t>> alike;
  for (std::size_t k = 0; k < pairs_.size(); ++k)
    if (pairs_[k].meet + h <= geometry_.depth() && (chosen.empty() || chosen[k] == h))
      alike[pair_key(pairs_[k], h)].push_back(k);
  return alike;
}

// Work a class of these pairs would save (positive) or add: the nodes on the members'
// paths below the class's start layer (each a forward and a reverse pass, about three
// plan passes), each counted for the share of its `users` (the pairs whose path passes
// it) that are members, since it is freed only once all of them start above it, against
// the class's d^2 pull-backs and d^2 forward and reverse passes of its plan, and each
// member's three dot products with its start marginal.
double PairTerms::share_value(const std::vector<std::size_t>& members, int h, std::size_t dd,
                               const std::vector<std::size_t>& users) const {
  const Pair& first = pairs_[members.front()];
  const ConePlan plan(geometry_, first.meet, nodes_[first.joint].sites, first.meet + h);
  std::map<std::size_t, std::size_t> below;  // nodes under the start: how many members pass
  for (std::size_t k : members)
    for (std::size_t n = pairs_[k].joint, j = 0; j < static_cast<std::size_t>(h); ++j, n = nodes_[n].parent)
      ++below[n];
  double saved = 0;  // each node's share passed by members
  for (const auto& [n, passing] : below)
    saved += 3.0 * static_cast<double>(nodes_[n].plan.work()) * static_cast<double>(passing) / static_cast<double>(users[n]);
  double start = 1;  // entries of the start marginal
  for (std::size_t k = 0; k < nodes_[ancestor(first.joint, h)].sites.size(); ++k) start *= geometry_.chi[first.meet + h];
  const double cost = 4.0 * static_cast<double>(dd * plan.work()) + 3.0 * static_cast<double>(dd * members.size()) * start;
  return saved - cost;
}

// Pair classes (PairClass): each pair joins the class, h layers up from its meeting layer,
// that saves the most work per member (share_value; a class h layers up holds the
// translations by 2^h at the meeting layer, a subset of one h - 1 layers up, but frees the
// nodes below its start), or none. Then which nodes are live: the joints of the other
// pairs, the start sets of shared pairs, and their ancestors.
void PairTerms::group_pairs(bool tied) {
  pair_classes_.clear();
  for (Node& n : nodes_) {
    n.pairs.clear();
    n.shared_pairs.clear();
  }
  for (Chain& c : chains_) c.pairs.clear();
  for (Pair& pr : pairs_) pr.shared = -1;
  const int T = geometry_.depth();
  if (tied) {
    // For each pair, the h whose class saves the most work per member, then the classes
    // of the pairs that chose the same h.
    const std::size_t dd = static_cast<std::size_t>(stats_.d) * stats_.d;
    std::vector<std::size_t> users(nodes_.size(), 0);  // pairs whose path up from their joint passes
    for (const Pair& pr : pairs_)
      for (std::size_t n = pr.joint;; n = nodes_[n].parent) {
        ++users[n];
        if (nodes_[n].layer == T) break;
      }
    std::vector<double> value(pairs_.size(), 0.0);
    std::vector<int> chosen(pairs_.size(), 0);
    for (int h = 1; h < T; ++h)
      for (const auto& [key, members] : pairs_alike(h, {})) {
        if (members.size() < 2) continue;
        const double per = share_value(members, h, dd, users) / static_cast<double>(members.size());
        for (std::size_t k : members)
          if (per > value[k]) {
            value[k] = per;
            chosen[k] = h;
          }
      }
    std::vector<std::pair<int, std::vector<std::size_t>>> groups;  // (h, members)
    for (int h = 1; h < T; ++h)
      for (auto& [key, members] : pairs_alike(h, chosen))
        if (members.size() >= 2) groups.emplace_back(h, std::move(members));
    // Classes in the order of their first pair: the order every sum over them follows.
    std::sort(groups.begin(), groups.end(),
              [](const auto& x, const auto& y) { return x.second.front() < y.second.front(); });
    for (auto& [h, members] : groups) {
      const Pair& first = pairs_[members.front()];
      const std::size_t c = pair_classes_.size();
      std::vector<std::vector<std::size_t>> orders;
      std::map<std::vector<long>, long> order_index;
      const std::vector<long> plan_offsets = start_offsets(first, h);
      for (std::size_t k : members) {
        Pair& pr = pairs_[k];
        pr.shared = static_cast<long>(c);
        pr.start = ancestor(pr.joint, h);
        nodes_[pr.start].shared_pairs.push_back(k);
        const std::vector<long> offsets = start_offsets(pr, h);
        if (offsets == plan_offsets) {
          pr.order = -1;
          continue;
        }
        const auto [it, added] = order_index.try_emplace(offsets, static_cast<long>(orders.size()));
        if (added) orders.push_back(entry_order(plan_offsets, offsets, geometry_.chi[first.meet + h]));
        pr.order = it->second;
      }
      const std::size_t left = class_of_[first.left][first.meet], right = class_of_[first.right][first.meet];
      if (first.meet > 0) {  // (pairs meeting at layer 0 pass nothing to chains)
        classes_[first.meet][left].shared.emplace_back(c, true);
        classes_[first.meet][right].shared.emplace_back(c, false);
      }
      ConePlan plan(geometry_, first.meet, nodes_[first.joint].sites, first.meet + h);
      if (plan.top_sites() != nodes_[first.start].sites)
        throw std::logic_error("pair terms: a shared joint's start set is not its ancestor node's");
      pair_classes_.push_back({first.meet, h, std::move(members), left, right, std::move(plan), std::move(orders)});
    }
    for (Node& n : nodes_) std::sort(n.shared_pairs.begin(), n.shared_pairs.end());
  }
  for (std::size_t k = 0; k < pairs_.size(); ++k) {  // the adjoints each one sums, in pair order
    const Pair& pr = pairs_[k];
    if (pr.shared >= 0) continue;  // its class sums them
    nodes_[pr.joint].pairs.push_back(k);
    if (pr.meet == 0) continue;
    chains_[pr.left].pairs.emplace_back(k, true);
    chains_[pr.right].pairs.emplace_back(k, false);
  }
  live_.assign(nodes_.size(), 0);
  for (const Pair& pr : pairs_) live_[pr.shared < 0 ? pr.joint : pr.start] = 1;
  for (std::size_t n = nodes_.size(); n-- > 0;)  // children after their parents
    if (live_[n] && nodes_[n].layer < geometry_.depth()) live_[nodes_[n].parent] = 1;
}

// up[0] = indicator of the site's value; up[l+1][x] = up[l][x] pulled back to the
// coarse window, computed once per class of layer l+1 (its first chain) and copied to the
// class's other chains.
void PairTerms::build_chains(const Model& model) {
  const int d = geometry_.chi[0];
  const int chi_max = *std::max_element(geometry_.chi.begin(), geometry_.chi.end());
#pragma omp parallel for schedule(static)
  for (std::size_t k = 0; k < chains_.size(); ++k) {
    Chain& c = chains_[k];
    if (c.top == 0) continue;
    const std::size_t n0 = window_size(d);
    const std::size_t stride = window_stride(wrap(c.at[0].cone[0] - c.at[0].window, geometry_.sites), d);
    for (int x = 0; x < d; ++x)
      for (std::size_t w = 0; w < n0; ++w) c.up[0][x * n0 + w] = (w / stride) % d == static_cast<std::size_t>(x);
  }
  for (int l = 1; l <= geometry_.depth(); ++l) {
    const std::vector<ChainClass>& at = classes_[l];
    const std::size_t nl = window_size(geometry_.chi[l - 1]), nk = window_size(geometry_.chi[l]);
#pragma omp parallel
    {
      WindowPullback pullback(chi_max);
#pragma omp for schedule(dynamic, 4)
      for (std::size_t g = 0; g < at.size(); ++g) {
        Chain& c = chains_[at[g].members.front()];
        std::fill(c.up[l].begin(), c.up[l].end(), 0.0);
        for (int x = 0; x < d; ++x)
          pullback.pull(model, l - 1, c.at[l - 1].window, c.up[l - 1].data() + x * nl, c.up[l].data() + x * nk);
      }
#pragma omp for schedule(static)
      for (std::size_t k = 0; k < chains_.size(); ++k)
        if (chains_[k].top >= l && at[class_of_[k][l]].members.front() != k)
          chains_[k].up[l] = chains_[at[class_of_[k][l]].members.front()].up[l];
    }
  }
}

double PairTerms::log_likelihood(const Model& model) {
  if (grouped_tied_ != model.tied) group_chains(model.tied);
  const int K = geometry_.chi.back();
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t c = 0; c < covers_.size(); ++c)
    table_marginal(K, geometry_.top_sites(), covers_[c].sites, model.tables.top.data(), covers_[c].p.data());
  for (int l = geometry_.depth(); l >= 0; --l) {  // nodes top down, a layer at a time
    const std::vector<std::size_t>& at = by_layer_[l];
#pragma omp parallel for schedule(dynamic, 1)
    for (std::size_t k = 0; k < at.size(); ++k) {
      Node& n = nodes_[at[k]];
      if (!live_[at[k]]) continue;
      if (l == geometry_.depth()) {
        const Cover& cv = covers_[n.parent];
        table_marginal(K, static_cast<long>(cv.sites.size()), n.in_cover, cv.p.data(), n.p.data());
      } else {
        n.plan.forward(model, node_marginal(n.parent));
      }
    }
  }
  build_chains(model);
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t c = 0; c < pair_classes_.size(); ++c) share_forward(model, pair_classes_[c]);
  const int d = stats_.d;
  const std::size_t dd = static_cast<std::size_t>(d) * d;
  std::vector<double> terms(pairs_.size(), 0.0);
#pragma omp parallel for schedule(dynamic, 8)
  for (std::size_t k = 0; k < pairs_.size(); ++k) {
    Pair& pr = pairs_[k];
    const double* joint = node_marginal(pr.joint);
    if (pr.shared >= 0) {  // p[x] = <f_x, start marginal>
      const std::vector<double>& f = pair_classes_[pr.shared].f;
      const double* start = node_marginal(pr.start);
      const std::size_t n = f.size() / dd;
      pr.p.assign(dd, 0.0);
      with_start_order(pair_classes_[pr.shared].orders, pr.order, [&](auto at) {
        for (std::size_t x = 0; x < dd; ++x)
          for (std::size_t e = 0; e < n; ++e) pr.p[x] += f[x * n + e] * start[at(e)];
      });
    } else if (pr.meet == 0) {
      pr.p.assign(joint, joint + dd);
    } else {
      // p[xl][xr] = sum_b (sum_a Tl[xl][a] rho[a][b]) Tr[xr][b], T read at the cones'
      // window entries (up[meet] is [x][window entry]).
      const std::vector<double>& tl = chains_[pr.left].up[pr.meet];
      const std::vector<double>& tr = chains_[pr.right].up[pr.meet];
      const std::size_t na = pr.left_at.size(), nb = pr.right_at.size();
      const std::size_t wl = tl.size() / d, wr = tr.size() / d;
      std::vector<double> m(d * nb, 0.0);
      for (int xl = 0; xl < d; ++xl)
        for (std::size_t a = 0; a < na; ++a)
          for (std::size_t b = 0; b < nb; ++b)
            m[xl * nb + b] += tl[xl * wl + pr.left_at[a]] * joint[a * nb + b];
      pr.p.assign(dd, 0.0);
      for (int xl = 0; xl < d; ++xl)
        for (int xr = 0; xr < d; ++xr)
          for (std::size_t b = 0; b < nb; ++b)
            pr.p[xl * d + xr] += m[xl * nb + b] * tr[xr * wr + pr.right_at[b]];
    }
    const double* q = stats_.q.data() + k * dd;
    for (std::size_t x = 0; x < dd; ++x)
      if (q[x] > 0) terms[k] += q[x] * std::log(pr.p[x]);
  }
  double total = 0;
  for (double t : terms) total += t;  // fixed order: thread-count independent
  return weight_ * total;
}

// U_x of a class, x = (xl, xr), over its plan's sites (the two cones in turn): the
// chains' functions read at the cones' window entries, or, when the pairs meet at layer 0
// (the plan's sites are the pair's own two), the indicator of x.
void PairTerms::class_function(const PairClass& pc, int xl, int xr, std::vector<double>& u) const {
  const int d = stats_.d;
  const Pair& first = pairs_[pc.members.front()];
  if (pc.meet == 0) {
    u.assign(static_cast<std::size_t>(d) * d, 0.0);
    u[static_cast<std::size_t>(xl) * d + xr] = 1;
    return;
  }
  const std::vector<double>& tl = chains_[first.left].up[pc.meet];
  const std::vector<double>& tr = chains_[first.right].up[pc.meet];
  const std::size_t na = first.left_at.size(), nb = first.right_at.size();
  const std::size_t wl = tl.size() / d, wr = tr.size() / d;
  u.resize(na * nb);
  for (std::size_t a = 0; a < na; ++a)
    for (std::size_t b = 0; b < nb; ++b)
      u[a * nb + b] = tl[xl * wl + first.left_at[a]] * tr[xr * wr + first.right_at[b]];
}

// The class's U_x pulled back to its start sites: f[x] = A^T U_x.
void PairTerms::share_forward(const Model& model, PairClass& pc) {
  const int d = stats_.d;
  std::vector<double> u;
  pc.f.clear();
  for (int xl = 0; xl < d; ++xl)
    for (int xr = 0; xr < d; ++xr) {
      class_function(pc, xl, xr, u);
      const std::vector<double>& back = pc.plan.start_adjoint(model, u);
      pc.f.insert(pc.f.end(), back.begin(), back.end());
    }
}

// The class's reverse pass from its pairs' adjoints w (pair_reverse): per x, M_x = sum_k
// w_k(x) P_k in pair order, R_x = A M_x; the chains' adjoints are R_x contracted with the
// other chain's function, and the table gradients those of <U_x, A M_x>, summed over x
// in the plan (added to the tables later, in a fixed order).
void PairTerms::share_reverse(const Model& model, PairClass& pc) {
  const int d = stats_.d;
  const std::size_t dd = static_cast<std::size_t>(d) * d;
  const Pair& first = pairs_[pc.members.front()];
  const std::size_t na = first.left_at.size(), nb = first.right_at.size();  // 0 at meet 0
  std::vector<double> m(pc.f.size() / dd), u;
  pc.el.assign(d * na, 0.0);
  pc.er.assign(d * nb, 0.0);
  for (int xl = 0; xl < d; ++xl)
    for (int xr = 0; xr < d; ++xr) {
      const std::size_t x = static_cast<std::size_t>(xl) * d + xr;
      std::fill(m.begin(), m.end(), 0.0);
      for (std::size_t k : pc.members) {
        const double w = pairs_[k].w[x];
        const double* start = node_marginal(pairs_[k].start);
        with_start_order(pc.orders, pairs_[k].order, [&](auto at) {
          for (std::size_t e = 0; e < m.size(); ++e) m[e] += w * start[at(e)];
        });
      }
      const std::vector<double>& r = pc.plan.forward(model, m.data());
      if (pc.meet > 0) {
        const std::vector<double>& tl = chains_[first.left].up[pc.meet];
        const std::vector<double>& tr = chains_[first.right].up[pc.meet];
        const std::size_t wl = tl.size() / d, wr = tr.size() / d;
        for (std::size_t a = 0; a < na; ++a) {
          const double t = tl[xl * wl + first.left_at[a]];
          double sum = 0;
          for (std::size_t b = 0; b < nb; ++b) {
            sum += r[a * nb + b] * tr[xr * wr + first.right_at[b]];
            pc.er[xr * nb + b] += r[a * nb + b] * t;
          }
          pc.el[xl * na + a] += sum;
        }
      }
      class_function(pc, xl, xr, u);
      pc.plan.backward_local(model, u, x > 0);
    }
}

// Reverse pass of pair k without touching anything shared: its chains' adjoints at the
// meeting layer go to pr.el / pr.er, the adjoint of its joint to pr.gj.
void PairTerms::pair_reverse(double scale, std::size_t k, Scratch& s) {
  const int d = stats_.d;
  const std::size_t dd = static_cast<std::size_t>(d) * d;
  Pair& pr = pairs_[k];
  const double* q = stats_.q.data() + k * dd;
  s.g.resize(dd);
  for (std::size_t x = 0; x < dd; ++x) s.g[x] = q[x] > 0 ? scale * weight_ * q[x] / pr.p[x] : 0.0;
  if (pr.shared >= 0) {  // the rest is its class's (share_reverse)
    pr.w = s.g;
    return;
  }
  if (pr.meet == 0) {
    pr.gj = s.g;
    return;
  }
  const double* rho = node_marginal(pr.joint);
  const std::vector<double>& tl = chains_[pr.left].up[pr.meet];
  const std::vector<double>& tr = chains_[pr.right].up[pr.meet];
  const std::size_t na = pr.left_at.size(), nb = pr.right_at.size();
  const std::size_t wl = tl.size() / d, wr = tr.size() / d;
  // h[xl][b] = sum_xr g[xl][xr] Tr[xr][b];  j[xr][a] = sum_xl g[xl][xr] Tl[xl][a]
  s.h.assign(d * nb, 0.0);
  s.j.assign(d * na, 0.0);
  for (int xl = 0; xl < d; ++xl)
    for (int xr = 0; xr < d; ++xr) {
      const double gx = s.g[xl * d + xr];
      for (std::size_t b = 0; b < nb; ++b) s.h[xl * nb + b] += gx * tr[xr * wr + pr.right_at[b]];
      for (std::size_t a = 0; a < na; ++a) s.j[xr * na + a] += gx * tl[xl * wl + pr.left_at[a]];
    }
  // dF/drho[a][b] = sum_x Tl[x][a] h[x][b]; dF/dTl[x][a] = sum_b rho[a][b] h[x][b];
  // dF/dTr[x][b] = sum_a j[x][a] rho[a][b], kept per cone state ([x][a], [x][b]).
  pr.gj.assign(na * nb, 0.0);
  pr.el.assign(d * na, 0.0);
  pr.er.assign(d * nb, 0.0);
  for (std::size_t a = 0; a < na; ++a)
    for (int x = 0; x < d; ++x) {
      const double t = tl[x * wl + pr.left_at[a]], ja = s.j[x * na + a];
      const double* hx = s.h.data() + x * nb;
      const double* row = rho + a * nb;
      double* gr = pr.gj.data() + a * nb;
      double* er = pr.er.data() + x * nb;
      double sum = 0;
      for (std::size_t b = 0; b < nb; ++b) {
        gr[b] += t * hx[b];
        sum += row[b] * hx[b];
        er[b] += ja * row[b];
      }
      pr.el[x * na + a] = sum;
    }
}

// Pairs run their reverse passes on threads, then add into the shared chain adjoints and
// joint nodes in pair order; nodes and chains likewise: a fixed order whatever the
// thread count.
void PairTerms::gradient(const Model& model, double scale, Tables& grad) {
  const int d = stats_.d;
  std::vector<Scratch> scratch(static_cast<std::size_t>(omp_get_max_threads()));
#pragma omp parallel
  {
#pragma omp for schedule(dynamic, 8)
    for (std::size_t k = 0; k < pairs_.size(); ++k) pair_reverse(scale, k, scratch[omp_get_thread_num()]);
#pragma omp for schedule(dynamic, 1)
    for (std::size_t c = 0; c < pair_classes_.size(); ++c) share_reverse(model, pair_classes_[c]);
    // Each node sums the adjoints of its pairs in pair order (the shared pairs' after the
    // others'), on threads.
#pragma omp for schedule(dynamic, 16) nowait
    for (std::size_t n = 0; n < nodes_.size(); ++n) {
      if (!live_[n]) continue;
      Node& nd = nodes_[n];
      nd.g.assign(nd.layer == geometry_.depth() ? nd.p.size() : nd.plan.marginal().size(), 0.0);
      for (std::size_t k : nd.pairs)
        for (std::size_t x = 0; x < pairs_[k].gj.size(); ++x) nd.g[x] += pairs_[k].gj[x];
      for (std::size_t k : nd.shared_pairs) {
        const PairClass& pc = pair_classes_[pairs_[k].shared];
        const std::vector<double>& w = pairs_[k].w;
        const std::size_t n_g = nd.g.size();
        with_start_order(pc.orders, pairs_[k].order, [&](auto at) {
          for (std::size_t x = 0; x < w.size(); ++x)
            for (std::size_t e = 0; e < n_g; ++e) nd.g[at(e)] += w[x] * pc.f[x * n_g + e];
        });
      }
    }
    // Each class sums, at its layer, the adjoints its chains' pairs formed there: chains
    // in order, each chain's pairs in pair order (layers are independent: no barrier).
    for (std::size_t l = 1; l < classes_.size(); ++l) {
#pragma omp for schedule(dynamic, 16) nowait
      for (std::size_t g = 0; g < classes_[l].size(); ++g) {
        std::vector<double>& env = classes_[l][g].env;
        std::fill(env.begin(), env.end(), 0.0);
        const std::size_t w = env.size() / d;
        for (std::size_t c : classes_[l][g].members)
          for (const auto& [k, left] : chains_[c].pairs) {
            const Pair& pr = pairs_[k];
            if (pr.meet != static_cast<int>(l)) continue;
            add_cone_adjoint(left ? pr.left_at : pr.right_at, left ? pr.el : pr.er, d, w, env);
          }
        for (const auto& [c, left] : classes_[l][g].shared) {
          const PairClass& pc = pair_classes_[c];
          const Pair& first = pairs_[pc.members.front()];
          add_cone_adjoint(left ? first.left_at : first.right_at, left ? pc.el : pc.er, d, w, env);
        }
      }
    }
  }
  // Nodes bottom up, a layer at a time: reverse passes on threads, then, in node order,
  // their table gradients and their adjoints into their parents, each thread adding its
  // share of the table rows and of the parents' entries (disjoint, so every entry is
  // summed in node order whatever the thread count).
  const int T = geometry_.depth();
  for (int l = 0; l < T; ++l) {
    const std::vector<std::size_t>& at = by_layer_[l];
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1)
      for (std::size_t k = 0; k < at.size(); ++k)
        if (live_[at[k]]) nodes_[at[k]].plan.backward_local(model, nodes_[at[k]].g);
      const int part = omp_get_thread_num(), parts = omp_get_num_threads();
      for (PairClass& pc : pair_classes_)
        if (pc.meet == l) pc.plan.add_gradient(grad, part, parts);
      for (std::size_t k : at) {
        if (!live_[k]) continue;
        Node& n = nodes_[k];
        n.plan.add_gradient(grad, part, parts);
        std::vector<double>& into = nodes_[n.parent].g;
        const std::vector<double>& gt = n.plan.top_gradient();
        const std::size_t n_gt = gt.size(), from = n_gt * part / parts, to = n_gt * (part + 1) / parts;
        for (std::size_t x = from; x < to; ++x) into[x] += gt[x];
      }
    }
  }
  // Top nodes into their covers (in node order), then each cover's adjoint reaches the
  // top table once; threads split the table into fixed pieces, each adding the covers
  // in order.
  const int K = geometry_.chi.back();
  for (Cover& cv : covers_) std::fill(cv.g.begin(), cv.g.end(), 0.0);
  for (std::size_t k : by_layer_[T]) {
    if (!live_[k]) continue;
    const Node& n = nodes_[k];
    Cover& cv = covers_[n.parent];
    table_marginal_adjoint(K, static_cast<long>(cv.sites.size()), n.in_cover, n.g.data(), cv.g.data(), 0,
                           cv.g.size());
  }
  const std::size_t size = geometry_.top_size(), k_size = static_cast<std::size_t>(K);
  const std::size_t piece = std::max(k_size, (size / 64 + k_size - 1) / k_size * k_size);
#pragma omp parallel for schedule(static)
  for (std::size_t begin = 0; begin < size; begin += piece)
    for (const Cover& cv : covers_)
      table_marginal_adjoint(K, geometry_.top_sites(), cv.sites, cv.g.data(), grad.top.data(), begin,
                             std::min(size, begin + piece));
  descend_chains(model, grad);
}

// Reverse pass of the chains, top down, a class at a time: a class's env[x] is the sum of
// its chains' adjoints at its layer (a signed measure on the window), its descent through
// layer l-1 pairs with up[l-1][x] to give that layer's table gradient and joins the class
// below; every step is linear in env, so a class descends once for all its chains. Only
// the tables of the site's own cone receive the gradient: a window table outside the cone
// has all its outputs summed, so its gradient is a constant per conditional row, which EM
// would count as extra prior-like evidence (measured: it slowed EM about threefold). The
// gradient then equals that of one two-site cone per pair. Classes run on threads, each
// into its own buffers, which are then added to the classes below and the shared tables
// in class order (thread-count independent).
void PairTerms::descend_chains(const Model& model, Tables& grad) {
  const int d = geometry_.chi[0];
  const int chi_max = *std::max_element(geometry_.chi.begin(), geometry_.chi.end());
  // Own-table gradients of a class per layer: five slots (W x3, U x2 under its window).
  auto slot_size = [&](int l, int k) {
    const LayerTables& t = grad.layers[l - 1];
    return k < 3 ? t.w_size() : t.u_size();
  };
  std::vector<std::vector<double>> held, child;
  for (int l = geometry_.depth(); l >= 1; --l) {
    std::vector<ChainClass>& at = classes_[l];
    const int dl = geometry_.chi[l - 1], K = geometry_.chi[l];
    const std::size_t nl = window_size(dl), nk = window_size(K);
    held.resize(std::max(held.size(), at.size()));
    child.resize(std::max(child.size(), at.size()));
#pragma omp parallel
    {
      kernels::WindowScratch scratch;
      scratch.reserve(chi_max, chi_max);
      // Gradients of tables outside the site's own cone, and of the coarse measure (which
      // the class below already receives through descend_pair), are discarded here.
      std::vector<double> sink(window_size(chi_max) * chi_max), sink_rho(window_size(chi_max));
#pragma omp for schedule(dynamic, 1)
      for (std::size_t g = 0; g < at.size(); ++g) {
        const Chain& c = chains_[at[g].members.front()];
        std::vector<double>& buf = held[g];
        std::size_t total = 0;
        for (int s = 0; s < 5; ++s) total += c.own[l][s] ? slot_size(l, s) : 0;
        buf.assign(total, 0.0);
        child[g].assign(l > 1 ? d * nl : 0, 0.0);
        const kernels::ConeTables tab = kernels::cone_tables(model.tables.layers[l - 1], c.at[l].window);
        double* slot[5];
        for (std::size_t s = 0, offset = 0; s < 5; ++s) {
          slot[s] = c.own[l][s] ? buf.data() + offset : sink.data();
          offset += c.own[l][s] ? slot_size(l, static_cast<int>(s)) : 0;
        }
        const kernels::ConeGradients gt{slot[0], slot[1], slot[2], slot[3], slot[4]};
        const bool odd = c.at[l - 1].window % 2 == 1;
        for (int x = 0; x < d; ++x) {
          const double* measure = at[g].env.data() + x * nk;
          if (l > 1) {
            double* into = child[g].data() + x * nl;
            kernels::descend_pair(dl, K, tab, measure, odd ? into : nullptr, odd ? nullptr : into, scratch);
          }
          const double* up = c.up[l - 1].data() + x * nl;
          kernels::ascend_pair(dl, K, tab, measure, odd ? up : nullptr, odd ? nullptr : up, sink_rho.data(),
                               gt, scratch);
        }
      }
    }
    for (std::size_t g = 0; g < at.size(); ++g) {  // into the classes below and the tables, in order
      const Chain& c = chains_[at[g].members.front()];
      if (l > 1) {
        std::vector<double>& below = classes_[l - 1][at[g].below].env;
        for (std::size_t w = 0; w < below.size(); ++w) below[w] += child[g][w];
      }
      const kernels::ConeGradients to = kernels::cone_gradients(grad.layers[l - 1], c.at[l].window);
      double* dest[5] = {to.w0, to.w1, to.w2, to.u0, to.u1};
      const double* from = held[g].data();
      for (int s = 0; s < 5; ++s) {
        if (!c.own[l][s]) continue;
        const std::size_t n = slot_size(l, s);
        for (std::size_t i = 0; i < n; ++i) dest[s][i] += from[i];
        from += n;
      }
    }
  }
}

PairTerms::Sharing PairTerms::sharing() const {
  Sharing s;
  for (const Pair& pr : pairs_) {
    s.pairs += pr.shared >= 0;
    s.reordered += pr.shared >= 0 && pr.order >= 0;
  }
  for (const PairClass& pc : pair_classes_) s.layers = std::max(s.layers, pc.layers);
  return s;
}

std::vector<long> PairTerms::tables_read(int layer) const {
  std::vector<long> all;
  for (const auto& n : nodes_) {
    const auto& t = n.plan.tables_read(layer);
    all.insert(all.end(), t.begin(), t.end());
  }
  const long M = geometry_.sites_at(layer + 1);
  for (const Chain& c : chains_)
    if (layer < c.top)
      for (long k = 0; k < 3; ++k) all.push_back(wrap(c.at[layer + 1].window + k, M));
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

}  // namespace cmera
