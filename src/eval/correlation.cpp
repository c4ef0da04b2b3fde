// Exact two-point function (correlation.hpp). Untied models: site chains pulled up layer
// by layer, pairs grouped by the pair of cones at the layer where they are last disjoint,
// one joint per group pair and one dot product per pair. Tied models: the same split, but
// summed over translations first (chains per residue, one translation-summed joint per
// class, FFT cross-correlations over residues), so the cost no longer grows as N R.
#include "cmera/correlation.hpp"

#include <unsupported/Eigen/FFT>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <map>

#include "cmera/error.hpp"
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

std::vector<double> model_correlation_by_position(const Comm& comm, const Model& model,
                                                  long max_distance) {
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


namespace {

// ---- Tied models ----
// Site i = 2^m beta + p (p < 2^m) is, at layer m, residue p translated by beta blocks: its
// window and cone shift by beta and its function on the cone (in window-offset order) is
// the residue's, because every layer applies the same tables. A pair (i, j) last
// disjoint at m is fixed, up to translation, by its class: the cones of p and q, the
// block offset Delta = beta_j - beta_i, and (below the top) beta_i mod 2, which decides
// the cones one layer up. Every pair of a class uses the joint of one shape translated,
// so the joints are summed over translations first: one joint per class.

// Cones of the residues with one cone, and their chains. Cone sites are in window-offset
// order (not sorted), so a translated cone keeps its order across the ring's end.
struct ConeType {
  std::vector<long> cone;
  std::vector<long> residues;                  // increasing
  std::vector<const std::vector<double>*> phi; // per residue, row-major over `cone`
};

std::vector<long> shifted(const std::vector<long>& sites, long by, long n) {
  std::vector<long> out;
  for (long s : sites) out.push_back(wrap(s + by, n));
  return out;
}

std::vector<long> sorted(std::vector<long> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Translation sums of joints of small site sets at layer m, memoized, in the order of S:
//   all(m, S)  = sum over beta in [0, N_m) of p_m(S + beta)
//   even(m, S) = sum over b in [0, N_m / 2) of p_m(S + 2b)            (below the top)
// S + 2b has the parents P + b, and the step from the joint of P + b to that of S + 2b is
// the same linear map for every b (tied tables), so even(m, S) is one descent of
// all(m+1, P), and all(m, S) = even(m, S) + even(m, S + 1): a few one-layer descents per
// class instead of N_m cones from the top. Small layers (where sets may wrap around the
// whole ring) sum general cones directly.
class ShiftSums {
 public:
  explicit ShiftSums(const Model& model) : model_(model) {}

  const std::vector<double>& all(int m, const std::vector<long>& S) {
    auto [it, fresh] = all_.try_emplace({m, S});
    if (!fresh) return it->second;
    const Geometry& g = model_.geometry;
    if (m == g.depth()) {
      it->second = direct(m, S, 1);
    } else {
      it->second = even(m, S);
      const std::vector<double>& odd = even(m, shifted(S, 1, g.sites_at(m)));
      for (std::size_t k = 0; k < odd.size(); ++k) it->second[k] += odd[k];
    }
    return it->second;
  }

  const std::vector<double>& even(int m, const std::vector<long>& S) {
    auto [it, fresh] = even_.try_emplace({m, S});
    if (!fresh) return it->second;
    const std::vector<long> run = parent_run(m, S);
    it->second = run.empty() ? direct(m, S, 2) : descend(m, S, run, all(m + 1, run));
    return it->second;
  }

 private:
  static constexpr long kDirectSites = 32;  // at most 16 general cones per sum

  std::vector<double> direct(int m, const std::vector<long>& S, long step) const {
    const long n = model_.geometry.sites_at(m);
    std::vector<double> sum;
    for (long b = 0; b < n; b += step) {
      ConePlan plan(model_.geometry, m, shifted(S, b, n));
      const std::vector<double>& p = plan.forward(model_);
      if (sum.empty()) sum.assign(p.size(), 0.0);
      for (std::size_t k = 0; k < p.size(); ++k) sum[k] += p[k];
    }
    return sum;
  }

  // The parents of S at m+1 as a run q0, q0+1, ... of consecutive sites; empty on small
  // layers (where the direct sum is cheap and a run may wrap onto itself).
  std::vector<long> parent_run(int m, const std::vector<long>& S) const {
    const Geometry& g = model_.geometry;
    const long M = g.sites_at(m + 1);
    if (g.sites_at(m) <= kDirectSites) return {};
    const std::vector<long> P = cone_parents(g, m, S);
    for (long q0 : P) {
      if (std::binary_search(P.begin(), P.end(), wrap(q0 - 1, M))) continue;
      std::vector<long> run;
      for (std::size_t k = 0; k < P.size(); ++k) run.push_back(wrap(q0 + static_cast<long>(k), M));
      if (sorted(run) == P) return run;
    }
    throw Error("correlation: the parents of a pair cone are not consecutive");  // cone rule broken
  }

  // Joint of S at layer m from the joint `parents` of its parent run at m+1: a one-layer
  // model whose top holds the run (plus one padding site, so the local ring does not
  // close on the run), contracted by the general cone code.
  std::vector<double> descend(int m, const std::vector<long>& S, const std::vector<long>& run,
                              const std::vector<double>& parents) const {
    const Geometry& g = model_.geometry;
    const long k = static_cast<long>(run.size()), top_sites = std::max(k + 1, 3L);
    const int K = g.chi[m + 1];
    Model local;
    local.geometry = Geometry{2 * top_sites, {g.chi[m], K}};
    local.tied = true;
    local.tables.layers = {model_.tables.layers[m]};
    local.tables.layers[0].coarse = top_sites;
    std::size_t pad = 1;
    for (long s = k; s < top_sites; ++s) pad *= static_cast<std::size_t>(K);
    local.tables.top.assign(parents.size() * pad, 0.0);
    for (std::size_t e = 0; e < parents.size(); ++e) local.tables.top[e * pad] = parents[e];
    std::vector<long> at;
    for (long s : S) {
      at.push_back(wrap(s - 2 * run.front(), g.sites_at(m)));
      if (at.back() < 1 || at.back() > 2 * k - 2) throw Error("correlation: a pair cone left its parents");
    }
    ConePlan plan(local.geometry, 0, at);
    return plan.forward(local);
  }

  const Model& model_;
  std::map<std::pair<int, std::vector<long>>, std::vector<double>> all_, even_;
};

// Pairs of one class: partner cone type, block offset, translation-summed joint.
struct ClassJoint {
  const ConeType* b;
  long delta;
  std::vector<long> sites;                     // the two cones at m: a's, then b's
  const std::vector<double>* joint = nullptr;  // their translation sum [a states][b states]
};

// One unit of work: the pairs whose left residue has cone type `a`, at layer m, with
// beta_i = pi mod 2 (below the top), against every partner class.
struct Item {
  int layer;
  const ConeType* a;
  std::vector<ClassJoint> classes;
};

// Adds sum_{p in a, class, q in class.b} phi_p^T J phi_q at r = 2^m Delta + q - p (mod N)
// to out[r - 1] for r in 1..R. As a function of the lag this is, per cone entry x, a
// cross-correlation over residues: c(t) = sum_x sum_p phi_p[x] w_x(p + t) with
// w = J phi_q placed at 2^m (Delta - Delta_min) + q, zero-padded to a length L >= the lag
// range (linear) or L = N (circular, r is taken mod N anyway). By FFT when that is
// cheaper than one dot product per pair; one entry x at a time, so memory stays O(L).
// Lag layout of an item's sums, whether they go by FFT, and their cost in flops (which
// balances the items over ranks).
struct Layout {
  long dmin = 0, L = 1;
  bool fft = false;
  double cost = 0;
};

Layout layout(const Item& item, long sites, LagSums how) {
  Layout lay;
  long dmax = lay.dmin = item.classes.front().delta;
  double partners = 0, partner_flops = 0;
  const double na = static_cast<double>(item.a->phi.front()->size());
  for (const ClassJoint& c : item.classes) {
    lay.dmin = std::min(lay.dmin, c.delta);
    dmax = std::max(dmax, c.delta);
    partners += static_cast<double>(c.b->residues.size());
    partner_flops += static_cast<double>(c.b->residues.size() * c.b->phi.front()->size()) * na;
  }
  const long span = (dmax - lay.dmin + 2) << item.layer;
  while (lay.L < span) lay.L *= 2;
  if (lay.L >= sites) lay.L = sites;
  const double pairs = static_cast<double>(item.a->residues.size()) * partners;
  const double transforms = 4.0 * static_cast<double>(lay.L) * std::log2(static_cast<double>(lay.L));
  lay.fft = how == LagSums::kAuto ? pairs > transforms : how == LagSums::kFft;
  lay.cost = partner_flops + na * (lay.fft ? 3 * transforms : pairs);
  return lay;
}

void item_sums(const Item& item, long sites, LagSums how, std::vector<double>& out) {
  const long R = static_cast<long>(out.size()), block = 1L << item.layer;
  const std::vector<long>& left = item.a->residues;
  const std::size_t na = item.a->phi.front()->size();
  auto add = [&](long r, double v) {
    if (r >= 1 && r <= R) out[r - 1] += v;
  };
  // Entry x of J phi_q, the partner side of the pair's dot product.
  auto partner = [&](const ClassJoint& c, std::size_t k, std::size_t x) {
    const std::vector<double>& pj = *c.b->phi[k];
    const double* J = c.joint->data() + x * pj.size();
    double t = 0;
    for (std::size_t y = 0; y < pj.size(); ++y) t += J[y] * pj[y];
    return t;
  };
  const Layout lay = layout(item, sites, how);
  const long L = lay.L, dmin = lay.dmin;
  if (!lay.fft) {
    std::vector<double> w(na);
    for (const ClassJoint& c : item.classes)
      for (std::size_t k = 0; k < c.b->residues.size(); ++k) {
        for (std::size_t x = 0; x < na; ++x) w[x] = partner(c, k, x);
        for (std::size_t i = 0; i < left.size(); ++i) {
          const std::vector<double>& pi = *item.a->phi[i];
          double t = 0;
          for (std::size_t x = 0; x < na; ++x) t += pi[x] * w[x];
          add(wrap(c.delta * block + c.b->residues[k] - left[i], sites), t);
        }
      }
    return;
  }
  Eigen::FFT<double> fft;
  std::vector<double> a(static_cast<std::size_t>(L)), w(static_cast<std::size_t>(L)), c;
  std::vector<std::complex<double>> fa, fw, total(static_cast<std::size_t>(L), 0.0);
  for (std::size_t x = 0; x < na; ++x) {
    std::fill(a.begin(), a.end(), 0.0);
    std::fill(w.begin(), w.end(), 0.0);
    for (std::size_t i = 0; i < left.size(); ++i) a[left[i]] = (*item.a->phi[i])[x];
    for (const ClassJoint& cl : item.classes)
      for (std::size_t k = 0; k < cl.b->residues.size(); ++k)
        w[wrap((cl.delta - dmin) * block + cl.b->residues[k], L)] = partner(cl, k, x);
    fft.fwd(fa, a);
    fft.fwd(fw, w);
    for (long f = 0; f < L; ++f) total[f] += std::conj(fa[f]) * fw[f];
  }
  fft.inv(c, total);
  for (long t = 0; t < L; ++t) add(wrap(dmin * block + (t > L - block ? t - L : t), sites), c[t]);
}

// Chain of every residue p < 2^m at layer m: window, cone and function on the window.
struct Residues {
  std::vector<ConeInWindow> at;
  std::vector<double> f;  // [residue][chi_m^3]
};

// Cone types of layer m with each residue's phi (cone in window-offset order).
std::vector<ConeType> cone_types(const Geometry& g, int m, const Residues& res,
                                 std::vector<std::vector<double>>& phi) {
  const long n = g.sites_at(m);
  const int chi = g.chi[m];
  const std::size_t nw = window_size(chi);
  std::map<std::vector<long>, std::size_t> index;
  std::vector<ConeType> types;
  phi.assign(res.at.size(), {});
  for (std::size_t p = 0; p < res.at.size(); ++p) {
    const ConeInWindow& c = res.at[p];
    std::vector<long> cone = c.cone;
    auto offset = [&](long s) { return wrap(s - c.window, n); };
    std::sort(cone.begin(), cone.end(), [&](long x, long y) { return offset(x) < offset(y); });
    std::vector<std::size_t> entries{0};
    for (long s : cone) {
      std::vector<std::size_t> next;
      for (std::size_t e : entries)
        for (int v = 0; v < chi; ++v) next.push_back(e + v * window_stride(offset(s), chi));
      entries.swap(next);
    }
    for (std::size_t e : entries) phi[p].push_back(res.f[p * nw + e]);
    auto [it, fresh] = index.try_emplace(cone, types.size());
    if (fresh) types.push_back({cone, {}, {}});
    types[it->second].residues.push_back(static_cast<long>(p));
  }
  for (ConeType& t : types)
    for (long p : t.residues) t.phi.push_back(&phi[p]);
  return types;
}

}  // namespace

std::vector<double> model_correlation(const Comm& comm, const Model& model, long max_distance,
                                      LagSums how) {
  if (!model.tied) return model_correlation_by_position(comm, model, max_distance);
  const Geometry& g = model.geometry;
  const int d = g.chi[0], chi_max = *std::max_element(g.chi.begin(), g.chi.end());
  Residues res{{site_in_window(g, -1, 1)}, std::vector<double>(window_size(d))};
  for (std::size_t w = 0; w < window_size(d); ++w)
    res.f[w] = spin_value(static_cast<int>((w / window_stride(1, d)) % d), d);
  ShiftSums shifts(model);
  std::vector<double> sums(static_cast<std::size_t>(max_distance), 0.0);
  std::vector<double> load(static_cast<std::size_t>(comm.size()), 0.0);  // flops dealt per rank
  for (int m = 0;; ++m) {
    const long n = g.sites_at(m);
    const bool top = m == g.depth();
    std::vector<std::vector<double>> phi;
    const std::vector<ConeType> types = cone_types(g, m, res, phi);
    // Block offsets that can put two cones last disjoint here: cones sit in 3-site
    // windows and parents at most halve distances, so |Delta| <= 16 covers every pair
    // whose cones meet one layer up; small rings take every offset.
    std::vector<long> deltas;
    if (top || n <= 40)
      for (long x = 0; x < n; ++x) deltas.push_back(x);
    else
      for (long x = -16; x <= 16; ++x) deltas.push_back(x);
    std::vector<Item> all_items;
    for (long pi = 0; pi < (top ? 1 : 2); ++pi)
      for (const ConeType& a : types) {
        Item item{m, &a, {}};
        const std::vector<long> A = shifted(a.cone, pi, n);
        for (const ConeType& b : types)
          for (long delta : deltas) {
            const std::vector<long> B = shifted(b.cone, pi + delta, n);
            if (!disjoint(sorted(A), sorted(B))) continue;
            if (!top && disjoint(cone_parents(g, m, A), cone_parents(g, m, B))) continue;
            std::vector<long> S = A;
            S.insert(S.end(), B.begin(), B.end());
            item.classes.push_back({&b, delta, std::move(S)});
          }
        if (!item.classes.empty()) all_items.push_back(std::move(item));
      }
    // Largest first to the least-loaded rank: the same deal on every rank.
    std::vector<double> cost;
    for (const Item& item : all_items) cost.push_back(layout(item, g.sites, how).cost);
    std::vector<std::size_t> order(all_items.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return cost[x] > cost[y]; });
    std::vector<Item> items;
    for (std::size_t k : order) {
      const auto rank = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
      load[rank] += cost[k];
      if (rank != comm.rank()) continue;
      for (ClassJoint& c : all_items[k].classes)
        c.joint = top ? &shifts.all(m, c.sites) : &shifts.even(m, c.sites);
      items.push_back(std::move(all_items[k]));
    }
    std::vector<std::vector<double>> partial(items.size());
#pragma omp parallel for schedule(dynamic, 1)
    for (std::size_t k = 0; k < items.size(); ++k) {
      partial[k].assign(sums.size(), 0.0);
      item_sums(items[k], g.sites, how, partial[k]);
    }
    for (const std::vector<double>& p : partial)  // fixed order: independent of the thread count
      for (std::size_t r = 0; r < sums.size(); ++r) sums[r] += p[r];
    if (top) break;

    // Residues of layer m+1: site p = 2^m beta + p' is residue p' translated by beta.
    const long count = 2L << m;
    const std::size_t nw = window_size(g.chi[m]), nu = window_size(g.chi[m + 1]);
    Residues up{std::vector<ConeInWindow>(static_cast<std::size_t>(count)),
                std::vector<double>(static_cast<std::size_t>(count) * nu, 0.0)};
#pragma omp parallel
    {
      WindowPullback pullback(chi_max);
#pragma omp for schedule(static)
      for (long p = 0; p < count; ++p) {
        const ConeInWindow& from = res.at[p & ((1L << m) - 1)];
        const long beta = p >> m;
        const ConeInWindow here{wrap(from.window + beta, n), sorted(shifted(from.cone, beta, n))};
        pullback.pull(model, m, here.window, res.f.data() + (p & ((1L << m) - 1)) * nw, up.f.data() + p * nu);
        up.at[p] = ascend(g, m, here);
      }
    }
    res = std::move(up);
  }
  comm.sum_inplace(sums.data(), sums.size());
  for (double& x : sums) x /= static_cast<double>(g.sites);
  return sums;
}

}  // namespace cmera
