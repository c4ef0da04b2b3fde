// `cmera sample model.h5 --count S`: exact ancestral samples, drawn and written in blocks
// of ~64 MiB per rank; /configs [S, N] from a chain model, [S, Ly, Lx] from a grid model
// (GridSampler). Sample k depends only on the seed and k, so the file is the same at any
// rank and thread count.
#include <fmt/format.h>
#include <functional>
#include <memory>
#include <optional>

#include "cmera/error.hpp"
#include "cmera/grid_sampler.hpp"
#include "cmera/io.hpp"
#include "cmera/memory.hpp"
#include "cmera/output_guard.hpp"
#include "cmera/provenance.hpp"
#include "cmera/sampler.hpp"
#include "commands.hpp"

namespace cmera::cli {

namespace {

int run_sample(const Comm& comm, const std::string& model_path, long count, std::uint64_t seed,
               const std::string& output, const std::string& command) {
  require_positive(count, "--count");
  const std::string params =
      fmt::format("generator = \"cmera-sample\"\nmodel = \"{}\"\ncount = {}\nseed = {}\n",
                  model_path, count, seed);
  require_replaceable(comm, output, "dataset", {model_path}, same_parameters(params));
  const ModelFileContents mf = read_model(comm, model_path, nullptr, ModelLattice::any);
  const Model& m = mf.model;
  const long n = mf.grid ? mf.grid->sites_at(0) : m.geometry.sites;
  const long block = dataset_block_rows(comm, n) / comm.size();
  require_memory(comm, static_cast<double>(block) * static_cast<double>(n),
                 fmt::format("a block of {} samples with N = {}", block, n), "to draw");
  // Either sampler draws sample k of `seed` into n values.
  std::function<void(std::uint64_t, std::uint8_t*)> draw;
  std::optional<GridModel> grid_model;
  std::optional<AncestralSampler> chain_sampler;
  std::optional<GridSampler> grid_sampler;
  std::vector<long> shape{n};
  if (mf.grid) {
    grid_model = as_grid_model(*mf.grid, m);
    grid_sampler.emplace(*grid_model);
    draw = [&](std::uint64_t k, std::uint8_t* out) { grid_sampler->draw(seed, k, out); };
    shape = {mf.grid->ly, mf.grid->lx};
  } else {
    chain_sampler.emplace(m);
    draw = [&](std::uint64_t k, std::uint8_t* out) { chain_sampler->draw(seed, k, out); };
  }
  write_dataset(comm, output, count, shape, m.geometry.chi[0], [&](long first, long rows, std::uint8_t* out) {
#pragma omp parallel for schedule(static)
    for (long k = 0; k < rows; ++k) draw(static_cast<std::uint64_t>(first + k), out + k * n);
  }, provenance(command, params));
  if (comm.is_root())
    fmt::print("wrote {} ({} samples x {})\n", output, count,
               mf.grid ? fmt::format("{} x {} grid", mf.grid->lx, mf.grid->ly)
                       : fmt::format("{} sites", n));
  return 0;
}

struct SampleArgs {
  std::string model_path, output;
  long count = 0;
  std::uint64_t seed = 1;
};

}  // namespace

Command add_sample(CLI::App& app, const Comm& comm, const std::string& line) {
  auto a = std::make_shared<SampleArgs>();
  CLI::App* sample = app.add_subcommand("sample", "Draw exact ancestral samples from a model.");
  sample->add_option("model", a->model_path, "Model file")->required();
  sample->add_option("--count", a->count, "Number of samples")->required();
  sample->add_option("--seed", a->seed, "Random seed")->default_val(1);
  sample->add_option("--output", a->output, "Output HDF5 file (dataset format)")->required();
  return {sample, [&comm, a, line] { return run_sample(comm, a->model_path, a->count, a->seed, a->output, line); }};
}

}  // namespace cmera::cli
