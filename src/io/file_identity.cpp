// What a file is (io.hpp): identify_cmera_file reads a file's kind, config and
// provenance on the calling rank alone (integrity-verified first), for the checks that
// protect a user's files before any work; describe_file is `cmera info`'s summary.
#include "cmera/io.hpp"

#include <sys/stat.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cmera/integrity.hpp"
#include "cmera/error.hpp"
#include "grid_model_file.hpp"
#include "hdf5_file.hpp"

namespace cmera {

using namespace h5;  // the io module's HDF5 toolkit

std::optional<FileIdentity> identify_cmera_file(const std::string& path, std::string& why_not) {
  silence_hdf5();
  const IntegrityCheck check = check_integrity(path);
  if (check.status != IntegrityStatus::verified) {
    why_not = check.status == IntegrityStatus::absent ? "not written by cmera (no cmera integrity block)"
                                                      : check.problem;
    return std::nullopt;
  }
  const Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  const auto kind = file.ok() ? get_string_attr(file.get(), "cmera_kind") : std::nullopt;
  if (!kind) {
    why_not = "not a cmera file (no cmera_kind attribute)";
    return std::nullopt;
  }
  FileIdentity id;
  id.kind = *kind;
  id.parameters = get_string_attr(file.get(), "parameters").value_or("");
  id.run_id = get_string_attr(file.get(), "run_id").value_or("");
  if (has_link(file.get(), "config")) {
    const Handle cfg(H5Gopen2(file.get(), "config", H5P_DEFAULT), H5Gclose);
    if (cfg.ok()) id.config_toml = get_string_attr(cfg.get(), "toml").value_or("");
  }
  return id;
}

// File summary ---------------------------------------------------------------------

std::string describe_file(const Comm& comm, const std::string& path) {
  silence_hdf5();
  const Ctx ctx{comm, path};
  bool verified = false;
  const Handle file = open_for_read(ctx, Integrity::if_present, &verified);
  const hid_t f = file.get();
  std::string out = fmt::format("file        {}\n", path);
  out += fmt::format("integrity   {}\n", verified ? "length and CRC-32 verified"
                                                  : "no cmera integrity block (not checked)");
  const auto kind = get_string_attr(f, "cmera_kind");
  out += fmt::format("kind        {}\n", kind ? *kind : "(not written by cmera: no cmera_kind)");

  // Integer root attributes (format versions, iteration, ...), then /model's geometry.
  for (const auto& name : attr_names(f))
    if (const auto v = get_int_attr(f, name, 1)) out += fmt::format("{:<11} {}\n", name, (*v)[0]);
  if (has_link(f, "model")) {
    const Handle model(H5Gopen2(f, "model", H5P_DEFAULT), H5Gclose);
    const auto sites = get_int_attr(model.get(), "sites", 1);
    const auto chi = get_int_attr(model.get(), "chi", -1);
    const auto tied = get_int_attr(model.get(), "tied", 1);
    const auto lx = get_int_attr(model.get(), "lx", 1), ly = get_int_attr(model.get(), "ly", 1);
    if (is_grid_model(model.get()) && lx && ly && chi && tied) {
      GridLattice g{static_cast<long>((*lx)[0]), static_cast<long>((*ly)[0]), {}, {}};
      for (long long c : *chi) g.chi.push_back(static_cast<int>(c));
      if (const auto mid = get_int_attr(model.get(), "intermediate_chi", -1))
        for (long long c : *mid) g.intermediate.push_back(static_cast<int>(c));
      std::string bytes = "invalid grid";
      try {
        g.validate();
        bytes = fmt::format("tables {:.4g} MB", g.table_bytes((*tied)[0] != 0) / 1e6);
      } catch (const Error& e) {
        bytes += std::string(": ") + e.what();
      }
      out += fmt::format("model       grid Lx x Ly = {} x {}, depth {}, chi = [{}], "
                         "intermediate_chi = [{}], {}, {}\n",
                         g.lx, g.ly, g.depth(), fmt::join(g.chi, ", "),
                         fmt::join(g.intermediate, ", "), (*tied)[0] ? "tied" : "untied", bytes);
    } else if (sites && chi && tied)
      out += fmt::format("model       N = {}, chi = [{}], {}\n", (*sites)[0], fmt::join(*chi, ", "),
                         (*tied)[0] ? "tied" : "untied");
  }
  for (const char* name : {"/history/objective", "/history/kl"}) {
    if (!has_link(f, name)) continue;
    const auto h = read_doubles(ctx, f, name, {});
    if (!h.empty())
      out += fmt::format("{:<11} {:.12g} (last of {})\n", name + 9, h.back(), h.size());
  }

  // Every dataset, in name order.
  std::vector<std::string> names;
  H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC,
           [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
             static_cast<std::vector<std::string>*>(data)->emplace_back(name);
             return 0;
           },
           &names);
  out += "datasets\n";
  for (const std::string& name : names) {
    const Handle obj(H5Oopen(f, name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.ok() || H5Iget_type(obj.get()) != H5I_DATASET) continue;
    const Handle type(H5Dget_type(obj.get()), H5Tclose);
    const Handle space(H5Dget_space(obj.get()), H5Sclose);
    out += fmt::format("  /{:<40} {} {}\n", name, type_string(type.get()),
                       shape_string(dims_of(space.get())));
  }

  // Provenance: string root attributes, multi-line ones (config, parameters) abridged.
  out += "provenance\n";
  for (const auto& name : attr_names(f)) {
    if (name == "cmera_kind") continue;
    const StringAttrRead attr = read_string_attr(f, name);
    const auto& v = attr.value;
    if (!v) {
      if (attr.kind == StringAttr::variable_length)
        out += fmt::format("  {:<18} (variable-length string: not read)\n", name);
      continue;
    }
    const auto lines = std::count(v->begin(), v->end(), '\n');
    out += lines > 1 ? fmt::format("  {:<18} ({} lines; first: {})\n", name, lines,
                                   v->substr(0, v->find('\n')))
                     : fmt::format("  {:<18} {}\n", name, *v);
  }
  return out;
}

}  // namespace cmera
