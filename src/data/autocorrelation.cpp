// Circular autocorrelation by the summed power spectrum (autocorrelation.hpp). Real
// lines: the spectrum's upper half mirrors the lower one, so only bins 0..n/2 are kept
// and transformed back (half the work of the full complex layout).
#include "cmera/autocorrelation.hpp"

#include <cmath>
#include <limits>

namespace cmera {

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
  const bool exact = 16 * std::numeric_limits<double>::epsilon() *
                         (std::log2(static_cast<double>(n_)) + 1) * weight_ < 0.25;
  std::vector<double> out(static_cast<std::size_t>(max_lag), 0.0);
  for (long r = 1; r <= max_lag; ++r) out[r - 1] = exact ? std::nearbyint(circular[r]) : circular[r];
  return out;
}

}  // namespace cmera
