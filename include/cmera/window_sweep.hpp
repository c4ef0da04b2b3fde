// Forward and reverse sweep of the 3-site-window objective over one rank's causal cones.
// A rank owns a contiguous block of bottom windows; at each layer up it computes the
// windows its cones reach (its block halved plus a halo of <= 2), redundantly with its
// neighbours. That trades O(depth) duplicated small windows per rank for a forward and
// reverse pass with no communication at all: only table gradients are reduced
// afterwards. Threads split each layer's coarse windows; gradient accumulation is
// ordered by a fixed colouring/chunking so results do not depend on the thread count.
#pragma once
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/model.hpp"
#include "cmera/window_kernels.hpp"

namespace cmera {

// Empirical window distributions q_s for a block of bottom windows.
struct WindowStats {
  long first = 0;   // first window (global site index)
  long count = 0;
  int d = 2;
  long samples = 0;
  std::vector<double> q;        // [count][d^3], each sums to 1
  std::vector<double> entropy;  // [count], -sum q log q (nats)

  const double* window(long k) const { return q.data() + k * d * d * d; }
};

class WindowSweep {
 public:
  WindowSweep(const Geometry& g, long first_window, long count);

  // Windows computed at each layer (layer 0: exactly the owned block).
  const CyclicRange& windows(int layer) const { return windows_[layer]; }
  // Table indices (coarse sites of layer+1) whose W/U the cones at `layer` touch.
  CyclicRange tables_touched(int layer) const;

  // Window marginals of every layer's range from the model (exact, docs/design.md §2).
  void forward(const Model& model);
  // Marginal of owned bottom window first+k after forward().
  const double* bottom(long k) const { return rho_[0].data() + k * window_size(0); }
  // Sum over owned windows of sum_x q log p (no communication).
  double log_likelihood(const WindowStats& stats) const;
  // Adds d/dtheta of (scale * sum_s sum_x q log p) to grad over the touched ranges
  // (caller zeroes grad). Requires forward() on the same model.
  void gradient(const Model& model, const WindowStats& stats, double scale, Tables& grad);

 private:
  std::size_t window_size(int layer) const;
  Geometry geometry_;
  std::vector<CyclicRange> windows_;
  std::vector<std::vector<double>> rho_;   // per layer, [range][chi^3]
  std::vector<std::vector<double>> grho_;  // per layer, dL/drho
};

}  // namespace cmera
