// Parameter updates on normalized conditional tables (docs/design.md §4). EM multiplies each
// entry by its gradient (posterior expected counts) plus a Dirichlet pseudocount and
// renormalizes: monotone and parameter free. Adam ascends the objective on softmax
// logits. Both touch only the rows a rank owns (its block of coarse sites for untied
// tables; everything for tied tables and the top), so the update costs O(N/P).
#pragma once
#include <memory>
#include <string>

#include "cmera/model.hpp"

namespace cmera {

// Which table slots of each layer this rank updates.
struct UpdateScope {
  std::vector<long> first;  // per layer
  std::vector<long> count;  // per layer
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // grad: gradient of the mean-per-window objective; counts_scale converts it to
  // expected counts (samples * windows) for EM's pseudocount to be in sample units.
  virtual void step(Model& model, const Tables& grad, const UpdateScope& scope) = 0;
  virtual std::string name() const = 0;
  // Optimizer state for checkpoints (empty for EM).
  virtual std::vector<const Tables*> state() const { return {}; }
  virtual std::vector<Tables*> mutable_state() { return {}; }
};

struct EmSettings {
  double pseudocount = 0.0;   // Dirichlet alpha per table entry, in counts
  double counts_scale = 1.0;  // samples * windows
};
struct AdamSettings {
  double learning_rate = 0.1;
  // Step size decays as learning_rate / sqrt(1 + t / decay_steps) (0: constant). A
  // constant rate keeps jumping out of the optimum once converged (measured on critical
  // Ising rows: KL 3e-5 -> 3e-4 spikes every few hundred iterations).
  double decay_steps = 200;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
};

std::unique_ptr<Optimizer> make_em(const EmSettings& s);
std::unique_ptr<Optimizer> make_adam(const AdamSettings& s, const Model& model);

// One normalized conditional: `length` entries at `offset` of a layer's W or U array,
// or of the top table (layer == -1). Any Tables of the model's shape can be indexed
// by it, so optimizers walk parameters, gradients and moments in step.
struct RowRef {
  int layer;
  bool disentangler;
  std::size_t offset;
  std::size_t length;
};
std::vector<RowRef> rows_in_scope(const Tables& shape, const UpdateScope& scope);
double* row_data(Tables& t, const RowRef& r);
const double* row_data(const Tables& t, const RowRef& r);

}  // namespace cmera
