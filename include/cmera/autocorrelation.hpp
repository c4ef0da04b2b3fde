// Circular autocorrelation sums of integer-valued periodic lines, for the data's C(r)
// (docs/design.md §6, docs/design-grid.md §5 "Evaluation"): the rows of a chain
// dataset; and of configurations on a torus at every displacement, for a grid dataset
// (along x, y and the diagonal from one 2D spectrum per configuration).
//
// Trade-off: the lines' power spectra are summed and transformed back once
// (Wiener-Khinchin, O(n log n) per line instead of O(n R) for the direct sum); the sums
// are integers, so rounding restores them exactly while the transforms' error bound
// stays below 1/2 (for binary data: under ~1e12 values per accumulator), and otherwise
// they are returned unrounded.
#pragma once
#include <complex>
#include <unsupported/Eigen/FFT>
#include <vector>

namespace cmera {

class CircularAutocorrelation {
 public:
  explicit CircularAutocorrelation(long n);  // lines of n values
  long length() const { return n_; }
  // Adds one line of n integer values (as doubles).
  void add(const std::vector<double>& line);
  // sum over the added lines and i of line[i] * line[(i + r) mod n], r = 1..max_lag.
  std::vector<double> sums(long max_lag) const;

 private:
  long n_;
  mutable Eigen::FFT<double> fft_;  // mutable: it caches its plans
  std::vector<double> power_;  // bins 0..n/2 of the summed |spectrum|^2 (real lines)
  std::vector<std::complex<double>> spectrum_;
  double weight_ = 0;  // sum of squares added: the scale of the transforms' rounding
};

class TorusAutocorrelation {
 public:
  TorusAutocorrelation(long lx, long ly);  // configurations of ly rows of lx values
  // Adds one configuration, value (x, y) at values[y * lx + x], integers as doubles.
  void add(const double* values);
  // sum over the added configurations and sites i of v_i v_{i + r (ex, ey)} (wrapped),
  // r = 1..max_lag.
  std::vector<double> sums(long ex, long ey, long max_lag) const;

 private:
  long lx_, ly_, half_;  // half_ = lx / 2 + 1 bins per row (real rows)
  mutable Eigen::FFT<double> fft_;  // mutable: it caches its plans
  std::vector<double> power_;       // summed |spectrum|^2, [kx < half_][ky < ly]
  std::vector<std::complex<double>> rows_, column_, spectrum_;  // one configuration's
  double weight_ = 0;
};

}  // namespace cmera
