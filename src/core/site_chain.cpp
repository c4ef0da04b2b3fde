// Site chains (site_chain.hpp): window and cone bookkeeping per layer, and the pull-back
// of window functions through kernels::ascend_pair.
#include "cmera/site_chain.hpp"

#include <algorithm>

#include "cmera/error.hpp"
#include "cmera/siteset.hpp"

namespace cmera {

using cone::wrap;

std::size_t window_stride(long offset, int chi) {
  return offset == 0 ? static_cast<std::size_t>(chi) * chi : (offset == 1 ? chi : 1);
}

bool disjoint(const std::vector<long>& a, const std::vector<long>& b) {
  auto i = a.begin(), j = b.begin();
  while (i != a.end() && j != b.end()) {
    if (*i == *j) return false;
    if (*i < *j) ++i; else ++j;
  }
  return true;
}

ConeInWindow site_in_window(const Geometry& g, long first, int position) {
  return {wrap(first, g.sites), {wrap(first + position, g.sites)}};
}

ConeInWindow ascend(const Geometry& g, int layer, const ConeInWindow& c, std::array<bool, 5>* own) {
  const long M = g.sites_at(layer + 1);
  ConeInWindow up{wrap(cone::coarse_window(c.window), M), cone_parents(g, layer, c.cone)};
  if (own) {
    own->fill(false);
    for (int k = 0; k < 3; ++k)
      (*own)[k] = std::binary_search(up.cone.begin(), up.cone.end(), wrap(up.window + k, M));
    for (long s : c.cone) {
      const long u = cone::disentangler_of(s, M);
      for (int k = 0; k < 2; ++k) (*own)[3 + k] = (*own)[3 + k] || u == wrap(up.window + k, M);
    }
  }
  return up;
}

std::vector<std::size_t> window_entries(const Geometry& g, int layer, const ConeInWindow& c) {
  const int chi = g.chi[layer];
  std::vector<std::size_t> at{0};
  for (long s : c.cone) {
    const long offset = wrap(s - c.window, g.sites_at(layer));
    if (offset > 2) throw Error("site chain: a cone left its window");  // cone rule broken
    std::vector<std::size_t> next;
    for (std::size_t e : at)
      for (int v = 0; v < chi; ++v) next.push_back(e + v * window_stride(offset, chi));
    at.swap(next);
  }
  return at;
}

WindowPullback::WindowPullback(int chi_max) {
  window_.reserve(chi_max, chi_max);
  zero_.assign(window_size(chi_max), 0.0);
  sink_.assign(window_size(chi_max) * chi_max, 0.0);
}

void WindowPullback::pull(const Model& model, int layer, long fine_first, const double* f,
                          double* f_up) {
  const Geometry& g = model.geometry;
  const long coarse = wrap(cone::coarse_window(fine_first), g.sites_at(layer + 1));
  const kernels::ConeTables tab = kernels::cone_tables(model.tables.layers[layer], coarse);
  const bool odd = fine_first % 2 == 1;
  double* s = sink_.data();
  kernels::ascend_pair(g.chi[layer], g.chi[layer + 1], tab, zero_.data(), odd ? f : nullptr,
                       odd ? nullptr : f, f_up, {s, s, s, s, s}, window_);
}

}  // namespace cmera
