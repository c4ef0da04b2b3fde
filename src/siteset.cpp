// Reference site-set descend (siteset.hpp): generic labelled dense tensors and one
// operation, "replace these modes by those through a conditional table". Recursion
// follows the cone rule of DESIGN §3 up to the top. Deliberately unoptimized: every
// step is a loop over the full tensor, so the code is easy to check by eye.
#include "cmera/siteset.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <numeric>
#include <set>

#include "cmera/error.hpp"

namespace cmera {

namespace {

struct LabeledTensor {
  std::vector<long> labels;
  std::vector<int> dims;
  std::vector<double> data;

  std::size_t size() const {
    std::size_t n = 1;
    for (int d : dims) n *= static_cast<std::size_t>(d);
    return n;
  }
  long position(long label) const {
    const auto it = std::find(labels.begin(), labels.end(), label);
    return it == labels.end() ? -1 : static_cast<long>(it - labels.begin());
  }
};

// Row-major digits of a flat index.
void decode(std::size_t flat, const std::vector<int>& dims, std::vector<int>& digits) {
  digits.resize(dims.size());
  for (std::size_t k = dims.size(); k-- > 0;) {
    digits[k] = static_cast<int>(flat % dims[k]);
    flat /= dims[k];
  }
}

// Replaces modes `in` of t by modes `out` (dims out_dims) via kernel[in_flat][out_flat].
LabeledTensor apply(const LabeledTensor& t, const std::vector<long>& in,
                    const std::vector<long>& out, const std::vector<int>& out_dims,
                    const std::vector<double>& kernel) {
  std::vector<long> in_pos;
  for (long l : in) in_pos.push_back(t.position(l));
  LabeledTensor r;
  std::vector<long> keep_pos;
  for (std::size_t k = 0; k < t.labels.size(); ++k)
    if (std::find(in_pos.begin(), in_pos.end(), static_cast<long>(k)) == in_pos.end()) {
      keep_pos.push_back(static_cast<long>(k));
      r.labels.push_back(t.labels[k]);
      r.dims.push_back(t.dims[k]);
    }
  std::size_t out_size = 1;
  for (std::size_t k = 0; k < out.size(); ++k) {
    r.labels.push_back(out[k]);
    r.dims.push_back(out_dims[k]);
    out_size *= static_cast<std::size_t>(out_dims[k]);
  }
  r.data.assign(r.size(), 0.0);
  std::vector<int> digits;
  for (std::size_t flat = 0; flat < t.data.size(); ++flat) {
    decode(flat, t.dims, digits);
    std::size_t keep = 0, in_flat = 0;
    for (long p : keep_pos) keep = keep * t.dims[p] + digits[p];
    for (long p : in_pos) in_flat = in_flat * t.dims[p] + digits[p];
    for (std::size_t o = 0; o < out_size; ++o)
      r.data[keep * out_size + o] += t.data[flat] * kernel[in_flat * out_size + o];
  }
  return r;
}

// Kernel of a conditional with two outputs, keeping only the outputs flagged in `keep`.
std::vector<double> two_output_kernel(const double* table, int rows, int d, bool keep0,
                                      bool keep1) {
  const int o0 = keep0 ? d : 1, o1 = keep1 ? d : 1;
  std::vector<double> k(static_cast<std::size_t>(rows) * o0 * o1, 0.0);
  for (int r = 0; r < rows; ++r)
    for (int x0 = 0; x0 < d; ++x0)
      for (int x1 = 0; x1 < d; ++x1)
        k[(r * o0 + (keep0 ? x0 : 0)) * o1 + (keep1 ? x1 : 0)] += table[(r * d + x0) * d + x1];
  return k;
}

long wrap(long i, long n) { return ((i % n) + n) % n; }

LabeledTensor top_marginal(const Model& model, const std::vector<long>& sites) {
  const Geometry& g = model.geometry;
  const int K = g.chi.back();
  const std::vector<int> all_dims(static_cast<std::size_t>(g.top_sites()), K);
  LabeledTensor r;
  r.labels = sites;
  r.dims.assign(sites.size(), K);
  r.data.assign(r.size(), 0.0);
  std::vector<int> digits;
  for (std::size_t flat = 0; flat < model.tables.top.size(); ++flat) {
    decode(flat, all_dims, digits);
    std::size_t idx = 0;
    for (long s : sites) idx = idx * K + digits[s];
    r.data[idx] += model.tables.top[flat];
  }
  return r;
}

// Marginal over the sorted set S at `layer`, as a tensor labelled by site.
LabeledTensor descend(const Model& model, int layer, const std::vector<long>& S) {
  const Geometry& g = model.geometry;
  if (layer == g.depth()) return top_marginal(model, S);
  const LayerTables& t = model.tables.layers[layer];
  const long M = g.sites_at(layer + 1), n = 2 * M;
  const int d = t.d;
  const std::vector<long> Y = cone_parents(g, layer, S);

  // Stage 1: isometries. Labels: coarse site j -> -1 - j; a-site i -> i.
  LabeledTensor cur = descend(model, layer + 1, Y);
  for (auto& l : cur.labels) l = -1 - l;
  std::set<long> A;
  for (long s : S) {
    const long u = cone::disentangler_of(s, M);
    A.insert(2 * u + 1);
    A.insert(wrap(2 * u + 2, n));
  }
  for (long j : Y) {
    const bool k0 = A.count(2 * j) > 0, k1 = A.count(2 * j + 1) > 0;
    std::vector<long> out;
    if (k0) out.push_back(2 * j);
    if (k1) out.push_back(2 * j + 1);
    cur = apply(cur, {-1 - j}, out, std::vector<int>(out.size(), d),
                two_output_kernel(t.w(j), t.K, d, k0, k1));
  }
  // Stage 2: disentanglers. Labels: a-site i -> i; x-site s -> -1 - s.
  const std::set<long> X(S.begin(), S.end());
  std::set<long> U;
  for (long s : S) U.insert(cone::disentangler_of(s, M));
  for (long u : U) {
    const long x0 = 2 * u + 1, x1 = wrap(2 * u + 2, n);
    const bool k0 = X.count(x0) > 0, k1 = X.count(x1) > 0;
    std::vector<long> out;
    if (k0) out.push_back(-1 - x0);
    if (k1) out.push_back(-1 - x1);
    cur = apply(cur, {x0, x1}, out, std::vector<int>(out.size(), d),
                two_output_kernel(t.u(u), d * d, d, k0, k1));
  }
  for (auto& l : cur.labels) l = -1 - l;
  return cur;
}

}  // namespace

std::vector<long> cone_parents(const Geometry& g, int layer, const std::vector<long>& sites) {
  const long M = g.sites_at(layer + 1), n = 2 * M;
  std::set<long> Y;
  for (long s : sites) {
    const long u = cone::disentangler_of(s, M);
    Y.insert((2 * u + 1) / 2);
    Y.insert(wrap(2 * u + 2, n) / 2);
  }
  return {Y.begin(), Y.end()};
}

double SiteMarginal::at(const std::vector<int>& values) const {
  std::size_t idx = 0;
  for (std::size_t k = 0; k < values.size(); ++k) idx = idx * dims[k] + values[k];
  return p[idx];
}

SiteMarginal SiteMarginal::restrict_to(const std::vector<long>& keep) const {
  LabeledTensor t{sites, dims, p};
  LabeledTensor cur = t;
  // Sum out every site not kept, then order as requested.
  for (long s : sites)
    if (std::find(keep.begin(), keep.end(), s) == keep.end())
      cur = apply(cur, {s}, {}, {}, std::vector<double>(dims[t.position(s)], 1.0));
  SiteMarginal r;
  r.sites = keep;
  for (long s : keep) r.dims.push_back(cur.dims[cur.position(s)]);
  r.p.assign(cur.data.size(), 0.0);
  std::vector<int> digits;
  for (std::size_t flat = 0; flat < cur.data.size(); ++flat) {
    decode(flat, cur.dims, digits);
    std::size_t idx = 0;
    for (std::size_t k = 0; k < keep.size(); ++k)
      idx = idx * r.dims[k] + digits[cur.position(keep[k])];
    r.p[idx] = cur.data[flat];
  }
  return r;
}

SiteMarginal site_marginal(const Model& model, int layer, const std::vector<long>& sites) {
  const long n = model.geometry.sites_at(layer);
  std::vector<long> wrapped;
  for (long s : sites) wrapped.push_back(wrap(s, n));
  std::vector<long> sorted = wrapped;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw Error(fmt::format("site_marginal: sites must be distinct modulo {}", n));
  const LabeledTensor t = descend(model, layer, sorted);
  const SiteMarginal m{t.labels, t.dims, t.data};
  return m.restrict_to(wrapped);
}

}  // namespace cmera
