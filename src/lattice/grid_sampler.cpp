// Grid ancestral sampler (grid_sampler.hpp). Lines are drawn in a fixed order (columns
// by x, then rows by y, within each layer from the top down), so sample k is a pure
// function of (seed, k). Trade-off: a column is copied out to a contiguous line and
// back, which costs a gather per column but lets the chain's draw_layer serve both
// directions unchanged.
#include "cmera/grid_sampler.hpp"

#include <algorithm>

#include "cmera/rng.hpp"

namespace cmera {

GridSampler::GridSampler(const GridModel& model)
    : model_(model), top_(model.top, model.lattice.chi.back(), model.lattice.top_sites()) {}

void GridSampler::draw(std::uint64_t seed, std::uint64_t k, std::uint8_t* out) const {
  const GridLattice& g = model_.lattice;
  auto rng = stream_rng(seed, Stream::kSample, k);
  std::vector<int> coarse, mid, fine, line, a, refined;
  top_.draw(rng, coarse);  // the top grid, row-major like every layer
  for (int l = g.depth() - 1; l >= 0; --l) {
    const GridLayerTables& t = model_.layers[l];
    const long cx_n = g.lx_at(l + 1), cy_n = g.ly_at(l + 1), ly = g.ly_at(l), lx = g.lx_at(l);
    mid.assign(static_cast<std::size_t>(cx_n * ly), 0);  // intermediate: cx_n x ly
    for (long x = 0; x < cx_n; ++x) {
      line.resize(static_cast<std::size_t>(cy_n));
      for (long y = 0; y < cy_n; ++y) line[y] = coarse[y * cx_n + x];
      draw_layer(t.y.line(x), line, a, refined, rng);
      for (long y = 0; y < ly; ++y) mid[y * cx_n + x] = refined[y];
    }
    fine.assign(static_cast<std::size_t>(lx * ly), 0);
    for (long y = 0; y < ly; ++y) {
      line.assign(mid.begin() + y * cx_n, mid.begin() + (y + 1) * cx_n);
      draw_layer(t.x.line(y), line, a, refined, rng);
      std::copy(refined.begin(), refined.end(), fine.begin() + y * lx);
    }
    coarse.swap(fine);
  }
  for (std::size_t i = 0; i < coarse.size(); ++i) out[i] = static_cast<std::uint8_t>(coarse[i]);
}

}  // namespace cmera
