// Circular autocorrelation by the summed power spectrum (autocorrelation.hpp). Real
// lines: the spectrum's upper half mirrors the lower one, so only bins 0..n/2 are kept
// and transformed back (half the work of the full complex layout). A torus: its 2D
// spectrum by rows (real, half spectrum) then columns; one transform serves every
// direction, where the rows, columns and diagonals transformed one by one took three
// times the transforms and a strided gather of each line.
#include "cmera/autocorrelation.hpp"

#include <cmath>
#include <limits>

namespace cmera {

namespace {
// True when the inverse transform's rounding error (c eps log2(n) weight) is well below
// 1/2, so that rounding restores integer sums exactly.
bool integer_exact(double n, double weight) {
  return 16 * std::numeric_limits<double>::epsilon() * (std::log2(n) + 1) * weight < 0.25;
}
}  // namespace

CircularAutocorrelation::CircularAutocorrelation(long n)
    : n_(n), power_(static_cast<std::size_t>(n / 2 + 1), 0.0) {
  fft_.SetFlag(Eigen::FFT<double>::HalfSpectrum);
}

void CircularAutocorrelation::add(const std::vector<double>& line) {
  for (double v : line) weight_ += v * v;
  fft_.fwd(spectrum_, line);
  for (std::size_t f = 0; f < power_.size(); ++f) power_[f] += std::norm(spectrum_[f]);
}

std::vector<double> CircularAutocorrelation::sums(long max_lag) const {
  // The inverse transform of the summed power spectrum is sum_lines sum_i s_i s_i+r
  // (circular). Its error is below c eps log2(n) weight, so rounding restores the integer
  // sums whenever that bound is well below 1/2; the result then equals the direct sum bit
  // for bit, however the lines were split between accumulators.
  std::vector<std::complex<double>> p(power_.begin(), power_.end());
  std::vector<double> circular;
  fft_.inv(circular, p, n_);
  const bool exact = integer_exact(static_cast<double>(n_), weight_);
  std::vector<double> out(static_cast<std::size_t>(max_lag), 0.0);
  for (long r = 1; r <= max_lag; ++r) out[r - 1] = exact ? std::nearbyint(circular[r]) : circular[r];
  return out;
}


TorusAutocorrelation::TorusAutocorrelation(long lx, long ly)
    : lx_(lx), ly_(ly), half_(lx / 2 + 1), power_(static_cast<std::size_t>(half_ * ly), 0.0),
      rows_(static_cast<std::size_t>(half_ * ly)), column_(static_cast<std::size_t>(ly)),
      spectrum_(static_cast<std::size_t>(ly)) {
  fft_.SetFlag(Eigen::FFT<double>::HalfSpectrum);
}

void TorusAutocorrelation::add(const double* values) {
  for (long i = 0; i < lx_ * ly_; ++i) weight_ += values[i] * values[i];
  for (long y = 0; y < ly_; ++y) fft_.fwd(rows_.data() + y * half_, values + y * lx_, lx_);
  for (long kx = 0; kx < half_; ++kx) {
    for (long y = 0; y < ly_; ++y) column_[y] = rows_[y * half_ + kx];
    fft_.fwd(spectrum_.data(), column_.data(), ly_);
    double* power = power_.data() + kx * ly_;
    for (long ky = 0; ky < ly_; ++ky) power[ky] += std::norm(spectrum_[ky]);
  }
}

std::vector<double> TorusAutocorrelation::sums(long ex, long ey, long max_lag) const {
  // The inverse 2D transform of the summed power spectrum: columns (complex), then rows
  // from their half spectrum (the power spectrum of real data is symmetric, so each row's
  // upper half mirrors the lower one).
  std::vector<std::complex<double>> rows(static_cast<std::size_t>(half_ * ly_)), column(static_cast<std::size_t>(ly_));
  std::vector<std::complex<double>> power(static_cast<std::size_t>(ly_));
  for (long kx = 0; kx < half_; ++kx) {
    for (long ky = 0; ky < ly_; ++ky) power[ky] = power_[kx * ly_ + ky];
    fft_.inv(column.data(), power.data(), ly_);
    for (long y = 0; y < ly_; ++y) rows[y * half_ + kx] = column[y];
  }
  std::vector<double> torus(static_cast<std::size_t>(lx_ * ly_));
  for (long y = 0; y < ly_; ++y) fft_.inv(torus.data() + y * lx_, rows.data() + y * half_, lx_);
  const bool exact = integer_exact(static_cast<double>(lx_ * ly_), weight_);
  std::vector<double> out(static_cast<std::size_t>(max_lag), 0.0);
  for (long r = 1; r <= max_lag; ++r) {
    const double v = torus[((r * ey) % ly_) * lx_ + (r * ex) % lx_];
    out[r - 1] = exact ? std::nearbyint(v) : v;
  }
  return out;
}

}  // namespace cmera
