// Hot path: descend and ascend of 3-site windows through one layer (docs/design.md §2).
// Both fine windows s = 2c+1 (odd) and s = 2c+2 (even) hang off the same coarse window c
// and share the isometry stage T3(a1..a4), so the kernels work per coarse window and
// emit both children: O(chi^5) per window. The reverse kernel recomputes the forward
// intermediates instead of storing them (memory O(window) instead of O(N chi^4)).
// The plain reference is site_marginal() (siteset.hpp); tests hold them equal.
#pragma once
#include <vector>

#include "cmera/model.hpp"

namespace cmera::kernels {

// Scratch buffers sized for one (d, K) layer; one per thread.
struct WindowScratch {
  std::vector<double> t1, t2, t3, t4, g4, g3, g2, g1, wm_second, wm_first, um_second,
      um_first, gwm_second, gwm_first, gum;
  void reserve(int d, int K);
};

// Table pointers of the five tables in the cone of coarse window c:
// W_c, W_{c+1}, W_{c+2}, U_c, U_{c+1} (equal pointers when tied).
struct ConeTables {
  const double* w0;
  const double* w1;
  const double* w2;
  const double* u0;
  const double* u1;
};
struct ConeGradients {
  double* w0;
  double* w1;
  double* w2;
  double* u0;
  double* u1;
};
ConeTables cone_tables(const LayerTables& t, long c);
ConeGradients cone_gradients(LayerTables& g, long c);

// rho: coarse window marginal [K^3]. Writes children [d^3]; a null child is skipped.
void descend_pair(int d, int K, const ConeTables& tab, const double* rho, double* child_odd,
                  double* child_even, WindowScratch& s);

// Adjoint of descend_pair. g_odd / g_even: dL/d(child) (null = no contribution).
// Adds dL/drho to g_rho and dL/d(table) to the five gradient blocks.
void ascend_pair(int d, int K, const ConeTables& tab, const double* rho, const double* g_odd,
                 const double* g_even, double* g_rho, const ConeGradients& grad,
                 WindowScratch& s);

// Marginal of top window (c, c+1, c+2 mod n) of the top joint table, and its adjoint.
void top_window(int K, long n, const double* top, long c, double* rho);
void top_window_adjoint(int K, long n, long c, const double* g_rho, double* g_top);

}  // namespace cmera::kernels
