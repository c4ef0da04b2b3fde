// EM and Adam updates over normalized rows (optimizer.hpp).
// EM: t(o|c) <- (t(o|c) * counts_scale * dL/dt(o|c) + alpha) / sum_o'(...), the posterior
// expected counts of a Bayesian-network marginal plus a Dirichlet pseudocount.
// Adam: the rows are softmax(theta); dL/dtheta = t * (g - <g>_t) and Adam ascends it.
// Logits are kept in the optimizer (not re-derived from t) so that the state written
// to a checkpoint is exactly what the next step uses.
#include "cmera/optimizer.hpp"

#include <cmath>

namespace cmera {

std::vector<RowRef> rows_in_scope(const Tables& shape, const UpdateScope& scope) {
  std::vector<RowRef> rows;
  for (std::size_t l = 0; l < shape.layers.size(); ++l) {
    const LayerTables& t = shape.layers[l];
    const std::size_t row = static_cast<std::size_t>(t.d) * t.d;
    const long first = t.tied ? 0 : scope.first[l];
    const long count = t.tied ? 1 : scope.count[l];
    for (long j = first; j < first + count; ++j) {
      for (int y = 0; y < t.K; ++y)
        rows.push_back({static_cast<int>(l), false, j * t.w_size() + y * row, row});
      for (std::size_t in = 0; in < row; ++in)
        rows.push_back({static_cast<int>(l), true, j * t.u_size() + in * row, row});
    }
  }
  rows.push_back({-1, false, 0, shape.top.size()});
  return rows;
}

double* row_data(Tables& t, const RowRef& r) {
  if (r.layer < 0) return t.top.data() + r.offset;
  auto& l = t.layers[r.layer];
  return (r.disentangler ? l.U.data() : l.W.data()) + r.offset;
}

const double* row_data(const Tables& t, const RowRef& r) {
  return row_data(const_cast<Tables&>(t), r);
}

namespace {

class Em final : public Optimizer {
 public:
  explicit Em(const EmSettings& s) : s_(s) {}
  std::string name() const override { return "em"; }
  void step(Model& model, const Tables& grad, const UpdateScope& scope) override {
    const auto rows = rows_in_scope(model.tables, scope);
#pragma omp parallel for schedule(static)
    for (std::size_t r = 0; r < rows.size(); ++r) {
      double* t = row_data(model.tables, rows[r]);
      const double* g = row_data(grad, rows[r]);
      double norm = 0;
      for (std::size_t i = 0; i < rows[r].length; ++i)
        norm += t[i] * s_.counts_scale * g[i] + s_.pseudocount;
      // A row no data reaches (zero expected counts, alpha = 0) keeps its old values.
      if (norm <= 0) continue;
      for (std::size_t i = 0; i < rows[r].length; ++i)
        t[i] = (t[i] * s_.counts_scale * g[i] + s_.pseudocount) / norm;
    }
  }

 private:
  EmSettings s_;
};

class Adam final : public Optimizer {
 public:
  Adam(const AdamSettings& s, const Model& model)
      : s_(s), theta_(model.tables), m_(Tables::zeros_like(model.tables)),
        v_(Tables::zeros_like(model.tables)), t_(Tables::zeros_like(model.tables)) {
    auto logit = [](std::vector<double>& v) {
      for (double& x : v) x = std::log(std::max(x, 1e-300));
    };
    for (auto& l : theta_.layers) { logit(l.W); logit(l.U); }
    logit(theta_.top);
  }
  std::string name() const override { return "adam"; }
  std::vector<const Tables*> state() const override { return {&theta_, &m_, &v_, &t_}; }
  std::vector<Tables*> mutable_state() override { return {&theta_, &m_, &v_, &t_}; }

  void step(Model& model, const Tables& grad, const UpdateScope& scope) override {
    const auto rows = rows_in_scope(model.tables, scope);
#pragma omp parallel for schedule(static)
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const RowRef& ref = rows[r];
      double* p = row_data(model.tables, ref);
      const double* g = row_data(grad, ref);
      double* th = row_data(theta_, ref);
      double* m = row_data(m_, ref);
      double* v = row_data(v_, ref);
      // Step counter per row (first entry of the row in t_), so that rows owned by
      // different ranks at different times still get correct bias correction.
      double& steps = row_data(t_, ref)[0];
      steps += 1;
      const double c1 = 1 - std::pow(s_.beta1, steps), c2 = 1 - std::pow(s_.beta2, steps);
      const double rate = s_.decay_steps > 0
                              ? s_.learning_rate / std::sqrt(1 + (steps - 1) / s_.decay_steps)
                              : s_.learning_rate;
      double mean = 0;
      for (std::size_t i = 0; i < ref.length; ++i) mean += p[i] * g[i];
      double top = -1e300;
      for (std::size_t i = 0; i < ref.length; ++i) {
        const double gt = p[i] * (g[i] - mean);
        m[i] = s_.beta1 * m[i] + (1 - s_.beta1) * gt;
        v[i] = s_.beta2 * v[i] + (1 - s_.beta2) * gt * gt;
        th[i] += rate * (m[i] / c1) / (std::sqrt(v[i] / c2) + s_.epsilon);
        top = std::max(top, th[i]);
      }
      double norm = 0;
      for (std::size_t i = 0; i < ref.length; ++i) {
        th[i] -= top;  // keep logits bounded; softmax is shift invariant
        p[i] = std::exp(th[i]);
        norm += p[i];
      }
      for (std::size_t i = 0; i < ref.length; ++i) p[i] /= norm;
    }
  }

 private:
  AdamSettings s_;
  Tables theta_, m_, v_, t_;
};

}  // namespace

std::unique_ptr<Optimizer> make_em(const EmSettings& s) { return std::make_unique<Em>(s); }
std::unique_ptr<Optimizer> make_adam(const AdamSettings& s, const Model& model) {
  return std::make_unique<Adam>(s, model);
}

}  // namespace cmera
