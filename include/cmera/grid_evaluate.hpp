// Evaluation of a grid model against [S, Ly, Lx] data (docs/design-grid.md §5
// "Evaluation", the chain's docs/design.md §6 carried to 3 x 3 windows): window KL and
// cross entropy per window, the pooled (translation-averaged) window KL, the data's own
// sampling floor of both, measured by splitting the samples in two halves; the data's
// C(r) along x, y and the diagonal beside the model's (supplied by the caller); the
// learned flow per layer and, for tied models, the scaling spectrum of the 2D ascending
// map on 3 x 3 windows.
//
// Trade-off: ranks split the samples and every rank holds the histograms of every window
// (two halves, 2 Lx Ly chi_0^9 doubles: 32 MiB at 64 x 64, chi_0 = 2) and every window
// marginal of every layer, summed over ranks once; this needs only whole-sample reads and
// no decomposition of the lattice, at the price of memory that does not shrink with the
// rank count (checked before the pass).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/evaluate.hpp"
#include "cmera/grid.hpp"
#include "cmera/grid_kernels.hpp"
#include "cmera/io.hpp"

namespace cmera {

// The model's exact <s_i s_{i + k (dx, dy)}> averaged over bottom sites i, k =
// 1..max_steps (s as in spin_value), given its window marginals. The grid pair marginals
// provide it (grid::model_correlation); evaluate_grid only calls it, once per direction,
// on every rank.
using GridModelCorrelation = std::function<std::vector<double>(
    const GridModel&, const grid::GridWindowMarginals&, long dx, long dy, long max_steps)>;

struct CorrelationCurve {
  std::vector<long> r;
  std::vector<double> model, data;
};

struct GridEvaluation {
  // Means over the Lx Ly window positions w of KL(q_w || p_w), -sum q_w log p_w and
  // -sum q_w log q_w (nats); q_w the data's histogram of the window at w, p_w the model's.
  double kl_per_window = 0;
  double cross_entropy_per_window = 0;
  double data_entropy_per_window = 0;
  // KL(mean_w q_w || mean_w p_w): the window statistics up to translations.
  double kl_pooled_window = 0;
  // Sampling floor of the two KL figures: the data split into samples of even and odd
  // index (halves A, B, of n_A and n_B samples), F = n_A n_B / (2 S^2) sum_x (q_A(x) -
  // q_B(x))^2 / q(x) = X^2 / (2 S), X^2 the two-sample Pearson statistic of the halves.
  // For data drawn from one distribution E[X^2] = k - 1 (k cells of nonzero
  // probability), so E[F] = (k - 1) / (2 S), the leading order of E[KL(q || p)] that
  // sampling alone gives a perfect model (511 / (2 S) for one binary window). Averaged
  // over windows (per_window) and for the pooled histograms (pooled). NaN for S < 2.
  double kl_floor_per_window = 0;
  double kl_floor_pooled = 0;
  CorrelationCurve corr_x, corr_y, corr_diag;  // steps (1, 0), (0, 1), (1, 1)
};

// Collective. max_distance: largest r along every direction (< min(Lx, Ly)); 0 takes
// Lx / 2 along x, Ly / 2 along y and min(Lx, Ly) / 2 along the diagonal. The data are
// read once, ranks splitting the samples in blocks of chunk_samples; the result agrees
// across rank and thread counts to rounding (integer counts and C(r) sums are exact).
GridEvaluation evaluate_grid(const Comm& comm, const GridModel& model, const DatasetReader& data,
                             long max_distance, long chunk_samples,
                             const GridModelCorrelation& model_correlation);
// The same with the model's window marginals (GridWindowMarginals::forward) computed by the
// caller, who may use them again (grid_layer_flow).
GridEvaluation evaluate_grid(const Comm& comm, const GridModel& model,
                             const grid::GridWindowMarginals& windows, const DatasetReader& data,
                             long max_distance, long chunk_samples,
                             const GridModelCorrelation& model_correlation);

// The learned flow at one layer, from the exact 3 x 3 window marginals (position
// averages over the layer's windows): the single-site marginal [chi_l], <s> (spin_value),
// nearest-neighbour <s s'> along x, y and the diagonal, and the mean mutual information
// I(x_i; x_{i + e}) along x and y (nats), the chain's LayerFlow per axis.
struct GridLayerFlow {
  int layer = 0;
  std::vector<double> marginal;
  double magnetization = 0;
  double nn_corr_x = 0, nn_corr_y = 0, nn_corr_diag = 0;
  double mutual_information_x = 0, mutual_information_y = 0;
};
// Layers 0..depth. Not collective: every rank computes the same result.
std::vector<GridLayerFlow> grid_layer_flow(const GridModel& model);
std::vector<GridLayerFlow> grid_layer_flow(const GridModel& model, const grid::GridWindowMarginals& windows);

// How the eigenvalues are found: by subspace iteration, falling back to dense (Eigen)
// where it has not converged within kAutoIterations and the map has at most kDenseLimit
// rows (a dense solve of 512 rows took 0.2 s, the iteration 0.016 s); or forced either
// way (tests compare both).
enum class EigenMethod { kAuto, kDense, kIterative };
constexpr long kDenseLimit = 4096;
constexpr int kAutoIterations = 2000;

// Tied models only (cmera::Error otherwise). D_l maps a 3 x 3 window density of layer
// l+1 (chi_{l+1}^9) to the mean of its four children at layer l (x and y parities), the
// chain's definition (docs/design.md §6) carried to 3 x 3 windows; per square layer
// (chi_l = chi_{l+1}) the `count` eigenvalues largest in magnitude, and those of the
// composition of the top-most run of square layers as per-layer factors. Collective: the
// maps are dealt to the ranks in turn, each solved by one rank and broadcast (a dense
// solve of 512 rows takes about a second: solving every map on every rank cost their sum
// on each); the result does not depend on the rank count.
ScalingSpectra grid_scaling_dimensions(const Comm& comm, const GridModel& model, int count,
                                       EigenMethod how = EigenMethod::kAuto,
                                       int auto_iterations = kAutoIterations);

// The eval JSON object: the chain's keys where they apply (kl_per_window,
// cross_entropy_per_window, data_entropy_per_window, flow, scaling), plus corr_x, corr_y,
// corr_diag ({"r", "model", "data"}), kl_pooled_window and kl_floor ({"per_window",
// "pooled"}). scaling is written when `scaling` is given (tied models). The caller adds
// "model" and "data" (the file names), as the chain's eval does.
nlohmann::json grid_evaluation_json(const GridEvaluation& ev, const std::vector<GridLayerFlow>& flow,
                                    const ScalingSpectra* scaling);
// {"layers", "lambda", "phase", "delta", "per_layer": [...]}, the chain's "scaling" object.
nlohmann::json scaling_json(const ScalingSpectra& s);

}  // namespace cmera
