// `cmera eval model.h5 --data data.h5`: KL and cross-entropy per window, exact C(r) of
// model and data, the learned flow per layer and, for tied models, the scaling spectrum;
// a table, or one JSON object with full double precision (--json). Only rank 0 prints.
// Grid models (docs/design-grid.md §5 "Evaluation") add the pooled window KL, its
// measured sampling floor and C(r) along x, y and the diagonal.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cmera/error.hpp"
#include "cmera/evaluate.hpp"
#include "cmera/grid_evaluate.hpp"
#include "cmera/grid_pairs.hpp"
#include "cmera/io.hpp"
#include "commands.hpp"

namespace cmera::cli {

namespace {

int run_grid_eval(const Comm& comm, const ModelFileContents& mf, const std::string& model_path,
                  const std::string& data_path, long max_distance, bool json) {
  const GridModel model = as_grid_model(*mf.grid, mf.model);
  DatasetReader data(comm, data_path, /*lattice_samples=*/true);
  grid::GridWindowMarginals windows(model.lattice);
  windows.forward(model);
  const GridEvaluation ev = evaluate_grid(comm, model, windows, data, max_distance, 16384,
                                          [&comm](const GridModel& m, const grid::GridWindowMarginals& w,
                                                  long dx, long dy, long steps) {
                                            return grid::model_correlation(comm, m, w, dx, dy, steps);
                                          });
  const std::vector<GridLayerFlow> flow = grid_layer_flow(model, windows);
  const ScalingSpectra scaling = model.tied ? grid_scaling_dimensions(comm, model, 8) : ScalingSpectra{};
  if (!comm.is_root()) return 0;
  if (json) {
    nlohmann::json j = grid_evaluation_json(ev, flow, model.tied ? &scaling : nullptr);
    j["model"] = model_path;
    j["data"] = data_path;
    j["lattice"] = {{"kind", "grid"}, {"lx", model.lattice.lx}, {"ly", model.lattice.ly},
                    {"chi", model.lattice.chi},
                    {"intermediate_chi", model.lattice.intermediate_alphabets()}, {"tied", model.tied}};
    std::cout << j.dump(1) << std::endl;
    return 0;
  }
  fmt::print("model {}  (grid {} x {}, chi = [{}], intermediate_chi = [{}], {})\ndata  {}\n",
             model_path, model.lattice.lx, model.lattice.ly, fmt::join(model.lattice.chi, ", "),
             fmt::join(model.lattice.intermediate_alphabets(), ", "), model.tied ? "tied" : "untied",
             data_path);
  fmt::print("KL per 3 x 3 window      {:.6e} nats (sampling floor {:.3e})\n", ev.kl_per_window,
             ev.kl_floor_per_window);
  fmt::print("pooled window KL         {:.6e} nats (sampling floor {:.3e})\n",
             ev.kl_pooled_window, ev.kl_floor_pooled);
  fmt::print("cross entropy per window {:.10f} nats\n\n", ev.cross_entropy_per_window);
  for (auto [name, c] : {std::pair{"x", &ev.corr_x}, std::pair{"y", &ev.corr_y},
                         std::pair{"diagonal", &ev.corr_diag}}) {
    fmt::print("C(r) along {}\n{:>6}  {:>14}  {:>14}  {:>12}\n", name, "r", "C_model(r)",
               "C_data(r)", "difference");
    for (std::size_t k = 0; k < c->r.size(); ++k)
      fmt::print("{:>6}  {:>14.10f}  {:>14.10f}  {:>12.3e}\n", c->r[k], c->model[k], c->data[k],
                 c->model[k] - c->data[k]);
  }
  fmt::print("\nlearned flow: per layer, <s>, nearest-neighbour <s s'> along x, y, diagonal, "
             "I(x; x') along x, y (nats)\n");
  for (const GridLayerFlow& f : flow)
    fmt::print("{:>6}  {:+.6f}  {:+.6f} {:+.6f} {:+.6f}  {:.6e} {:.6e}\n", f.layer, f.magnetization,
               f.nn_corr_x, f.nn_corr_y, f.nn_corr_diag, f.mutual_information_x,
               f.mutual_information_y);
  if (model.tied && !scaling.averaged.layers.empty())
    fmt::print("\nscaling: Delta = -log2|lambda| of the 3 x 3 window map, layers {}-{}: [{:.5f}]\n",
               scaling.averaged.layers.front(), scaling.averaged.layers.back(),
               fmt::join(scaling.averaged.delta, ", "));
  return 0;
}

int run_eval(const Comm& comm, const std::string& model_path, const std::string& data_path,
             long max_distance, bool json) {
  const ModelFileContents mf = read_model(comm, model_path, nullptr, ModelLattice::any);
  if (mf.grid) return run_grid_eval(comm, mf, model_path, data_path, max_distance, json);
  DatasetReader data(comm, data_path);
  const long R = max_distance > 0 ? max_distance : mf.model.geometry.sites / 2;
  const Evaluation ev = evaluate(comm, mf.model, data, R, 16384);
  const std::vector<LayerFlow> flow = layer_flow(mf.model);
  const bool tied = mf.model.tied;
  const ScalingSpectra scaling = tied ? scaling_dimensions(mf.model, 8) : ScalingSpectra{};
  if (!comm.is_root()) return 0;
  if (json) {
    nlohmann::json j;
    j["model"] = model_path;
    j["data"] = data_path;
    j["kl_per_window"] = ev.kl_per_window;
    j["cross_entropy_per_window"] = ev.cross_entropy_per_window;
    j["data_entropy_per_window"] = ev.data_entropy_per_window;
    j["corr"] = {{"r", ev.r}, {"model", ev.corr_model}, {"data", ev.corr_data}};
    j["flow"] = nlohmann::json::array();
    for (const LayerFlow& f : flow)
      j["flow"].push_back({{"layer", f.layer}, {"marginal", f.marginal},
                           {"mutual_information", f.mutual_information}});
    if (tied) j["scaling"] = scaling_json(scaling);
    std::cout << j.dump(1) << std::endl;
  } else {
    fmt::print("model {}\ndata  {}\n", model_path, data_path);
    fmt::print("KL per window            {:.6e} nats\n", ev.kl_per_window);
    fmt::print("cross entropy per window {:.10f} nats\n", ev.cross_entropy_per_window);
    fmt::print("data entropy per window  {:.10f} nats\n\n", ev.data_entropy_per_window);
    fmt::print("{:>6}  {:>14}  {:>14}  {:>12}\n", "r", "C_model(r)", "C_data(r)", "difference");
    for (std::size_t k = 0; k < ev.r.size(); ++k)
      fmt::print("{:>6}  {:>14.10f}  {:>14.10f}  {:>12.3e}\n", ev.r[k], ev.corr_model[k],
                 ev.corr_data[k], ev.corr_model[k] - ev.corr_data[k]);
    fmt::print("\nlearned flow: per layer, mean single-site marginal and I(x_i; x_i+1) (nats)\n");
    for (const LayerFlow& f : flow)
      fmt::print("{:>6}  [{:.6f}]  {:.6e}\n", f.layer, fmt::join(f.marginal, ", "),
                 f.mutual_information);
    if (tied) {
      fmt::print("\nscaling: leading |lambda| of the ascending map, Delta = -log2|lambda|\n");
      auto row = [](const std::string& what, const Spectrum& s) {
        fmt::print("{:>12}  lambda [{:.5f}]\n{:>12}  Delta  [{:.5f}]\n", what,
                   fmt::join(s.magnitude, ", "), "", fmt::join(s.delta, ", "));
      };
      for (const Spectrum& s : scaling.per_layer) row(fmt::format("layer {}", s.layers[0]), s);
      const Spectrum& avg = scaling.averaged;
      if (!avg.layers.empty())
        row(fmt::format("layers {}-{}", avg.layers.front(), avg.layers.back()), avg);
    }
  }
  return 0;
}

struct EvalArgs {
  std::string model_path, data_path;
  long max_distance = 0;
  bool json = false;
};

}  // namespace

Command add_eval(CLI::App& app, const Comm& comm) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* eval = app.add_subcommand(
      "eval", "Evaluate a model against data: window KL, C(r); the learned flow per layer\n"
              "and, for tied models, scaling dimensions. Chains and grids.");
  eval->add_option("model", a->model_path, "Model file (model.h5)")->required();
  eval->add_option("--data", a->data_path, "Dataset file")->required();
  eval->add_option("--max-distance", a->max_distance, "Largest r for C(r) (default N/2; grids: L/2 per axis)");
  eval->add_flag("--json", a->json, "Print one JSON object (full double precision)");
  return {eval, [&comm, a] {
    if (a->max_distance < 0)
      throw Error(fmt::format("--max-distance must be >= 1, got {}", a->max_distance));
    return run_eval(comm, a->model_path, a->data_path, a->max_distance, a->json);
  }};
}

}  // namespace cmera::cli
