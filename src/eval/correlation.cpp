// Exact two-point function (correlation.hpp): site chains pulled up layer by layer,
// pairs grouped by the pair of cones at the layer where they are last disjoint.
#include "cmera/correlation.hpp"

#include <algorithm>
#include <array>
#include <map>

#include "cmera/site_chain.hpp"
#include "cmera/siteset.hpp"
#include "cmera/statistics.hpp"

namespace cmera {

namespace {

using cone::wrap;

// The sites of one rank's pairs: offsets k = 0..span-1 stand for site first + k; the
// rank's left sites are k < count, their partners lie in (k, k + R] on the ring.
struct Span {
  long sites, first, count, span, max_distance;
  long site(long k) const { return wrap(first + k, sites); }
  long distance(long from, long to) const { return wrap(to - from, sites); }
};

// Sites sharing one cone at the current layer.
struct Group {
  std::vector<long> cone;
  std::vector<long> members;  // offsets, increasing
};

// Every pair (i in a, j in b) is last disjoint at this layer: one joint rho_ab serves all.
struct GroupPair {
  std::size_t a, b;
};

// Partial sums of one group pair over r = lo .. lo + sums.size() - 1.
struct Partial {
  long lo = 0;
  std::vector<double> sums;
};

// The partner offsets of left offset k among `members` (increasing): those at distance
// 1..R, as at most two index ranges [begin, end) into members.
std::array<std::pair<std::size_t, std::size_t>, 2> partners(const Span& s, long k,
                                                            const std::vector<long>& members) {
  auto index = [&](long offset) {
    return static_cast<std::size_t>(std::lower_bound(members.begin(), members.end(), offset) - members.begin());
  };
  const long last = k + s.max_distance;  // offsets k+1 .. last, wrapping past N
  std::array<std::pair<std::size_t, std::size_t>, 2> r{};
  r[0] = {index(k + 1), index(std::min(last, s.sites - 1) + 1)};
  if (last >= s.sites) r[1] = {0, index(last - s.sites + 1)};
  return r;
}

std::vector<Group> group_by_cone(const std::vector<ConeInWindow>& at) {
  std::map<std::vector<long>, std::vector<long>> by_cone;
  for (std::size_t k = 0; k < at.size(); ++k) by_cone[at[k].cone].push_back(static_cast<long>(k));
  std::vector<Group> groups;
  for (auto& [cone, members] : by_cone) groups.push_back({cone, std::move(members)});
  return groups;
}

// Group pairs whose cones are disjoint at `layer` but not one layer up (at the top: just
// disjoint), whose left group holds some of the rank's left sites.
std::vector<GroupPair> last_disjoint_pairs(const Geometry& g, int layer, const Span& s,
                                           const std::vector<Group>& groups) {
  const bool top = layer == g.depth();
  std::vector<std::vector<long>> parents(groups.size());
  std::map<long, std::vector<std::size_t>> by_parent;
  if (!top)
    for (std::size_t k = 0; k < groups.size(); ++k) {
      parents[k] = cone_parents(g, layer, groups[k].cone);
      for (long p : parents[k]) by_parent[p].push_back(k);
    }
  std::vector<GroupPair> out;
  for (std::size_t a = 0; a < groups.size(); ++a) {
    if (groups[a].members.front() >= s.count) continue;  // no left site of this rank
    std::vector<std::size_t> candidates;
    if (top) {
      for (std::size_t b = 0; b < groups.size(); ++b) candidates.push_back(b);
    } else {
      for (long p : parents[a]) candidates.insert(candidates.end(), by_parent[p].begin(), by_parent[p].end());
      std::sort(candidates.begin(), candidates.end());
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    }
    for (std::size_t b : candidates)
      if (b != a && disjoint(groups[a].cone, groups[b].cone)) out.push_back({a, b});
  }
  return out;
}

// Sums of phi_i^T rho phi_j over the rank's pairs (i in a, j in b), by distance.
// phi[k]: offset k's function at its cone's states.
Partial pair_sums(const Model& model, int layer, const Span& s, const Group& a, const Group& b,
                  const std::vector<std::vector<double>>& phi) {
  // Distances grow along each partner range, so its ends bound the sums' extent; a group
  // pair without any of the rank's pairs (all partners beyond R) costs no joint.
  long lo = s.sites, hi = 0;
  for (long k : a.members) {
    if (k >= s.count) break;
    for (const auto& [first, last] : partners(s, k, b.members))
      if (first < last) {
        lo = std::min(lo, s.distance(k, b.members[first]));
        hi = std::max(hi, s.distance(k, b.members[last - 1]));
      }
  }
  if (hi < lo) return {};
  Partial out{lo, std::vector<double>(static_cast<std::size_t>(hi - lo + 1), 0.0)};
  std::vector<long> sites = a.cone;
  sites.insert(sites.end(), b.cone.begin(), b.cone.end());
  ConePlan plan(model.geometry, layer, sites);
  const std::vector<double>& rho = plan.forward(model);
  const std::size_t na = phi[a.members.front()].size(), nb = phi[b.members.front()].size();
  // v[j] = rho phi_j, column by column.
  std::vector<double> v(b.members.size() * na, 0.0);
  for (std::size_t c = 0; c < b.members.size(); ++c) {
    const std::vector<double>& pj = phi[b.members[c]];
    double* vc = v.data() + c * na;
    for (std::size_t x = 0; x < na; ++x) {
      double t = 0;
      for (std::size_t y = 0; y < nb; ++y) t += rho[x * nb + y] * pj[y];
      vc[x] = t;
    }
  }
  for (long k : a.members) {
    if (k >= s.count) break;
    const std::vector<double>& pi = phi[k];
    for (const auto& [first, last] : partners(s, k, b.members))
      for (std::size_t c = first; c < last; ++c) {
        const double* vc = v.data() + c * na;
        double t = 0;
        for (std::size_t x = 0; x < na; ++x) t += pi[x] * vc[x];
        out.sums[s.distance(k, b.members[c]) - lo] += t;
      }
  }
  return out;
}

}  // namespace

std::vector<double> model_correlation(const Comm& comm, const Model& model, long max_distance) {
  const Geometry& g = model.geometry;
  const int d = g.chi[0];
  const BlockPartition part{g.sites, comm.size()};
  const long count = part.count(comm.rank());
  const Span s{g.sites, part.begin(comm.rank()), count, std::min(g.sites, count + max_distance), max_distance};
  const int chi_max = *std::max_element(g.chi.begin(), g.chi.end());

  // Layer 0: each site in the middle of its window, f = its spin value.
  std::vector<ConeInWindow> at(static_cast<std::size_t>(s.span));
  std::vector<double> f(static_cast<std::size_t>(s.span) * window_size(d));
  for (long k = 0; k < s.span; ++k) {
    at[k] = site_in_window(g, s.site(k) - 1, 1);
    for (std::size_t w = 0; w < window_size(d); ++w)
      f[k * window_size(d) + w] = spin_value(static_cast<int>((w / window_stride(1, d)) % d), d);
  }
  std::vector<double> sums(static_cast<std::size_t>(max_distance), 0.0);
  std::vector<std::vector<double>> phi(static_cast<std::size_t>(s.span));
  for (int layer = 0;; ++layer) {
    const std::size_t nw = window_size(g.chi[layer]);
#pragma omp parallel for schedule(static)
    for (long k = 0; k < s.span; ++k) {
      phi[k].clear();
      for (std::size_t e : window_entries(g, layer, at[k])) phi[k].push_back(f[k * nw + e]);
    }
    const std::vector<Group> groups = group_by_cone(at);
    const std::vector<GroupPair> pairs = last_disjoint_pairs(g, layer, s, groups);
    std::vector<Partial> partial(pairs.size());
#pragma omp parallel for schedule(dynamic, 1)
    for (std::size_t p = 0; p < pairs.size(); ++p)
      partial[p] = pair_sums(model, layer, s, groups[pairs[p].a], groups[pairs[p].b], phi);
    for (const Partial& p : partial)  // fixed order: independent of the thread count
      for (std::size_t x = 0; x < p.sums.size(); ++x) sums[p.lo - 1 + x] += p.sums[x];
    if (layer == g.depth()) break;

    const std::size_t nu = window_size(g.chi[layer + 1]);
    std::vector<double> f_up(static_cast<std::size_t>(s.span) * nu, 0.0);
#pragma omp parallel
    {
      WindowPullback pullback(chi_max);
#pragma omp for schedule(static)
      for (long k = 0; k < s.span; ++k) {
        pullback.pull(model, layer, at[k].window, f.data() + k * nw, f_up.data() + k * nu);
        at[k] = ascend(g, layer, at[k]);
      }
    }
    f.swap(f_up);
  }
  comm.sum_inplace(sums.data(), sums.size());
  for (double& x : sums) x /= static_cast<double>(g.sites);
  return sums;
}

}  // namespace cmera
