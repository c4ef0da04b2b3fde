// Initial tables (init.hpp). The decimation start places the model next to the exact
// MERA of a Markov chain: W copies y into (a, b), U keeps its second input and draws
// its first output from a free table. Mixing in `noise` of a random table keeps every
// entry positive, which EM needs (a zero entry stays zero under multiplicative updates).
#include "cmera/init.hpp"

#include <fmt/format.h>

#include "cmera/error.hpp"
#include "cmera/rng.hpp"

namespace cmera {

InitKind parse_init_kind(const std::string& name) {
  if (name == "decimation") return InitKind::kDecimation;
  if (name == "random") return InitKind::kRandom;
  if (name == "uniform") return InitKind::kUniform;
  throw Error(fmt::format("model.init must be one of decimation, random, uniform; got \"{}\"", name));
}

void random_row(double* row, std::size_t n, std::mt19937_64& rng) {
  // Exponential variates give a uniform draw from the simplex.
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) {
    row[i] = -std::log(1.0 - uniform01(rng));
    s += row[i];
  }
  for (std::size_t i = 0; i < n; ++i) row[i] /= s;
}

namespace {

void mix(double* row, const double* structured, std::size_t n, double noise,
         std::mt19937_64& rng) {
  std::vector<double> r(n);
  random_row(r.data(), n, rng);
  for (std::size_t i = 0; i < n; ++i) row[i] = (1.0 - noise) * structured[i] + noise * r[i];
}

// Structured isometry row for coarse value y: both outputs carry y (in base d if K > d).
void decimation_w(int d, int K, int y, double* row) {
  std::fill_n(row, d * d, 0.0);
  const int a = y % d;
  const int b = (K <= d) ? a : (y / d) % d;
  row[a * d + b] = 1.0;
}

// Structured disentangler row for inputs (a1, a2): x' = a2, x uniform.
void decimation_u(int d, int a2, double* row) {
  std::fill_n(row, d * d, 0.0);
  for (int x = 0; x < d; ++x) row[x * d + a2] = 1.0 / d;
}

}  // namespace

void initialize_layer(LayerTables& t, InitKind kind, double noise, std::mt19937_64& rng) {
  if (kind == InitKind::kUniform) return;
  const double mix_noise = (kind == InitKind::kRandom) ? 1.0 : noise;
  const int d = t.d, K = t.K;
  const std::size_t row = static_cast<std::size_t>(d) * d;
  std::vector<double> structured(row);
  for (long s = 0; s < t.count(); ++s) {
    for (int y = 0; y < K; ++y) {
      decimation_w(d, K, y, structured.data());
      mix(t.W.data() + s * t.w_size() + y * row, structured.data(), row, mix_noise, rng);
    }
    for (int a1 = 0; a1 < d; ++a1)
      for (int a2 = 0; a2 < d; ++a2) {
        decimation_u(d, a2, structured.data());
        mix(t.U.data() + s * t.u_size() + (a1 * d + a2) * row, structured.data(), row,
            mix_noise, rng);
      }
  }
}

Model initialize_model(const Geometry& g, bool tied, InitKind kind, double noise,
                       std::uint64_t seed) {
  Model m = Model::uniform(g, tied);
  if (kind == InitKind::kUniform) return m;
  auto rng = stream_rng(seed, Stream::kInit, 0);
  for (auto& t : m.tables.layers) initialize_layer(t, kind, noise, rng);
  random_row(m.tables.top.data(), m.tables.top.size(), rng);
  return m;
}

}  // namespace cmera
