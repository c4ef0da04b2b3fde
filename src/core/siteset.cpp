// General cones (siteset.hpp): labelled dense tensors and one operation, "replace these
// modes by those through a conditional table", plus its adjoint. Labels name a variable
// by (layer, kind, site) so one tensor can hold coarse and fine variables mid-layer.
// Trade-off: an op is a small-by-long matrix product (line_product.hpp) on the input read
// with its consumed modes first, so each op pays one permuting copy (a loop nest over runs
// of modes that stay adjacent) for products with their sums in registers; an odometer
// over every entry with the product inside it ran at a third of the speed (the pair
// terms' joints, measured in bench_pairs). Checked against brute-force enumeration
// (tests/test_marginals.cpp).
#include "cmera/siteset.hpp"

#include <algorithm>
#include <array>
#include <fmt/format.h>
#include <set>

#include "cmera/error.hpp"
#include "cmera/line_product.hpp"

namespace cmera {

namespace {

// Label of variable `site` of `layer`: kind 0 = layer's sites x, kind 1 = isometry outputs a.
long label(int layer, int kind, long site) { return ((static_cast<long>(layer) * 2 + kind) << 40) + site; }
using cone::wrap;

using Tensor = ConePlan::Tensor;

std::size_t size_of(const std::vector<int>& dims) {
  std::size_t n = 1;
  for (int d : dims) n *= static_cast<std::size_t>(d);
  return n;
}

void decode(std::size_t flat, const std::vector<int>& dims, std::vector<int>& digits) {
  digits.resize(dims.size());
  for (std::size_t k = dims.size(); k-- > 0;) {
    digits[k] = static_cast<int>(flat % dims[k]);
    flat /= dims[k];
  }
}

long position(const std::vector<long>& labels, long l) {
  return static_cast<long>(std::find(labels.begin(), labels.end(), l) - labels.begin());
}

// Shape of the tensor after replacing `in` by `out` (kept modes first, then `out`).
Tensor result_shape(const Tensor& t, const std::vector<long>& in, const std::vector<long>& out,
                    int out_dim) {
  Tensor r;
  for (std::size_t k = 0; k < t.labels.size(); ++k)
    if (std::find(in.begin(), in.end(), t.labels[k]) == in.end()) {
      r.labels.push_back(t.labels[k]);
      r.dims.push_back(t.dims[k]);
    }
  for (long o : out) {
    r.labels.push_back(o);
    r.dims.push_back(out_dim);
  }
  return r;
}

// The order in which an op reads its input stage `t`: the modes `in` most significant (in
// that order), the kept modes after them in their own order: J[kept + K consumed], K the
// kept entries. Returned as a loop nest over t's modes in t's order, adjacent modes that
// stay adjacent in J merged into one run: each run's size and its stride in J.
ConePlan::Permutation consumed_first(const Tensor& t, const std::vector<long>& in) {
  const std::size_t rank = t.labels.size();
  std::vector<std::size_t> stride(rank, 0);
  std::size_t kept = 1;
  for (std::size_t k = rank; k-- > 0;)
    if (std::find(in.begin(), in.end(), t.labels[k]) == in.end()) {
      stride[k] = kept;
      kept *= static_cast<std::size_t>(t.dims[k]);
    }
  std::size_t consumed = kept;
  for (std::size_t m = in.size(); m-- > 0;) {
    const auto p = static_cast<std::size_t>(position(t.labels, in[m]));
    stride[p] = consumed;
    consumed *= static_cast<std::size_t>(t.dims[p]);
  }
  ConePlan::Permutation perm;
  for (std::size_t k = 0; k < rank; ++k) {
    const auto d = static_cast<std::size_t>(t.dims[k]);
    if (!perm.size.empty() && perm.stride.back() == stride[k] * d) {
      perm.size.back() *= d;
      perm.stride.back() = stride[k];
    } else {
      perm.size.push_back(d);
      perm.stride.push_back(stride[k]);
    }
  }
  return perm;
}

// J[permuted] = t[flat] (kToJ) or t[flat] = J[permuted], walking t in order: the last two
// runs are inner loops (one run alone is often a single mode of 2 to 4 states), an
// odometer over the other runs steps their start in J.
template <bool kToJ>
void permute(const ConePlan::Permutation& perm, std::size_t n, double* t, double* J) {
  const std::size_t runs = perm.size.size();
  const std::size_t inner = perm.size[runs - 1], step = perm.stride[runs - 1];
  const std::size_t middle = runs > 1 ? perm.size[runs - 2] : 1, middle_step = runs > 1 ? perm.stride[runs - 2] : 0;
  const std::size_t outer_runs = runs > 1 ? runs - 2 : 0;
  std::array<std::size_t, 64> digits{};
  std::size_t base = 0;
  for (std::size_t flat = 0; flat < n; flat += inner * middle) {
    double* row = t + flat;
    for (std::size_t m = 0; m < middle; ++m, row += inner) {
      double* at = J + base + m * middle_step;
      for (std::size_t i = 0; i < inner; ++i) {
        if constexpr (kToJ)
          at[i * step] = row[i];
        else
          row[i] = at[i * step];
      }
    }
    for (std::size_t k = outer_runs; k-- > 0;) {
      if (++digits[k] < perm.size[k]) {
        base += perm.stride[k];
        break;
      }
      digits[k] = 0;
      base -= perm.stride[k] * (perm.size[k] - 1);
    }
  }
}

// Calls f(flat, idx) for the entries flat in [begin, end) of a table over `n` sites of
// alphabet K, idx the entry's index in the marginal on `sites`: an odometer over the
// sites steps idx, the last site in an inner loop, so a pass costs no division per entry.
template <class F>
void for_each_entry_of(int alphabet, long sites_in_table, const std::vector<long>& sites,
                       std::size_t begin, std::size_t end, F&& f) {
  const auto n = static_cast<std::size_t>(sites_in_table);
  const auto K = static_cast<std::size_t>(alphabet);
  std::vector<std::size_t> step(n, 0);
  std::size_t st = 1;
  for (std::size_t k = sites.size(); k-- > 0;) {
    step[static_cast<std::size_t>(sites[k])] = st;
    st *= K;
  }
  std::vector<std::size_t> digits(n);
  std::size_t idx = 0, rest = begin / K * K;
  for (std::size_t s = n; s-- > 0;) {
    digits[s] = rest % K;
    rest /= K;
    idx += digits[s] * step[s];
  }
  const std::size_t last = step[n - 1];
  for (std::size_t flat = begin / K * K; flat < end; flat += K) {
    for (std::size_t v = 0; v < K; ++v)
      if (flat + v >= begin && flat + v < end) f(flat + v, idx + v * last);
    for (std::size_t s = n - 1; s-- > 0;) {
      if (++digits[s] < K) {
        idx += step[s];
        break;
      }
      digits[s] = 0;
      idx -= step[s] * (K - 1);
    }
  }
}

}  // namespace

std::uint64_t& work_count() {
  thread_local std::uint64_t count = 0;
  return count;
}

void table_marginal(int K, long n, const std::vector<long>& sites, const double* table, double* out) {
  std::size_t size = 1, out_size = 1;
  for (long k = 0; k < n; ++k) size *= static_cast<std::size_t>(K);
  for (std::size_t k = 0; k < sites.size(); ++k) out_size *= static_cast<std::size_t>(K);
  std::fill_n(out, out_size, 0.0);
  for_each_entry_of(K, n, sites, 0, size, [&](std::size_t flat, std::size_t idx) { out[idx] += table[flat]; });
  work_count() += size;
}

void table_marginal_adjoint(int K, long n, const std::vector<long>& sites, const double* gm,
                            double* g_table, std::size_t begin, std::size_t end) {
  for_each_entry_of(K, n, sites, begin, end, [&](std::size_t flat, std::size_t idx) { g_table[flat] += gm[idx]; });
  work_count() += end - begin;
}

std::vector<long> cone_parents(const Geometry& g, int layer, const std::vector<long>& sites) {
  const long M = g.sites_at(layer + 1), n = 2 * M;
  std::vector<long> Y;  // sorted and unique below (a std::set allocated per element)
  Y.reserve(2 * sites.size());
  for (long s : sites) {
    const long u = cone::disentangler_of(s, M);
    Y.push_back((2 * u + 1) / 2);
    Y.push_back(wrap(2 * u + 2, n) / 2);
  }
  std::sort(Y.begin(), Y.end());
  Y.erase(std::unique(Y.begin(), Y.end()), Y.end());
  return Y;
}

ConePlan::ConePlan(const Geometry& g, int layer, const std::vector<long>& sites, int from)
    : geometry_(g), tables_read_(static_cast<std::size_t>(g.depth())), from_(from < 0 ? g.depth() : from) {
  if (from_ < layer || from_ > g.depth())
    throw Error(fmt::format("cone: start layer {} outside {}..{}", from_, layer, g.depth()));
  const long n0 = g.sites_at(layer);
  for (long s : sites) sites_.push_back(wrap(s, n0));
  std::vector<long> sorted = sites_;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw Error(fmt::format("cone: sites must be distinct modulo {}", n0));

  // Site sets from `layer` up to the top.
  std::vector<std::vector<long>> sets(static_cast<std::size_t>(g.depth() + 1));
  sets[layer] = sorted;
  for (int l = layer; l < from_; ++l) sets[l + 1] = cone_parents(g, l, sets[l]);
  top_labels_ = sets[from_];

  for (int l = from_ - 1; l >= layer; --l) {
    const long M = g.sites_at(l + 1), n = 2 * M;
    const std::set<long> X(sets[l].begin(), sets[l].end());
    std::set<long> A, U;
    for (long s : X) {
      const long u = cone::disentangler_of(s, M);
      U.insert(u);
      A.insert(2 * u + 1);
      A.insert(wrap(2 * u + 2, n));
    }
    // Each disentangler right after the isometries that feed it: the tensor then holds
    // at most one layer's worth of sites plus two extra modes, instead of every
    // isometry output of the layer at once (chi^7 instead of chi^8 for a pair cone).
    std::set<long> applied;
    auto isometry = [&](long j) {
      if (!applied.insert(j).second) return;
      Op op{l, false, j, A.count(2 * j) > 0, A.count(2 * j + 1) > 0, {label(l + 1, 0, j)}, {}, {}, {}};
      if (op.keep0) op.out.push_back(label(l, 1, 2 * j));
      if (op.keep1) op.out.push_back(label(l, 1, 2 * j + 1));
      ops_.push_back(op);
    };
    for (long u : U) {
      const long x0 = 2 * u + 1, x1 = wrap(2 * u + 2, n);
      isometry(x0 / 2);
      isometry(x1 / 2);
      Op op{l, true, u, X.count(x0) > 0, X.count(x1) > 0, {label(l, 1, x0), label(l, 1, x1)}, {}, {}, {}};
      if (op.keep0) op.out.push_back(label(l, 0, x0));
      if (op.keep1) op.out.push_back(label(l, 0, x1));
      ops_.push_back(op);
    }
    tables_read_[l] = sets[l + 1];
    for (long u : U)
      if (!std::binary_search(tables_read_[l].begin(), tables_read_[l].end(), u))
        tables_read_[l].insert(std::upper_bound(tables_read_[l].begin(), tables_read_[l].end(), u), u);
  }
  // Shapes of every stage, then where each requested site ends up.
  stages_.resize(ops_.size() + 1);
  for (long s : top_labels_) {
    stages_[0].labels.push_back(label(from_, 0, s));
    stages_[0].dims.push_back(g.chi[from_]);
  }
  for (std::size_t k = 0; k < ops_.size(); ++k) {
    stages_[k + 1] = result_shape(stages_[k], ops_[k].in, ops_[k].out, g.chi[ops_[k].layer]);
    ops_[k].order = consumed_first(stages_[k], ops_[k].in);
    ops_[k].in_size = 1;
    for (long c : ops_[k].in) ops_[k].in_size *= static_cast<std::size_t>(stages_[k].dims[position(stages_[k].labels, c)]);
    ops_[k].in_leads = std::equal(ops_[k].in.begin(), ops_[k].in.end(), stages_[k].labels.begin());
    ops_[k].out_size = 1;
    for (std::size_t m = 0; m < ops_[k].out.size(); ++m) ops_[k].out_size *= static_cast<std::size_t>(g.chi[ops_[k].layer]);
    const std::size_t d = static_cast<std::size_t>(g.chi[ops_[k].layer]);
    const std::size_t rows = ops_[k].disentangler ? d * d : static_cast<std::size_t>(g.chi[ops_[k].layer + 1]);
    ops_[k].grad_at = op_grad_size_;
    op_grad_size_ += rows * ops_[k].out_size;
    work_ += size_of(stages_[k].dims) * ops_[k].out_size;  // kept x consumed x produced
  }
  // Where each entry of the final tensor goes in the requested site order.
  std::vector<long> order;
  for (long s : sites_) order.push_back(position(stages_.back().labels, label(layer, 0, s)));
  const Tensor& last = stages_.back();
  output_index_.resize(size_of(last.dims));
  std::vector<int> digits;
  for (std::size_t flat = 0; flat < output_index_.size(); ++flat) {
    decode(flat, last.dims, digits);
    std::size_t idx = 0;
    for (long p : order) idx = idx * last.dims[p] + digits[p];
    output_index_[flat] = idx;
  }
}

void ConePlan::to_consumed_first(Tensor& t, const Op& op) {
  if (op.in_leads) return;
  leading_.resize(t.data.size());
  permute<true>(op.order, t.data.size(), t.data.data(), leading_.data());
  std::swap(t.data, leading_);
}

const double* ConePlan::kernel(const Model& m, const Op& op) {
  const LayerTables& t = m.tables.layers[op.layer];
  const int d = t.d, rows = op.disentangler ? d * d : t.K;
  const double* table = op.disentangler ? t.u(op.table) : t.w(op.table);
  if (op.keep0 && op.keep1) return table;  // the conditional itself, no copy
  const int o0 = op.keep0 ? d : 1, o1 = op.keep1 ? d : 1;
  kernel_.assign(static_cast<std::size_t>(rows) * o0 * o1, 0.0);
  for (int r = 0; r < rows; ++r)
    for (int x0 = 0; x0 < d; ++x0)
      for (int x1 = 0; x1 < d; ++x1)
        kernel_[(r * o0 + (op.keep0 ? x0 : 0)) * o1 + (op.keep1 ? x1 : 0)] += table[(r * d + x0) * d + x1];
  return kernel_.data();
}

const std::vector<double>& ConePlan::forward(const Model& model) {
  if (from_ != geometry_.depth()) throw Error("cone: a plan from below the top needs its start marginal");
  Tensor& top = stages_[0];
  top.data.resize(size_of(top.dims));
  table_marginal(geometry_.chi.back(), geometry_.top_sites(), top_labels_, model.tables.top.data(),
                 top.data.data());
  return descend(model);
}

const std::vector<double>& ConePlan::forward(const Model& model, const double* top) {
  stages_[0].data.assign(top, top + size_of(stages_[0].dims));
  return descend(model);
}

const std::vector<double>& ConePlan::descend(const Model& model) {
  // Every stage an op reads is kept consumed-first (what its product reads, and what the
  // reverse pass reads again); the last stage stays as produced.
  if (!ops_.empty()) to_consumed_first(stages_[0], ops_[0]);
  for (std::size_t k = 0; k < ops_.size(); ++k) {
    const Op& op = ops_[k];
    const Tensor& in = stages_[k];
    Tensor& out = stages_[k + 1];
    const long consumed = static_cast<long>(op.in_size), kept = static_cast<long>(in.data.size() / op.in_size);
    out.data.resize(size_of(out.dims));
    line_apply(static_cast<long>(op.out_size), consumed, kept, kernel(model, op), in.data.data(), out.data.data());
    if (k + 1 < ops_.size()) to_consumed_first(out, ops_[k + 1]);
  }
// Final tensor -> requested site order.
  const Tensor& last = stages_.back();
  result_.resize(last.data.size());
  for (std::size_t flat = 0; flat < last.data.size(); ++flat) result_[output_index_[flat]] = last.data[flat];
  return result_;
}

void ConePlan::backward(const Model& model, const std::vector<double>& g, Tables& grad) {
  if (from_ != geometry_.depth()) throw Error("cone: a plan from below the top has no top table gradient");
  backward_local(model, g);
  add_gradient(grad);
  table_marginal_adjoint(geometry_.chi.back(), geometry_.top_sites(), top_labels_, top_grad_.data(),
                         grad.top.data(), 0, geometry_.top_size());
}

void ConePlan::backward_local(const Model& model, const std::vector<double>& g, bool accumulate) {
  reverse(model, g, accumulate ? TableGradients::kAdd : TableGradients::kWrite);
}

const std::vector<double>& ConePlan::start_adjoint(const Model& model, const std::vector<double>& g) {
  reverse(model, g, TableGradients::kNone);
  return top_grad_;
}

void ConePlan::reverse(const Model& model, const std::vector<double>& g, TableGradients tables) {
  grad_out_.resize(g.size());  // the adjoint of the stage after the op at hand
  for (std::size_t flat = 0; flat < g.size(); ++flat) grad_out_[flat] = g[output_index_[flat]];
  if (tables == TableGradients::kWrite) op_grad_.assign(op_grad_size_, 0.0);
  for (std::size_t k = ops_.size(); k-- > 0;) {
    const Op& op = ops_[k];
    const Tensor& in = stages_[k];
    const std::size_t in_size = size_of(in.dims);
    const long produced = static_cast<long>(op.out_size), consumed = static_cast<long>(op.in_size);
    const long kept = static_cast<long>(in_size / op.in_size);
    const double* kern = kernel(model, op);
    if (tables != TableGradients::kNone)
      line_apply_adjoint_map(produced, consumed, kept, grad_out_.data(), in.data.data(),
                             op_grad_.data() + op.grad_at, tables == TableGradients::kAdd);
    // The input's adjoint comes out consumed-leading; back to the stage's own order.
    grad_in_.resize(in_size);
    if (op.in_leads) {
      line_apply_adjoint_joint(produced, consumed, kept, kern, grad_out_.data(), grad_in_.data(), false);
    } else {
      leading_.resize(in_size);
      line_apply_adjoint_joint(produced, consumed, kept, kern, grad_out_.data(), leading_.data(), false);
      permute<false>(op.order, in_size, grad_in_.data(), leading_.data());
    }
    std::swap(grad_out_, grad_in_);
  }
  top_grad_.swap(grad_out_);
}

void ConePlan::add_gradient(Tables& grad, int part, int parts) {
  for (std::size_t k = ops_.size(); k-- > 0;) {
    const Op& op = ops_[k];
    const int d = geometry_.chi[op.layer];
    const int rows = op.disentangler ? d * d : grad.layers[op.layer].K;
    const double* g_kernel = op_grad_.data() + op.grad_at;
    // Kernel entries were sums over dropped outputs: their gradient reaches each term.
    LayerTables& gt = grad.layers[op.layer];
    double* table = op.disentangler ? gt.u(op.table) : gt.w(op.table);
    const int o0 = op.keep0 ? d : 1, o1 = op.keep1 ? d : 1;
    for (int r = rows * part / parts; r < rows * (part + 1) / parts; ++r)
      for (int x0 = 0; x0 < d; ++x0)
        for (int x1 = 0; x1 < d; ++x1)
          table[(r * d + x0) * d + x1] += g_kernel[(r * o0 + (op.keep0 ? x0 : 0)) * o1 + (op.keep1 ? x1 : 0)];
  }
}

double SiteMarginal::at(const std::vector<int>& values) const {
  std::size_t idx = 0;
  for (std::size_t k = 0; k < values.size(); ++k) idx = idx * dims[k] + values[k];
  return p[idx];
}

SiteMarginal site_marginal(const Model& model, int layer, const std::vector<long>& sites) {
  ConePlan plan(model.geometry, layer, sites);
  SiteMarginal m;
  m.sites = plan.sites();
  m.dims.assign(sites.size(), model.geometry.chi[layer]);
  m.p = plan.forward(model);
  return m;
}

}  // namespace cmera
