// The 2D (grid) classical MERA of docs/design-grid.md: the lattice type of the periodic
// Lx x Ly grid (sites per layer, alphabets, the intermediate alphabet of each separable
// step, and the index rules of 3 x 3 windows), and the model's tables. One generative
// step l+1 -> l refines every column by an ordinary 1D layer (y half-step), then every
// row of the result by another (x half-step) (docs/design-grid.md §1).
//
// Trade-off: each half-step of each line is stored as a plain chain `LayerTables`
// (docs/design.md §1 layout), so the chain's window kernels, cone rules, sampler and
// initialization apply to a line unchanged; the price is one small vector per line
// (untied) instead of one flat array per layer and direction.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cmera/init.hpp"
#include "cmera/model.hpp"

namespace cmera {

// Site (x, y) of layer l is site y * lx_at(l) + x: rows are contiguous, as in an image
// [Ly, Lx]; the top table orders its sites the same way, site 0 most significant.
struct GridLattice {
  long lx = 0, ly = 0;   // layer 0
  std::vector<int> chi;  // chi[l], l = 0..depth; chi[0] is the data alphabet
  // intermediate[l]: alphabet of step l's intermediate grid; steps beyond its length
  // take the default chi[l] (docs/design-grid.md §1).
  std::vector<int> intermediate;

  bool operator==(const GridLattice&) const = default;
  int depth() const { return static_cast<int>(chi.size()) - 1; }
  long lx_at(int l) const { return lx >> l; }
  long ly_at(int l) const { return ly >> l; }
  long sites_at(int l) const { return lx_at(l) * ly_at(l); }
  long site(int l, long x, long y) const {
    return cone::wrap(y, ly_at(l)) * lx_at(l) + cone::wrap(x, lx_at(l));
  }
  long top_sites() const { return sites_at(depth()); }
  std::size_t top_size() const;  // chi[depth]^top_sites
  // Alphabet of the grid between the two half-steps of step l+1 -> l
  // (lx_at(l+1) x ly_at(l) sites): chi[l] unless `intermediate` says otherwise
  // (docs/design-grid.md §1).
  int intermediate_chi(int l) const {
    return static_cast<std::size_t>(l) < intermediate.size() ? intermediate[static_cast<std::size_t>(l)]
                                                             : chi[static_cast<std::size_t>(l)];
  }
  // intermediate_chi(l) for every step l = 0..depth-1.
  std::vector<int> intermediate_alphabets() const;
  // The largest alphabet of any layer or intermediate grid (sizes kernel scratch).
  int max_alphabet() const;
  // Throws cmera::Error naming the problem if this is not a valid grid MERA, including a
  // top table too large for memory.
  void validate() const;
  double table_bytes(bool tied) const;
};

// Where a 3 x 3 window of layer l (first corner (x, y)) comes from one layer up
// (docs/design-grid.md §3): the coarse window at (cx, cy) of layer l+1, its column
// dx (= 0, 1, 2) being refined by the 1D layer of column line cx + dx from coarse
// window cy, its row dy by the 1D layer of row line y + dy from coarse window cx; the
// parities say which of the two 1D children (docs/design.md §2) each half-step takes.
struct GridWindowCone {
  long x = 0, y = 0;    // the window's corner at layer l, wrapped
  long cx = 0, cy = 0;  // its coarse window's corner at layer l+1, wrapped
  bool odd_x = false, odd_y = false;
  // Lines of the two half-steps (unwrapped; LineTables::line wraps).
  long column_line(int dx) const { return cx + dx; }
  long row_line(int dy) const { return y + dy; }
};
GridWindowCone grid_window_cone(const GridLattice& g, int layer, long x, long y);

// Place (dx, dy) of a 3 x 3 window: entry index 3 * dy + dx, place 0 most significant
// (row-major, like the lattice).
inline int window_place(int dx, int dy) { return 3 * dy + dx; }
inline std::size_t grid_window_size(int chi) {
  std::size_t n = 1;
  for (int k = 0; k < 9; ++k) n *= static_cast<std::size_t>(chi);
  return n;
}

// The 1D layers of one half-step: one line's tables per line (untied) or one shared.
struct LineTables {
  bool tied = true;
  std::vector<LayerTables> lines;
  const LayerTables& line(long i) const {
    return tied ? lines[0] : lines[static_cast<std::size_t>(cone::wrap(i, lines.size()))];
  }
  LayerTables& line(long i) {
    return tied ? lines[0] : lines[static_cast<std::size_t>(cone::wrap(i, lines.size()))];
  }
};

// Step l+1 -> l. y: lx_at(l+1) column lines, chi[l+1] -> intermediate_chi(l), each with
// ly_at(l+1) coarse sites. x: ly_at(l) row lines, intermediate_chi(l) -> chi[l], each with
// lx_at(l+1) coarse sites. Tied: one W and one U per layer and direction (every line's
// LayerTables is tied); untied: one per position (line, coarse site).
struct GridLayerTables {
  LineTables y, x;
};

struct GridModel {
  GridLattice lattice;
  bool tied = true;
  std::vector<GridLayerTables> layers;  // layers[l] maps l+1 -> l
  std::vector<double> top;              // joint of the top grid

  int depth() const { return lattice.depth(); }
  // Every conditional uniform.
  static GridModel uniform(const GridLattice& g, bool tied);
  // Largest deviation of any conditional's (and the top's) sum from 1.
  double normalization_error() const;
};

// Initial tables: each line's half-step is a chain layer started by initialize_model
// (docs/design.md §4) from its own stream, so `kind` and `noise` mean what they mean for
// chains; the top is a random row (uniform for InitKind::kUniform).
GridModel initialize_grid_model(const GridLattice& g, bool tied, InitKind kind, double noise,
                                std::uint64_t seed);

}  // namespace cmera
