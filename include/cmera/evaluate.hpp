// Evaluation of a trained model against data (DESIGN §6): window KL and cross entropy
// (exact model marginals, empirical data marginals) and the two-point function of model
// (exact, from pair cones) and data, r = 1..R.
#pragma once
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

// Model's <s_i s_{i+r}> averaged over i, for r = 1..max_distance (collective).
std::vector<double> model_correlation(const Comm& comm, const Model& model, long max_distance);

}  // namespace cmera
