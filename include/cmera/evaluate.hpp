// Evaluation of a trained model against data (docs/design.md §6): window KL and cross entropy
// (exact model marginals, empirical data marginals) and the two-point function of model
// (exact, from pair cones) and data, r = 1..R. Model-only diagnostics of the learned
// RG flow: the coarse variables' marginals and neighbour mutual information per layer,
// and for tied models the spectrum of the ascending map (scaling dimensions).
#pragma once
#include <complex>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/io.hpp"
#include "cmera/model.hpp"

namespace cmera {

struct Evaluation {
  double kl_per_window = 0;
  double cross_entropy_per_window = 0;
  double data_entropy_per_window = 0;
  std::vector<long> r;
  std::vector<double> corr_model;
  std::vector<double> corr_data;
};

Evaluation evaluate(const Comm& comm, const Model& model, const DatasetReader& data,
                    long max_distance, long chunk_samples);

// The learned flow at one layer: position-averaged single-site marginal of the layer's
// variables, and the mean over i of the mutual information I(x_i; x_i+1) (nats), both
// exact (general cones at that layer).
struct LayerFlow {
  int layer = 0;
  std::vector<double> marginal;  // [chi_layer]
  double mutual_information = 0;
};
// Layers 0..depth. Not collective: every rank computes the same (small) result.
std::vector<LayerFlow> layer_flow(const Model& model);

// Eigenvalues of an ascending map on functions of 3 consecutive sites, sorted by
// decreasing magnitude; lambda_0 = 1 is normalization. delta = -log2 |lambda|.
struct Spectrum {
  std::vector<int> layers;       // layers whose maps were composed
  std::vector<double> magnitude; // |lambda| (per layer of the composition, see below)
  std::vector<double> phase;     // arg(lambda) (per layer), radians
  std::vector<double> delta;
};
struct ScalingSpectra {
  std::vector<Spectrum> per_layer;  // one per layer l whose map is square (chi_l = chi_l+1)
  // The composition D_l0 ... D_{T-1} of the top-most run of square layers, with
  // |lambda| = |mu|^(1/n) and arg = arg(mu)/n: the geometric mean over those layers.
  Spectrum averaged;
};
// Spectrum of a composition of `layers.size()` layers from its eigenvalues mu: the
// `count` largest in magnitude, as per-layer factors |mu|^(1/n), arg(mu)/n (shared by the
// chain's and the grid's spectra, docs/design.md §6).
Spectrum spectrum_from_eigenvalues(std::vector<std::complex<double>> mu, std::vector<int> layers,
                                   int count);
// Tied models only (cmera::Error otherwise). D_l is the map of layer l on 3-site window
// densities, averaged over the two children (even and odd fine windows) of a coarse
// window; its adjoint ascends functions, with the same eigenvalues. A single layer's
// spectrum assumes layer l+1's values mean what layer l's do (the decimation start
// sets that; relabeling one layer's values changes the neighbouring single-layer
// spectra, not the composition's interior). `count` eigenvalues are kept (<= chi^3).
ScalingSpectra scaling_dimensions(const Model& model, int count);

}  // namespace cmera
