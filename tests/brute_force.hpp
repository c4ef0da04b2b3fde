// Independent reference for tests: the FULL joint distribution of every layer of a
// MERA as one dense vector (row-major, site 0 most significant), built from the top
// table downward by applying each isometry as a 1-mode -> 2-mode map and each
// disentangler as a 2-mode -> 2-mode map on the whole vector. It shares nothing with
// the library's cone code (not even LayerTables::slot): plain loops over the full index
// space, exponential in N on purpose, so only for N <= 16 with chi^N <~ 1e6.
#pragma once
#include <cstddef>
#include <vector>

#include "cmera/model.hpp"

namespace brute {

// Dense tensor with an explicit list of mode dimensions (mode 0 most significant).
struct Dense {
  std::vector<int> dims;
  std::vector<double> p;

  std::size_t stride(std::size_t mode) const {
    std::size_t s = 1;
    for (std::size_t m = mode + 1; m < dims.size(); ++m) s *= static_cast<std::size_t>(dims[m]);
    return s;
  }
};

// Replaces mode `pos` (dimension K) by two adjacent modes (d, d) through table
// T[y][a][b]: out[.., a, b, ..] = sum_y in[.., y, ..] T[y][a][b].
inline Dense split_mode(const Dense& in, std::size_t pos, int d, const double* T) {
  const int K = in.dims[pos];
  const std::size_t right = in.stride(pos);
  const std::size_t left = in.p.size() / (right * K);
  Dense out;
  out.dims = in.dims;
  out.dims[pos] = d;
  out.dims.insert(out.dims.begin() + static_cast<long>(pos) + 1, d);
  out.p.assign(left * d * d * right, 0.0);
  for (std::size_t l = 0; l < left; ++l)
    for (int y = 0; y < K; ++y)
      for (int ab = 0; ab < d * d; ++ab)
        for (std::size_t r = 0; r < right; ++r)
          out.p[(l * d * d + ab) * right + r] += in.p[(l * K + y) * right + r] * T[y * d * d + ab];
  return out;
}

// Maps modes (p, q) (any positions, both of dimension d) through U[a_p][a_q][x_p][x_q].
inline Dense mix_modes(const Dense& in, std::size_t p, std::size_t q, const double* U) {
  const int d = in.dims[p];
  const std::size_t sp = in.stride(p), sq = in.stride(q);
  Dense out{in.dims, std::vector<double>(in.p.size(), 0.0)};
  for (std::size_t i = 0; i < in.p.size(); ++i) {
    const int ap = static_cast<int>((i / sp) % d), aq = static_cast<int>((i / sq) % d);
    const std::size_t base = i - ap * sp - aq * sq;
    for (int xp = 0; xp < d; ++xp)
      for (int xq = 0; xq < d; ++xq)
        out.p[base + xp * sp + xq * sq] += in.p[i] * U[((ap * d + aq) * d + xp) * d + xq];
  }
  return out;
}

// joints[l]: full joint of the N_l sites of layer l, l = 0..depth.
inline std::vector<Dense> layer_joints(const cmera::Model& model) {
  const cmera::Geometry& g = model.geometry;
  const int T = g.depth();
  std::vector<Dense> joints(static_cast<std::size_t>(T) + 1);
  joints[T].dims.assign(static_cast<std::size_t>(g.top_sites()), g.chi[T]);
  joints[T].p = model.tables.top;
  for (int l = T - 1; l >= 0; --l) {
    const cmera::LayerTables& t = model.tables.layers[l];
    const long M = g.sites_at(l + 1);
    const int d = g.chi[l];
    auto W = [&](long j) { return t.W.data() + (model.tied ? 0 : j) * t.w_size(); };
    auto U = [&](long j) { return t.U.data() + (model.tied ? 0 : j) * t.u_size(); };
    // Splitting from the right keeps coarse mode j at position j.
    Dense a = joints[l + 1];
    for (long j = M - 1; j >= 0; --j) a = split_mode(a, static_cast<std::size_t>(j), d, W(j));
    for (long j = 0; j < M; ++j)
      a = mix_modes(a, static_cast<std::size_t>(2 * j + 1),
                    static_cast<std::size_t>((2 * j + 2) % (2 * M)), U(j));
    joints[l] = std::move(a);
  }
  return joints;
}

// Marginal of a full joint onto an ordered list of distinct sites (sites[0] most
// significant in the result).
inline std::vector<double> marginalize(const Dense& joint, const std::vector<long>& sites) {
  std::vector<std::size_t> stride(sites.size());
  std::size_t size = 1;
  for (std::size_t k = 0; k < sites.size(); ++k) {
    stride[k] = joint.stride(static_cast<std::size_t>(sites[k]));
    size *= static_cast<std::size_t>(joint.dims[sites[k]]);
  }
  std::vector<double> out(size, 0.0);
  for (std::size_t i = 0; i < joint.p.size(); ++i) {
    std::size_t o = 0;
    for (std::size_t k = 0; k < sites.size(); ++k)
      o = o * joint.dims[sites[k]] + (i / stride[k]) % joint.dims[sites[k]];
    out[o] += joint.p[i];
  }
  return out;
}

}  // namespace brute
