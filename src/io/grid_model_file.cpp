// Grid model files (docs/design-grid.md §5 "Files"): the /model attributes and table
// sets of a grid, and the chain view (io.hpp, as_chain_model) in which grid models travel
// through checkpoints and optimizers. Everything around the tables (root attributes,
// config, history, checkpoint extras, the publish/guard path) is model_file.cpp's, shared
// with chains.
//
// Layout of a grid's table set (group /model, or a checkpoint's extra set):
//   /model attributes   lattice = "grid", lx, ly (int64), chi (int32 [depth+1]),
//                       intermediate_chi (int32 [depth]; absent in files before it
//                       existed, meaning chi[0..depth-1]), tied (int32), depth (int32)
//   layer_<l>/y/isometry      float64 [lines, count, K, m, m]     lines = Lx_{l+1} columns,
//   layer_<l>/y/disentangler  float64 [lines, count, m, m, m, m]  count = Ly_{l+1} coarse sites
//   layer_<l>/x/isometry      float64 [lines, count, m, d, d]     lines = Ly_l rows,
//   layer_<l>/x/disentangler  float64 [lines, count, d, d, d, d]  count = Lx_{l+1} coarse sites
//                       (tied: lines = count = 1); K = chi[l+1], m = intermediate_chi[l],
//                       d = chi[l]; each line's arrays as the chain's layer arrays
//   top                 float64 [K_T, ..., K_T] of rank Lx_T * Ly_T, sites in lattice order
// Trade-off: one array per layer and direction with a leading line index (not one per
// line) keeps a file's dataset count independent of the grid's size, at the price of a
// copy of each half-step's tables while writing and reading.
#include "grid_model_file.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cmera/error.hpp"
#include "cmera/grid_sweep.hpp"
#include "cmera/io.hpp"

namespace cmera {

Model as_chain_model(const GridModel& m) {
  Model view;
  view.geometry = {m.lattice.lx * m.lattice.ly, m.lattice.chi};
  view.tied = m.tied;
  view.tables = grid::as_chain_tables(m);
  return view;
}

GridModel as_grid_model(const GridLattice& g, const Model& view) {
  GridModel m = GridModel::uniform(g, view.tied);
  grid::from_chain_tables(view.tables, m);
  return m;
}

namespace h5 {

namespace {

constexpr const char* kGrid = "grid";

// The half-steps of a grid in chain-view order (layer by layer, y then x): group name
// below the table set, and how many lines (view layers) it holds.
struct HalfStep {
  std::string name;
  long lines;
};
std::vector<HalfStep> half_steps(const GridLattice& g, bool tied) {
  std::vector<HalfStep> out;
  for (int l = 0; l < g.depth(); ++l) {
    out.push_back({fmt::format("layer_{}/y", l), tied ? 1 : g.lx_at(l + 1)});
    out.push_back({fmt::format("layer_{}/x", l), tied ? 1 : g.ly_at(l)});
  }
  return out;
}

std::vector<hsize_t> top_dims(const GridLattice& g) {
  return std::vector<hsize_t>(static_cast<std::size_t>(g.top_sites()),
                              static_cast<hsize_t>(g.chi.back()));
}

}  // namespace

bool put_grid_attributes(hid_t model_group, const GridLattice& g, bool tied) {
  return put_string_attr(model_group, "lattice", kGrid) &&
         put_int_attr(model_group, "lx", g.lx, H5T_STD_I64LE) &&
         put_int_attr(model_group, "ly", g.ly, H5T_STD_I64LE) &&
         put_int_array_attr(model_group, "chi", g.chi) &&
         put_int_array_attr(model_group, "intermediate_chi", g.intermediate_alphabets()) &&
         put_int_attr(model_group, "tied", tied ? 1 : 0, H5T_STD_I32LE) &&
         put_int_attr(model_group, "depth", g.depth(), H5T_STD_I32LE);
}

bool is_grid_model(hid_t model_group) {
  return get_string_attr(model_group, "lattice").value_or("") == kGrid;
}

Model read_grid_geometry(const Ctx& ctx, hid_t file, hid_t model_group, GridLattice& g) {
  const auto lx = get_int_attr(model_group, "lx", 1), ly = get_int_attr(model_group, "ly", 1);
  const auto depth = get_int_attr(model_group, "depth", 1);
  const auto tied = get_int_attr(model_group, "tied", 1);
  const auto chi = get_int_attr(model_group, "chi", -1);
  ctx.require(lx && ly && depth && tied && chi,
              "/model of a grid needs integer attributes lx, ly, depth, tied and chi");
  ctx.require(static_cast<long long>(chi->size()) == (*depth)[0] + 1,
              fmt::format("/model attribute chi has {} entries, expected depth + 1 = {}",
                          chi->size(), (*depth)[0] + 1));
  g = GridLattice{};
  g.lx = static_cast<long>((*lx)[0]);
  g.ly = static_cast<long>((*ly)[0]);
  for (long long c : *chi) g.chi.push_back(static_cast<int>(c));
  if (const auto mid = get_int_attr(model_group, "intermediate_chi", -1)) {
    ctx.require(static_cast<long long>(mid->size()) == (*depth)[0],
                fmt::format("/model attribute intermediate_chi has {} entries, expected depth = {}",
                            mid->size(), (*depth)[0]));
    for (long long c : *mid) g.intermediate.push_back(static_cast<int>(c));
  }
  ctx.require_passes([&] { g.validate(); }, "invalid grid in /model: ");
  const bool tied_model = (*tied)[0] != 0;
  require_tables_fit(ctx, file, g.table_bytes(tied_model) / 8,
                     fmt::format("/model grid {} x {}, chi = [{}], intermediate_chi = [{}]", g.lx, g.ly,
                                 fmt::join(g.chi, ", "), fmt::join(g.intermediate_alphabets(), ", ")));
  return as_chain_model(GridModel::uniform(g, tied_model));
}

void write_grid_table_set(const Ctx& local, hid_t file, const std::string& group,
                          const GridLattice& g, const Tables& view) {
  const auto write = [&](const std::string& name, const std::vector<hsize_t>& dims,
                         const double* data) {
    const Handle dset = create_dataset(local, file, name, H5T_IEEE_F64LE, dims);
    local.require(H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
                  "writing dataset " + name + " failed");
  };
  std::size_t k = 0;
  std::vector<double> w, u;
  for (int l = 0; l < g.depth(); ++l)
    create_group(local, file, fmt::format("{}/layer_{}", group, l));
  for (const HalfStep& h : half_steps(g, view.layers.empty() || view.layers[0].tied)) {
    const std::string path = group + "/" + h.name;
    create_group(local, file, path);
    const LayerTables& first = view.layers[k];
    w.clear();
    u.clear();
    for (long i = 0; i < h.lines; ++i, ++k) {
      w.insert(w.end(), view.layers[k].W.begin(), view.layers[k].W.end());
      u.insert(u.end(), view.layers[k].U.begin(), view.layers[k].U.end());
    }
    const hsize_t n = static_cast<hsize_t>(h.lines), c = static_cast<hsize_t>(first.count()),
                  d = first.d, K = first.K;
    write(path + "/isometry", {n, c, K, d, d}, w.data());
    write(path + "/disentangler", {n, c, d, d, d, d}, u.data());
  }
  write(group + "/top", top_dims(g), view.top.data());
}

Tables read_grid_table_set(const Ctx& ctx, hid_t file, const std::string& group,
                           const GridLattice& g, const Tables& shape) {
  Tables out = Tables::zeros_like(shape);
  std::size_t k = 0;
  const bool tied = shape.layers.empty() || shape.layers[0].tied;
  for (const HalfStep& h : half_steps(g, tied)) {
    const std::string path = group + "/" + h.name;
    const LayerTables& first = out.layers[k];
    const hsize_t n = static_cast<hsize_t>(h.lines), c = static_cast<hsize_t>(first.count()),
                  d = first.d, K = first.K;
    const std::vector<double> w = read_doubles(ctx, file, path + "/isometry", {n, c, K, d, d});
    const std::vector<double> u = read_doubles(ctx, file, path + "/disentangler", {n, c, d, d, d, d});
    for (long i = 0; i < h.lines; ++i, ++k) {
      LayerTables& t = out.layers[k];
      std::copy_n(w.begin() + static_cast<long>(i * t.W.size()), t.W.size(), t.W.begin());
      std::copy_n(u.begin() + static_cast<long>(i * t.U.size()), t.U.size(), t.U.begin());
    }
  }
  out.top = read_doubles(ctx, file, group + "/top", top_dims(g));
  return out;
}

void require_normalized(const Ctx& ctx, const std::string& group, const Tables& t) {
  double worst = row_sum_error(t.top, t.top.size());
  for (const LayerTables& l : t.layers) worst = std::max(worst, l.normalization_error());
  ctx.require(!(worst > 1e-8),
              fmt::format("{}: a conditional of the grid's tables deviates from a sum of 1 by "
                          "{:.3g} (damaged, or not written by cmera)", group, worst));
}

}  // namespace h5
}  // namespace cmera
