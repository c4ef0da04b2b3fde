// One lattice site seen from above: the 3-site window that holds it at every layer, its
// own causal cone inside that window, and the pull-back of functions of the site through
// the window kernels. Shared by the multiscale pair terms (training) and the exact
// two-point function (eval): both split a far pair's joint at the layer where the two
// cones meet, below which each site only needs P(site | its cone there) (docs/design.md §3).
//
// Trade-off: a function is carried on the whole window (chi^3 entries) rather than on
// the cone's own one or two sites, so the pull-back is the O(chi^5) window kernel that
// training already runs and tests, not a second, cone-shaped kernel.
#pragma once
#include <array>
#include <cstddef>
#include <vector>

#include "cmera/model.hpp"
#include "cmera/window_kernels.hpp"

namespace cmera {

struct ConeInWindow {
  long window = 0;         // first site of the 3-site window (wrapped)
  std::vector<long> cone;  // the site's own cone (sorted), inside the window
};

// The site at place `position` (0, 1 or 2) of the layer-0 window starting at `first`.
ConeInWindow site_in_window(const Geometry& g, long first, int position);

// The same one layer up, from `layer` to layer+1: the coarse window feeding the window,
// and the cone's parents. `own`, when given, says which of the five tables under the
// window (W of the three coarse sites, U of the first two, all of `layer`) the cone reads.
ConeInWindow ascend(const Geometry& g, int layer, const ConeInWindow& c,
                    std::array<bool, 5>* own = nullptr);

// Window entry (row-major over the window's places) of each state of the cone (row-major
// over the cone's sites, first most significant, as ConePlan orders them); the window's
// other sites at 0.
std::vector<std::size_t> window_entries(const Geometry& g, int layer, const ConeInWindow& c);

// Row-major stride of place `offset` (0, 1 or 2) of a 3-site window with alphabet chi.
std::size_t window_stride(long offset, int chi);
// Entries of a function of a 3-site window with alphabet chi: chi^3.
inline std::size_t window_size(int chi) { return static_cast<std::size_t>(chi) * chi * chi; }

// Whether two sorted site sets share no site (then they share no table either).
bool disjoint(const std::vector<long>& a, const std::vector<long>& b);

// f_up(c) += sum_x P(fine window = x | coarse window = c) f(x): the adjoint of the
// descend through one layer, which kernels::ascend_pair computes along with a table
// gradient; that gradient goes to a private sink. One per thread (holds scratch).
class WindowPullback {
 public:
  explicit WindowPullback(int chi_max);
  // f: function of the window starting at `fine_first` of `layer` [chi_layer^3];
  // f_up: function of its coarse window [chi_{layer+1}^3], added to.
  void pull(const Model& model, int layer, long fine_first, const double* f, double* f_up);

 private:
  kernels::WindowScratch window_;
  std::vector<double> zero_, sink_;
};

}  // namespace cmera
