// Reference path and general cones: the exact marginal of ANY set of sites at any layer,
// by the cone rule of docs/design.md §2 (parents of a set = inputs of the isometries feeding the
// disentanglers touching it), and its adjoint. A ConePlan records, once per site set,
// the sequence "top marginal, then per layer: isometries, disentanglers" on labelled
// dense tensors; forward() contracts it, backward() runs it in reverse and adds dL/dtable.
// Plain generic tensor code, written for clarity: it is the truth the fast window
// kernels are tested against, and it serves pairs at any distance (multiscale terms,
// correlation functions), where no hand-written kernel exists.
#pragma once
#include <vector>

#include "cmera/model.hpp"

namespace cmera {

// Dense distribution over an ordered list of sites; row-major, sites[0] most significant.
struct SiteMarginal {
  std::vector<long> sites;
  std::vector<int> dims;
  std::vector<double> p;

  double at(const std::vector<int>& values) const;
};

class ConePlan {
 public:
  // Plan for the marginal of `sites` (distinct mod N_layer, any order) at `layer`.
  ConePlan(const Geometry& g, int layer, const std::vector<long>& sites);

  // Exact marginal over the plan's sites in the requested order.
  const std::vector<double>& forward(const Model& model);
  const std::vector<double>& marginal() const { return result_; }  // last forward()
  // After forward(): adds d/dtheta of sum_x g[x] * p[x] to grad (same shape as tables).
  void backward(const Model& model, const std::vector<double>& g, Tables& grad);
  // Coarse sites (table indices) of `layer` whose W/U this cone reads.
  const std::vector<long>& tables_read(int layer) const { return tables_read_[layer]; }
  const std::vector<long>& sites() const { return sites_; }

  struct Tensor {
    std::vector<long> labels;
    std::vector<int> dims;
    std::vector<double> data;
  };
  struct Op {
    int layer;
    bool disentangler;
    long table;                // coarse site j of W_j / U_j
    bool keep0, keep1;         // which outputs the cone keeps
    std::vector<long> in, out; // labels consumed / produced
    std::vector<std::size_t> keep_stride, in_stride;  // index maps of the input stage
    std::size_t out_size = 1;  // entries of the produced modes
  };

 private:
  // The op's conditional with dropped outputs summed out: the table itself when both
  // outputs are kept, else kernel_ (scratch reused across calls).
  const double* kernel(const Model& m, const Op& op);
  Geometry geometry_;
  std::vector<long> sites_;
  std::vector<long> top_labels_;
  std::vector<Op> ops_;
  std::vector<Tensor> stages_;       // stages_[0]: top marginal; stages_[k+1] after ops_[k]
  std::vector<std::size_t> output_index_;  // final tensor entry -> requested-order entry
  std::vector<double> result_;
  std::vector<std::vector<long>> tables_read_;
  std::vector<double> kernel_, g_kernel_, grad_in_;  // scratch of forward/backward
};

// Exact marginal of `sites` at `layer` (one-off plan).
SiteMarginal site_marginal(const Model& model, int layer, const std::vector<long>& sites);

// Parents at layer+1 of a site set at layer (sorted, unique): the cone rule itself.
std::vector<long> cone_parents(const Geometry& g, int layer, const std::vector<long>& sites);

}  // namespace cmera
