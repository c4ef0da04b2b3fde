// The classical binary MERA of docs/design.md §1: geometry (sites per layer, alphabet per
// layer), the conditional tables of each layer, and the top joint table. Tables are
// stored for the whole lattice on every rank (natural site order, so files and restarts
// are rank-count independent); ranks *compute* only on their causal-cone ranges and
// keep only those entries current. For tied models every layer holds one W and one U.
//
// Layouts (conditioning index first, normalized over the contiguous output block):
//   isometry     W_j(a, b | y)       -> W[j][y][a][b]         y < chi_{l+1}; a, b < chi_l
//   disentangler U_j(x, x' | a, a')   -> U[j][a][a'][x][x']    all < chi_l
//   top          P_T(y_0 .. y_{n-1}) -> top[y_0]...[y_{n-1}] (site 0 most significant)
// W_j feeds sites (2j, 2j+1) of layer l; U_j acts on sites (2j+1, 2j+2 mod 2M).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cmera {

struct Geometry {
  long sites = 0;          // N, physical sites (layer 0)
  std::vector<int> chi;    // chi[l], l = 0..depth; chi[0] is the data alphabet

  int depth() const { return static_cast<int>(chi.size()) - 1; }
  long sites_at(int layer) const { return sites >> layer; }
  long top_sites() const { return sites_at(depth()); }
  std::size_t top_size() const;  // chi[depth]^top_sites
  // Throws cmera::Error naming the problem if the geometry is not a valid MERA.
  void validate() const;
  // Bytes of one set of tables (every layer's W and U, and the top), in double so that an
  // absurd chi cannot overflow the estimate.
  double table_bytes(bool tied) const;
};

// Tables mapping layer l+1 (M coarse sites, alphabet K) to layer l (2M sites, alphabet d).
struct LayerTables {
  int d = 2;          // chi_l
  int K = 2;          // chi_{l+1}
  long coarse = 0;    // M
  bool tied = true;
  std::vector<double> W;  // [count][K][d*d]
  std::vector<double> U;  // [count][d*d][d*d]

  long count() const { return tied ? 1 : coarse; }
  std::size_t w_size() const { return static_cast<std::size_t>(K) * d * d; }
  std::size_t u_size() const { return static_cast<std::size_t>(d) * d * d * d; }
  long slot(long j) const;  // table slot of coarse site j (0 if tied), j taken mod M
  double* w(long j) { return W.data() + slot(j) * w_size(); }
  const double* w(long j) const { return W.data() + slot(j) * w_size(); }
  double* u(long j) { return U.data() + slot(j) * u_size(); }
  const double* u(long j) const { return U.data() + slot(j) * u_size(); }
  // Largest |sum - 1| over the conditional rows of W and U.
  double normalization_error() const;
};

// Largest |sum - 1| over the consecutive rows of `row` entries of v.
double row_sum_error(const std::vector<double>& v, std::size_t row);

// Parameters (or anything shaped like them: gradients, optimizer moments).
struct Tables {
  std::vector<LayerTables> layers;  // layers[l] maps l+1 -> l, l = 0..depth-1
  std::vector<double> top;

  static Tables zeros_like(const Tables& t);
  void fill(double value);
};

struct Model {
  Geometry geometry;
  bool tied = true;
  Tables tables;

  int depth() const { return geometry.depth(); }
  // Allocates tables with every conditional uniform.
  static Model uniform(const Geometry& g, bool tied);
  // Largest deviation of any conditional's sum from 1 (0 for a valid model).
  double normalization_error() const;
};

// Site bookkeeping of docs/design.md §1/§2 shared by every descend and ascend.
namespace cone {
// Index i on a ring of n sites, in [0, n) for any integer i.
inline long wrap(long i, long n) { return ((i % n) + n) % n; }
// Coarse window feeding the fine window starting at s (docs/design.md §2): floor((s-1)/2).
inline long coarse_window(long s) { return (s >= 1) ? (s - 1) / 2 : -1; }
// Disentangler producing site s of a layer with 2M sites: U_{floor((s-1)/2) mod M}.
inline long disentangler_of(long s, long M) { return (((s - 1) % (2 * M) + 2 * M) % (2 * M)) / 2; }
}  // namespace cone

}  // namespace cmera
