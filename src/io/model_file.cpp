// Model and checkpoint files (io.hpp, write_model / read_model). A file is built in rank
// 0's memory (MemoryFile, file_publish.hpp), untied rows gathered from their owners, and
// written with POSIX calls; every rank reads it back collectively.
//
// Model file (format_version 2)
//   root attributes     cmera_kind = "model", format_version = 2 (int32), provenance
//                       (every other root string attribute)
//   /config             group; string attribute "toml" holds the resolved config
//   /model              group; attributes sites (int64), chi (int32 [depth+1]),
//                       tied (int32 0/1), depth (int32)
//   /model/layer_<l>/isometry      float64 [count, K, d, d]      W[j][y][a][b]
//   /model/layer_<l>/disentangler  float64 [count, d, d, d, d]   U[j][a][a'][x][x']
//                       count = 1 if tied else M = sites >> (l+1); d = chi[l], K = chi[l+1]
//   /model/top          float64 [K, K, ..., K] (rank top_sites), K = chi[depth]
//   /history/objective, /history/kl   float64 [n] (n may be 0)
// A file of another kind (checkpoint, ModelFileExtras) is a model file with cmera_kind set
// to that kind, extra int64 root attributes, and extra groups laid out like /model
// (layer_<l>/isometry, layer_<l>/disentangler, top) holding tables of the model's shape.
// A grid model (contents.grid) has /model attributes and table sets of its own layout
// (src/io/grid_model_file.cpp, docs/design-grid.md §5); everything else is as above.
// Strings are fixed-length UTF-8 (h5py reads them as bytes); format version 1 wrote
// variable-length strings, which readers refuse (hdf5_file.cpp says why).
#include "cmera/io.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "file_publish.hpp"
#include "grid_model_file.hpp"

namespace cmera {

using namespace h5;  // the io module's HDF5 toolkit

namespace {

// at a time; `on_root` runs rank 0's writes and keeps the first failure for later.
template <class OnRoot>
void write_table_set(const Comm& comm, const OnRoot& on_root, const Ctx& local, hid_t file,
                     const std::string& group, const Model& m, const Tables& tables,
                     const std::optional<GridLattice>& grid) {
  if (grid) {  // whole on every rank: rank 0 writes its own
    on_root([&] { write_grid_table_set(local, file, group, *grid, tables); });
    return;
  }
  const auto write = [&](const std::string& name, const std::vector<hsize_t>& dims,
                         const double* data) {
    on_root([&] {
      const Handle dset = create_dataset(local, file, name, H5T_IEEE_F64LE, dims);
      local.require(H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
                    "writing dataset " + name + " failed");
    });
  };
  for (int l = 0; l < m.depth(); ++l) {
    const LayerTables& t = tables.layers[l];
    const std::string layer = fmt::format("{}/layer_{}", group, l);
    on_root([&] { create_group(local, file, layer); });
    const hsize_t n = static_cast<hsize_t>(t.count()), d = t.d, K = t.K;
    const std::vector<hsize_t> w_dims{n, K, d, d}, u_dims{n, d, d, d, d};
    if (m.tied) {
      write(layer + "/isometry", w_dims, t.W.data());
      write(layer + "/disentangler", u_dims, t.U.data());
      continue;
    }
    const BlockPartition owners{t.count(), comm.size()};
    write(layer + "/isometry", w_dims, comm.gather_blocks(t.W, owners, t.w_size()).data());
    write(layer + "/disentangler", u_dims, comm.gather_blocks(t.U, owners, t.u_size()).data());
  }
  const Geometry& g = m.geometry;
  write(group + "/top",
        std::vector<hsize_t>(static_cast<std::size_t>(g.top_sites()), static_cast<hsize_t>(g.chi.back())),
        tables.top.data());
}

// Every rank reads the whole table set `group`, shaped like model m.
Tables read_table_set(const Ctx& ctx, hid_t f, const std::string& group, const Model& m,
                      const std::optional<GridLattice>& grid) {
  if (grid) return read_grid_table_set(ctx, f, group, *grid, m.tables);
  Tables out = Tables::zeros_like(m.tables);
  for (int l = 0; l < m.depth(); ++l) {
    LayerTables& t = out.layers[l];
    const std::string layer = fmt::format("{}/layer_{}", group, l);
    const hsize_t n = static_cast<hsize_t>(t.count()), d = t.d, K = t.K;
    t.W = read_doubles(ctx, f, layer + "/isometry", {n, K, d, d});
    t.U = read_doubles(ctx, f, layer + "/disentangler", {n, d, d, d, d});
  }
  out.top = read_doubles(ctx, f, group + "/top",
                         std::vector<hsize_t>(static_cast<std::size_t>(m.geometry.top_sites()),
                                              static_cast<hsize_t>(m.geometry.chi.back())));
  return out;
}

}  // namespace

void write_model(const Comm& comm, const std::string& path, const ModelFileContents& contents,
                 const ModelFileExtras* extras, bool durable,
                 const std::function<void()>& before_rename) {
  silence_hdf5();
  const Ctx ctx{comm, path, kExitWrite};
  const Model& m = contents.model;
  const Geometry& g = m.geometry;
  const int depth = g.depth();
  const std::optional<GridLattice>& grid = contents.grid;
  long grid_lines = 0;  // a grid's chain view: one layer per line of each half-step
  for (int l = 0; grid && l < grid->depth(); ++l)
    grid_lines += m.tied ? 2 : grid->lx_at(l + 1) + grid->ly_at(l);
  bool sizes_ok = grid ? static_cast<long>(m.tables.layers.size()) == grid_lines &&
                             m.tables.top.size() == grid->top_size() && grid->top_sites() <= H5S_MAX_RANK
                       : static_cast<int>(m.tables.layers.size()) == depth &&
                             m.tables.top.size() == g.top_size() && g.top_sites() <= H5S_MAX_RANK;
  for (int l = 0; !grid && sizes_ok && l < depth; ++l) {
    const LayerTables& t = m.tables.layers[l];
    sizes_ok = t.W.size() == t.count() * t.w_size() && t.U.size() == t.count() * t.u_size() &&
               t.tied == m.tied;
  }
  ctx.require(sizes_ok, "model tables do not match the model geometry (internal error)");
  ModelFileExtras none;
  none.kind = "model";
  const ModelFileExtras& extra = extras ? *extras : none;
  ctx.require(extra.tables.size() == extra.table_sets.size(),
              "one table set per name expected (internal error)");

  // Rank 0 builds the file in memory (MemoryFile) from its own config, history and
  // provenance and every rank's table rows; its first failure is kept in `problem` while
  // the other ranks go on sending rows, and all agree on it once, at the end.
  const bool root = comm.is_root();
  const Ctx local{comm, path, kExitWrite, true};
  std::string problem;
  const auto on_root = [&](const auto& step) {
    if (!root || !problem.empty()) return;
    try {
      step();
    } catch (const Error& e) {
      problem = e.what();
    } catch (const std::bad_alloc&) {
      problem = path + ": not enough memory on rank 0 for the file's image";
    }
  };
  std::optional<MemoryFile> file;
  on_root([&] {
    double table_entries = static_cast<double>(m.tables.top.size());
    for (const LayerTables& t : m.tables.layers) table_entries += static_cast<double>(t.W.size() + t.U.size());
    file.emplace(local, 8 * table_entries * static_cast<double>(1 + extra.tables.size()) + (1 << 20));
    const hid_t f = file->get();
    bool ok = true;
    for (const auto& [key, value] : contents.provenance) ok = ok && put_string_attr(f, key, value);
    for (const auto& [key, value] : extra.strings) ok = ok && put_string_attr(f, key, value);
    ok = ok && put_string_attr(f, "cmera_kind", extra.kind) &&
         put_int_attr(f, "format_version", kModelFormatVersion, H5T_STD_I32LE);
    for (const auto& [key, value] : extra.integers) ok = ok && put_int_attr(f, key, value, H5T_STD_I64LE);
    if (!extra.version.first.empty())
      ok = ok && put_int_attr(f, extra.version.first, extra.version.second, H5T_STD_I64LE);
    local.require(ok, "writing root attributes failed");
    const Handle cfg = create_group(local, f, "/config");
    local.require(put_string_attr(cfg.get(), "toml", contents.config_toml),
                  "writing /config attribute toml failed");
    const Handle model = create_group(local, f, "/model");
    ok = grid ? put_grid_attributes(model.get(), *grid, m.tied)
              : put_int_attr(model.get(), "sites", g.sites, H5T_STD_I64LE) &&
                    put_int_array_attr(model.get(), "chi", g.chi) &&
                    put_int_attr(model.get(), "tied", m.tied ? 1 : 0, H5T_STD_I32LE) &&
                    put_int_attr(model.get(), "depth", depth, H5T_STD_I32LE);
    local.require(ok, "writing /model attributes failed");
  });
  const hid_t f = root && file ? file->get() : -1;
  write_table_set(comm, on_root, local, f, "/model", m, m.tables, grid);
  for (std::size_t k = 0; k < extra.table_sets.size(); ++k) {
    const std::string& group = extra.table_sets[k];
    on_root([&] {
      Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
      H5Pset_create_intermediate_group(lcpl.get(), 1);
      const Handle created(H5Gcreate2(f, group.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      local.require(created.ok(), "cannot create group " + group);
    });
    write_table_set(comm, on_root, local, f, group, m, *extra.tables[k], grid);
  }
  on_root([&] {
    create_group(local, f, "/history");
    for (const auto& [name, values] : {std::pair{"/history/objective", &contents.objective_history},
                                       std::pair{"/history/kl", &contents.kl_history}}) {
      const Handle dset = create_dataset(local, f, name, H5T_IEEE_F64LE, {values->size()});
      local.require(values->empty() || H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                                                H5P_DEFAULT, values->data()) >= 0,
                    fmt::format("writing dataset {} failed", name));
    }
    file->publish(extra.temporary_tag.empty() ? std::to_string(getpid()) : extra.temporary_tag,
                  durable, before_rename);
  });
  comm.check(problem.empty(), problem, kExitWrite);
}

namespace {

// The file's kind (a model, or extras->kind) and format version; the messages tell a
// file of another kind, an older format and a foreign writer apart.
void require_kind_and_version(const Ctx& ctx, hid_t f, const ModelFileExtras* extras) {
  const StringAttrRead kind_attr = read_string_attr(f, "cmera_kind");
  const auto& kind = kind_attr.value;
  const auto version = get_int_attr(f, "format_version", 1);
  const auto require_version = [&] {
    ctx.require(version.has_value(), "no integer format_version attribute");
    ctx.require((*version)[0] == kModelFormatVersion,
                fmt::format("model format version {}, this cmera reads {}", (*version)[0],
                            kModelFormatVersion));
  };
  if (!kind) {
    const StringAttr problem = kind_attr.kind;
    ctx.require(problem != StringAttr::absent, "not a cmera model file (no cmera_kind attribute)");
    // Version 1 wrote variable-length strings: say so rather than blame the string.
    if (version) require_version();
    ctx.require(false, problem == StringAttr::variable_length
                           ? "attribute cmera_kind is a variable-length string; cmera files "
                             "store fixed-length strings (not written by this cmera)"
                           : "attribute cmera_kind is not a string");
  }
  if (extras) {
    ctx.require(*kind == extras->kind,
                fmt::format("is a cmera {} file, expected a {}", *kind, extras->kind));
    const auto& [key, expected] = extras->version;
    const auto v = get_int_attr(f, key, 1);
    ctx.require(v.has_value(), "no integer attribute " + key);
    ctx.require((*v)[0] == expected, fmt::format("{} format version {}, this cmera reads {}",
                                                 extras->kind, (*v)[0], expected));
  } else {
    ctx.require(*kind == "model" || *kind == "checkpoint",
                fmt::format("is a cmera {} file, expected a model", *kind));
  }
  require_version();
}

// A uniform model of /model's geometry. The tables are stored uncompressed, so a geometry
// whose tables exceed the file's size is damage (or a crafted file), refused before
// anything is allocated.
Model read_chain_geometry(const Ctx& ctx, hid_t f, hid_t model) {
  const auto sites = get_int_attr(model, "sites", 1);
  const auto depth = get_int_attr(model, "depth", 1);
  const auto tied = get_int_attr(model, "tied", 1);
  const auto chi = get_int_attr(model, "chi", -1);
  ctx.require(sites && depth && tied && chi,
              "/model needs integer attributes sites, depth, tied and chi");
  ctx.require(static_cast<long long>(chi->size()) == (*depth)[0] + 1,
              fmt::format("/model attribute chi has {} entries, expected depth + 1 = {}",
                          chi->size(), (*depth)[0] + 1));
  Geometry g;
  g.sites = static_cast<long>((*sites)[0]);
  for (long long c : *chi) g.chi.push_back(static_cast<int>(c));
  ctx.require_passes([&] { g.validate(); }, "invalid model geometry in /model: ");
  const bool tied_model = (*tied)[0] != 0;
  double entries = std::pow(static_cast<double>(g.chi.back()), static_cast<double>(g.top_sites()));
  for (int l = 0; l < g.depth(); ++l) {
    const double d = g.chi[l], K = g.chi[l + 1];
    entries += (tied_model ? 1.0 : static_cast<double>(g.sites_at(l + 1))) * (K * d * d + d * d * d * d);
  }
  require_tables_fit(ctx, f, entries,
                     fmt::format("/model geometry (N = {}, chi = [{}])", g.sites, fmt::join(g.chi, ", ")));
  return Model::uniform(g, tied_model);
}

// /model's lattice and geometry (a uniform model; a grid's chain view), refused when it is
// not the lattice the reader takes, naming both.
Model read_geometry(const Ctx& ctx, hid_t f, ModelLattice want, std::optional<GridLattice>& grid) {
  const Handle model = open_group(ctx, f, "/model");
  const bool is_grid = is_grid_model(model.get());
  if (is_grid) {
    GridLattice g;
    Model view = read_grid_geometry(ctx, f, model.get(), g);
    ctx.require(want != ModelLattice::chain,
                fmt::format("is a grid model ({} x {}), expected a chain model", g.lx, g.ly));
    grid = g;
    return view;
  }
  Model m = read_chain_geometry(ctx, f, model.get());
  ctx.require(want != ModelLattice::grid,
              fmt::format("is a chain model (N = {}), expected a grid model", m.geometry.sites));
  return m;
}

}  // namespace

void h5::require_tables_fit(const Ctx& ctx, hid_t f, double entries, const std::string& what) {
  hsize_t file_bytes = 0;
  H5Fget_filesize(f, &file_bytes);
  ctx.require(8 * entries <= static_cast<double>(file_bytes),
              fmt::format("{} needs {:.3g} bytes of tables, more than the file's {} bytes "
                          "(damaged?)", what, 8 * entries, file_bytes));
}

ModelFileContents read_model(const Comm& comm, const std::string& path,
                             ModelFileExtras* extras, ModelLattice lattice) {
  silence_hdf5();
  const Ctx ctx{comm, path};
  const Handle file = open_for_read(ctx, Integrity::required);
  const hid_t f = file.get();
  require_kind_and_version(ctx, f, extras);
  ModelFileContents out;
  // Provenance by its known names: iterating the attributes of an untrusted file
  // (H5Aiterate2) crashes inside HDF5 1.10 on some damaged headers
  // (tests/fuzz/corpus_model/regression-hdf5-H5Aiterate-segv.h5).
  for (const auto& name : provenance_keys())
    if (auto v = get_string_attr(f, name)) out.provenance.emplace_back(name, *v);
  {
    const Handle cfg = open_group(ctx, f, "/config");
    const auto toml = get_string_attr(cfg.get(), "toml");
    ctx.require(toml.has_value(), "no fixed-length string attribute toml on /config");
    out.config_toml = *toml;
  }
  out.model = read_geometry(ctx, f, lattice, out.grid);
  if (extras) {
    for (auto& [key, value] : extras->integers) {
      const auto v = get_int_attr(f, key, 1);
      ctx.require(v.has_value(), "no integer attribute " + key);
      value = (*v)[0];
    }
    for (auto& [key, value] : extras->strings) value = get_string_attr(f, key).value_or("");
    if (extras->before_tables) extras->before_tables(out.config_toml, *extras);
  }
  out.model.tables = read_table_set(ctx, f, "/model", out.model, out.grid);
  if (out.grid) require_normalized(ctx, "/model", out.model.tables);
  out.objective_history = read_doubles(ctx, f, "/history/objective", {});
  out.kl_history = read_doubles(ctx, f, "/history/kl", {});
  if (extras) {
    extras->loaded.clear();
    for (const std::string& group : extras->table_sets)
      extras->loaded.push_back(read_table_set(ctx, f, group, out.model, out.grid));
  }
  return out;
}

}  // namespace cmera
