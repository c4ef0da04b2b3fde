// Reference path and general cones: the exact marginal of ANY set of sites at any layer,
// by the cone rule of docs/design.md §2 (parents of a set = inputs of the isometries feeding the
// disentanglers touching it), and its adjoint. A ConePlan records, once per site set,
// the sequence "top marginal, then per layer: isometries, disentanglers" on labelled
// dense tensors; forward() contracts it, backward() runs it in reverse and adds dL/dtable.
// Generic tensor code: it is the truth the fast window kernels are tested against (and is
// itself tested against brute-force enumeration), and it serves pairs at any distance
// (multiscale terms, correlation functions), where no hand-written kernel exists. Each op
// is one small-by-long matrix product (line_product.hpp) on its input read consumed modes
// first.
// The top marginal can be supplied from outside and the reverse pass can stop short of
// the tables (backward_local, then add_gradient): many plans share one top site set, and
// marginalizing the whole top table once per plan is what made the pair terms' cost
// explode with the top's size; the split also lets plans run their reverse passes on
// threads and add into the shared tables afterwards, in a fixed order.
#pragma once
#include <cstdint>
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
  // Plan for the marginal of `sites` (distinct mod N_layer, any order) at `layer`,
  // starting from the marginal of their cone at layer `from` (layer <= from <= depth;
  // -1: the top, whose marginal forward(model) takes from the top table itself).
  ConePlan(const Geometry& g, int layer, const std::vector<long>& sites, int from = -1);

  // Exact marginal over the plan's sites in the requested order.
  const std::vector<double>& forward(const Model& model);
  // The same from the marginal at the start layer on top_sites() (row-major in that
  // order), e.g. one shared by several plans (table_marginal() below, or another plan's).
  const std::vector<double>& forward(const Model& model, const double* top);
  const std::vector<double>& marginal() const { return result_; }  // last forward()
  // After forward(): adds d/dtheta of sum_x g[x] * p[x] to grad (same shape as tables).
  void backward(const Model& model, const std::vector<double>& g, Tables& grad);
  // backward() in two steps: backward_local touches only the plan (safe on threads, one
  // plan per thread) and leaves dL/d(start marginal) in top_gradient(); add_gradient adds
  // the W/U gradients to grad in the order backward() would; with parts > 1, only block
  // `part` of `parts` equal blocks of each table's conditional rows, so that threads, each
  // taking one part and the plans in one order, fill disjoint entries in that order.
  // With `accumulate`, the W/U gradients add to those of the previous backward_local (of
  // this plan, after its own forward): add_gradient then adds their sum.
  void backward_local(const Model& model, const std::vector<double>& g, bool accumulate = false);
  void add_gradient(Tables& grad, int part = 0, int parts = 1);
  const std::vector<double>& top_gradient() const { return top_grad_; }
  // dL/d(start marginal) of L = sum_x g[x] p[x] alone, without a forward(): the plan is
  // linear in its start marginal, so this is its transpose applied to g (e.g. to pull a
  // function of the plan's sites back to its start sites once for many start marginals).
  // Leaves the W/U gradients of backward_local as they were.
  const std::vector<double>& start_adjoint(const Model& model, const std::vector<double>& g);
  // Sites (sorted) of the start layer whose marginal the plan starts from, and the layer.
  const std::vector<long>& top_sites() const { return top_labels_; }
  int start_layer() const { return from_; }
  // Coarse sites (table indices) of `layer` whose W/U this cone reads.
  const std::vector<long>& tables_read(int layer) const { return tables_read_[layer]; }
  const std::vector<long>& sites() const { return sites_; }
  // Multiply-adds of one forward() (a reverse pass with table gradients does about twice).
  std::size_t work() const { return work_; }

  struct Tensor {
    std::vector<long> labels;
    std::vector<int> dims;
    std::vector<double> data;
  };
  // How an op reads its input stage with the consumed modes first (consumed_first in
  // siteset.cpp): runs of adjacent modes in the stage's order, each run's size and stride.
  struct Permutation {
    std::vector<std::size_t> size, stride;
  };
  struct Op {
    int layer;
    bool disentangler;
    long table;                // coarse site j of W_j / U_j
    bool keep0, keep1;         // which outputs the cone keeps
    std::vector<long> in, out; // labels consumed / produced
    Permutation order;         // the input stage read consumed-first
    std::size_t in_size = 1;   // entries of the consumed modes
    bool in_leads = false;     // the consumed modes lead the input stage, in `in` order
    std::size_t out_size = 1;  // entries of the produced modes
    std::size_t grad_at = 0;   // offset of its kernel's gradient in backward_local's buffer
  };

 private:
  // The op's conditional with dropped outputs summed out: the table itself when both
  // outputs are kept, else kernel_ (scratch reused across calls).
  const double* kernel(const Model& m, const Op& op);
  // Reorders stage t's data with op's consumed modes most significant (J[kept + K
  // consumed], what the line products read), unless they already lead: t.labels and
  // t.dims keep the stage's own order, which op.order maps to this one.
  void to_consumed_first(Tensor& t, const Op& op);
  // Runs the ops on stages_[0] (the top marginal, already in place).
  const std::vector<double>& descend(const Model& model);
  // The reverse pass into top_grad_, and into op_grad_ (written, added, or not at all:
  // the W/U gradients need the forward stages, the start adjoint does not).
  enum class TableGradients { kWrite, kAdd, kNone };
  void reverse(const Model& model, const std::vector<double>& g, TableGradients tables);
  Geometry geometry_;
  std::vector<long> sites_;
  std::vector<long> top_labels_;
  std::vector<Op> ops_;
  // stages_[0]: top marginal; stages_[k+1] after ops_[k]; data of every stage but the
  // last in its op's consumed-first order (to_consumed_first).
  std::vector<Tensor> stages_;
  std::vector<std::size_t> output_index_;  // final tensor entry -> requested-order entry
  std::vector<double> result_;
  std::vector<std::vector<long>> tables_read_;
  std::size_t op_grad_size_ = 0;
  std::size_t work_ = 0;
  int from_ = 0;
  std::vector<double> kernel_, grad_in_, grad_out_, leading_;  // scratch of forward/backward
  std::vector<double> op_grad_, top_grad_;  // backward_local's results (op_grad_: per op)
};

// Marginal on `sites` (distinct indices into the table's sites; row-major in that order)
// of a dense table over n sites of alphabet K, e.g. the top table, and its adjoint
// restricted to the table entries [begin, end) so that threads can split the table:
// g_table[flat] += gm[entry of flat].
void table_marginal(int K, long n, const std::vector<long>& sites, const double* table, double* out);
void table_marginal_adjoint(int K, long n, const std::vector<long>& sites, const double* gm,
                            double* g_table, std::size_t begin, std::size_t end);

// Multiply-adds done by the calling thread in general cones, top marginals and the window
// kernels since the thread started (counted per dense stage, not per entry, so the count
// costs nothing measurable). Tests compare operation counts instead of timings.
std::uint64_t& work_count();

// Exact marginal of `sites` at `layer` (one-off plan).
SiteMarginal site_marginal(const Model& model, int layer, const std::vector<long>& sites);

// Parents at layer+1 of a site set at layer (sorted, unique): the cone rule itself.
std::vector<long> cone_parents(const Geometry& g, int layer, const std::vector<long>& sites);

}  // namespace cmera
