// The grid model's part of the model file (src/io/grid_model_file.cpp), for
// src/io/model_file.cpp, which writes and reads everything around it (root attributes,
// config, history, checkpoint extras, publishing) for both lattices.
#pragma once
#include <string>

#include "cmera/grid.hpp"
#include "cmera/model.hpp"
#include "hdf5_file.hpp"

namespace cmera::h5 {

// /model's attributes of a grid: lattice = "grid", lx, ly, chi, tied, depth.
bool put_grid_attributes(hid_t model_group, const GridLattice& g, bool tied);
// Whether /model says it is a grid (attribute lattice = "grid"); chain files have none.
bool is_grid_model(hid_t model_group);
// The lattice and tying /model declares, validated (GridLattice::validate, table bytes
// within the file's size), as a uniform model's chain view.
Model read_grid_geometry(const Ctx& ctx, hid_t file, hid_t model_group, GridLattice& g);
// Table set `group` (layer_<l>/{y,x}/{isometry,disentangler}, top) of a grid from its
// chain view `view`; rank 0 alone (grid tables are whole on every rank).
void write_grid_table_set(const Ctx& local, hid_t file, const std::string& group,
                          const GridLattice& g, const Tables& view);
// Every rank reads table set `group`, shaped like the chain view `shape`.
Tables read_grid_table_set(const Ctx& ctx, hid_t file, const std::string& group,
                           const GridLattice& g, const Tables& shape);
// Conditionals that do not sum to one would sample and train as garbage, silently: refused
// (model tables only; optimizer state sets are not distributions).
void require_normalized(const Ctx& ctx, const std::string& group, const Tables& t);
// Refuses (one line) table sets whose entries exceed the file's size: damage, or a
// crafted file, caught before anything is allocated. Shared with the chain's reader.
void require_tables_fit(const Ctx& ctx, hid_t file, double entries, const std::string& what);

}  // namespace cmera::h5
