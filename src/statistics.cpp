// The statistics pass (statistics.hpp): one collective sweep over the dataset in sample
// chunks. Windows are counted per rank over its column slab (owned windows + 2 halo
// columns); the data's two-point function per rank over its sites + R halo columns.
// Threads split windows (resp. sites) so counting needs no atomics.
#include "cmera/statistics.hpp"

#include <omp.h>

#include <cmath>
#include <fmt/format.h>

#include "cmera/error.hpp"

namespace cmera {

namespace {

constexpr long kWindowBlock = 256;

struct BadValue {
  long sample = -1;
  long site = -1;
  int value = 0;
};

// First out-of-alphabet value of a chunk (lowest sample, then site), if any.
BadValue find_bad_value(const std::vector<std::uint8_t>& buf, long first_sample, long rows,
                        const CyclicRange& cols, int alphabet) {
  for (long r = 0; r < rows; ++r)
    for (long k = 0; k < cols.length; ++k) {
      const int v = buf[r * cols.length + k];
      if (v >= alphabet) return {first_sample + r, cols.at(k), v};
    }
  return {};
}

void check_values(const Comm& comm, const DatasetReader& data, const BadValue& bad, int alphabet) {
  comm.check(bad.sample < 0,
             fmt::format("{}: /configs[{}, {}] = {} is outside the alphabet 0..{} "
                         "(model.chi[0] = {})",
                         data.path(), bad.sample, bad.site, bad.value, alphabet - 1, alphabet));
}

// Calls f(first sample, rows) for consecutive sample chunks. Every rank runs the same
// chunks, so the collective reads inside f line up.
template <class F>
void for_each_chunk(long samples, long chunk, F&& f) {
  for (long s0 = 0; s0 < samples; s0 += chunk) f(s0, std::min(chunk, samples - s0));
}

}  // namespace

WindowStats count_window_stats(const Comm& comm, const DatasetReader& data, int alphabet,
                               long first_window, long count, long chunk_samples) {
  const DatasetShape& shape = data.shape();
  const int d = alphabet;
  const long w = static_cast<long>(d) * d * d;
  WindowStats st;
  st.first = first_window;
  st.count = count;
  st.d = d;
  st.samples = shape.samples;
  std::vector<long long> counts(static_cast<std::size_t>(count * w), 0);
  const CyclicRange cols =
      count > 0 ? CyclicRange::make(first_window, count + 2, shape.sites) : CyclicRange::make(0, 0, shape.sites);
  std::vector<std::uint8_t> buf;
  BadValue bad;
  for_each_chunk(shape.samples, chunk_samples, [&](long s0, long rows) {
    data.read(s0, rows, cols, buf);
    if (bad.sample < 0) bad = find_bad_value(buf, s0, rows, cols, d);
    if (bad.sample >= 0) return;  // keep taking part in the collective reads
    // Window k covers slab columns k, k+1, k+2 (mod the slab width when the slab is the
    // whole ring). Threads take blocks of windows and stream the rows through them, so
    // reads are sequential within a row and each count array stays in one thread's cache.
    const long width = cols.length;
#pragma omp parallel for schedule(static)
    for (long block = 0; block < count; block += kWindowBlock) {
      const long end = std::min(count, block + kWindowBlock);
      for (long r = 0; r < rows; ++r) {
        const std::uint8_t* row = buf.data() + r * width;
        const long plain = std::min(end, width - 2);  // windows that do not wrap
        for (long k = block; k < plain; ++k)
          ++counts[k * w + (row[k] * d + row[k + 1]) * d + row[k + 2]];
        for (long k = std::max(block, plain); k < end; ++k)
          ++counts[k * w + (row[k] * d + row[(k + 1) % width]) * d + row[(k + 2) % width]];
      }
    }
  });
  check_values(comm, data, bad, d);
  st.q.resize(counts.size());
  st.entropy.assign(static_cast<std::size_t>(count), 0.0);
  for (long k = 0; k < count; ++k)
    for (long x = 0; x < w; ++x) {
      const double q = static_cast<double>(counts[k * w + x]) / static_cast<double>(shape.samples);
      st.q[k * w + x] = q;
      if (q > 0) st.entropy[k] -= q * std::log(q);
    }
  return st;
}

PairStats count_pair_stats(const Comm& comm, const DatasetReader& data, int alphabet,
                           long first, long count, long stride,
                           const std::vector<long>& distances, long chunk_samples) {
  const DatasetShape& shape = data.shape();
  const long n = shape.sites, dd = static_cast<long>(alphabet) * alphabet;
  PairStats st;
  st.distances = distances;
  st.d = alphabet;
  std::vector<long> columns;  // slab column of each pair site
  for (long k = 0; k < count; ++k)
    if ((first + k) % stride == 0) {
      st.sites.push_back(first + k);
      columns.push_back(k);
    }
  const long npairs = static_cast<long>(columns.size());
  std::vector<long long> counts(distances.size() * npairs * dd, 0);
  const CyclicRange base = CyclicRange::make(first, count, n);
  std::vector<std::uint8_t> left, right;
  BadValue bad;
  for_each_chunk(shape.samples, chunk_samples, [&](long s0, long rows) {
    data.read(s0, rows, base, left);
    if (bad.sample < 0) bad = find_bad_value(left, s0, rows, base, alphabet);
    for (std::size_t ri = 0; ri < distances.size(); ++ri) {
      const CyclicRange shifted = CyclicRange::make(first + distances[ri], count, n);
      data.read(s0, rows, shifted, right);
      if (bad.sample < 0) bad = find_bad_value(right, s0, rows, shifted, alphabet);
      if (bad.sample >= 0) continue;
#pragma omp parallel for schedule(static)
      for (long p = 0; p < npairs; ++p) {
        const long k = columns[p];
        long long* ck = counts.data() + (ri * npairs + p) * dd;
        for (long r = 0; r < rows; ++r) ++ck[left[r * count + k] * alphabet + right[r * count + k]];
      }
    }
  });
  check_values(comm, data, bad, alphabet);
  st.q.resize(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i)
    st.q[i] = static_cast<double>(counts[i]) / static_cast<double>(shape.samples);
  return st;
}

std::vector<double> data_correlation(const Comm& comm, const DatasetReader& data, int alphabet,
                                     long max_distance, long chunk_samples) {
  const DatasetShape& shape = data.shape();
  const long n = shape.sites;
  const BlockPartition sites{n, comm.size()};
  const long first = sites.begin(comm.rank()), count = sites.count(comm.rank());
  const CyclicRange cols = count > 0 ? CyclicRange::make(first, count + max_distance, n)
                                     : CyclicRange::make(0, 0, n);
  std::vector<double> sums(static_cast<std::size_t>(max_distance), 0.0);
  std::vector<std::uint8_t> buf;
  std::vector<double> spins;
  BadValue bad;
  for_each_chunk(shape.samples, chunk_samples, [&](long s0, long rows) {
    data.read(s0, rows, cols, buf);
    if (bad.sample < 0) bad = find_bad_value(buf, s0, rows, cols, alphabet);
    if (bad.sample >= 0) return;
    spins.resize(buf.size());
    for (std::size_t i = 0; i < buf.size(); ++i) spins[i] = spin_value(buf[i], alphabet);
#pragma omp parallel for schedule(static)
    for (long r = 1; r <= max_distance; ++r) {
      double acc = 0;
      // Column k of the slab is site first + k; its partner is column k + r, wrapped
      // when the slab is the whole ring.
      const long width = cols.length;
      for (long row = 0; row < rows; ++row) {
        const double* sp = spins.data() + row * width;
        for (long k = 0; k < count; ++k) acc += sp[k] * sp[(k + r) % width];
      }
      sums[r - 1] += acc;
    }
  });
  check_values(comm, data, bad, alphabet);
  comm.sum_inplace(sums.data(), sums.size());
  for (double& s : sums) s /= static_cast<double>(n) * static_cast<double>(shape.samples);
  return sums;
}

}  // namespace cmera
