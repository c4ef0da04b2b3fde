// The statistics pass (statistics.hpp): one collective sweep over the dataset in sample
// blocks (data.chunk_samples rounded to whole HDF5 chunks, their memory checked first). Windows are counted per rank over its column slab (owned windows + 2 halo
// columns); threads split windows so counting needs no atomics. The data's two-point
// function splits samples instead: it needs whole rows, for the power spectrum.
#include "cmera/statistics.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>

#include "cmera/autocorrelation.hpp"
#include "cmera/error.hpp"
#include "cmera/memory.hpp"
#include "cmera/multi_target.hpp"

namespace cmera {

namespace {

constexpr long kWindowBlock = 256;

// stats.entropy from stats.q, one entry per window.
void set_window_entropies(WindowStats& stats) {
  const std::size_t cells = static_cast<std::size_t>(stats.d) * stats.d * stats.d;
  stats.entropy.resize(static_cast<std::size_t>(stats.count));
  for (long k = 0; k < stats.count; ++k)
    stats.entropy[static_cast<std::size_t>(k)] = entropy_of({stats.window(k), cells});
}

// 16 or 32 byte lanes: one SSE2 or AVX2 instruction per operation (two SSE2 ones for 32
// lanes in the baseline clone). Two named types: GCC drops vector_size from an alias
// template whose size depends on its parameter.
using Bytes16 = std::uint8_t __attribute__((vector_size(16)));
using Bytes32 = std::uint8_t __attribute__((vector_size(32)));

// Inlined into each clone, so a vector never crosses a call (whose ABI would differ between
// the clones: -Wpsabi, which CMakeLists.txt silences for this file).
template <class Bytes>
[[gnu::always_inline]] inline Bytes load_bytes(const std::uint8_t* p) {
  Bytes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Rows per flush of the 8-bit partial sums: they count at most this many ones.
constexpr long kByteSumRows = 255;

// Per-column sums over rows [r0, r1) of x_k, x_k x_k+1, x_k x_k+2 and x_k x_k+1 x_k+2 for
// the `vec` >= W windows from column `first`, added to s0, s01, s02 and s012. W windows at
// a time keep their four sums in byte-lane registers while rows stream past (10 vector
// instructions per W bytes, instead of one scattered increment per window); the block of
// at most 255 rows (33 KB of a 130-byte slab) is re-read from L1/L2 for the next W
// windows, and the byte sums are flushed to 64-bit totals before they can overflow. When
// vec is not a multiple of W the last block overlaps the one before it and flushes only its
// new windows.
template <class Bytes>
[[gnu::always_inline]] inline void add_window_moments(const std::uint8_t* buf, long width,
                                                      long first, long vec, long r0, long r1,
                                                      long long* s0, long long* s01,
                                                      long long* s02, long long* s012) {
  constexpr long W = sizeof(Bytes);
  for (long done = 0; done < vec;) {
    const long k0 = std::min(done, vec - W);
    Bytes a0{}, a01{}, a02{}, a012{};
    const std::uint8_t* x = buf + r0 * width + first + k0;
    for (long r = r0; r < r1; ++r, x += width) {
      const Bytes v0 = load_bytes<Bytes>(x), v1 = load_bytes<Bytes>(x + 1),
                  v2 = load_bytes<Bytes>(x + 2);
      const Bytes v01 = v0 & v1;
      a0 += v0;
      a01 += v01;
      a02 += v0 & v2;
      a012 += v01 & v2;
    }
    for (int j = static_cast<int>(done - k0); j < W; ++j) {
      s0[k0 + j] += a0[j];
      s01[k0 + j] += a01[j];
      s02[k0 + j] += a02[j];
      s012[k0 + j] += a012[j];
    }
    done = k0 + W;
  }
}

// Histogram over rows [r0, r1) of a window k whose columns wrap around a whole-ring slab,
// added to h. Four copies of the 8 bins, one per row mod 4, so that an increment never waits
// for the one before it (rows with the same pattern follow each other in correlated data);
// on one rank, one histogram of the last two windows cost a quarter of the vector pass over
// the other 126 (measured at 128 sites).
[[gnu::always_inline]] inline void add_wrapped_window(const std::uint8_t* buf, long width, long k,
                                                      long r0, long r1, long long* h) {
  const long k1 = (k + 1) % width, k2 = (k + 2) % width;
  int bins[4][8] = {};  // at most 255 rows
  for (long r = r0; r < r1; ++r) {
    const std::uint8_t* x = buf + r * width;
    ++bins[r & 3][x[k] * 4 + x[k1] * 2 + x[k2]];
  }
  for (int code = 0; code < 8; ++code)
    h[code] += bins[0][code] + bins[1][code] + bins[2][code] + bins[3][code];
}

// In blocks of 255 rows (about 33 KB of a 130-byte slab, re-read from L1/L2): the sums of
// add_window_moments for the `vec` windows from `first`, 32 windows a block when there are
// that many (16 otherwise), plus the last two single sums and the last pair sum, x_vec,
// x_vec+1 and x_vec x_vec+1 (needed by windows vec-2 and vec-1), and the histograms of the
// `wrapped` windows that follow, added to wrapped_counts (8 per window).
CMERA_MULTI_TARGET
void window_moments(const std::uint8_t* buf, long rows, long width, long first, long vec,
                    long wrapped, long long* s0, long long* s01, long long* s02,
                    long long* s012, long long* wrapped_counts) {
  for (long r0 = 0; r0 < rows; r0 += kByteSumRows) {
    const long r1 = std::min(rows, r0 + kByteSumRows);
    if (vec >= 32)
      add_window_moments<Bytes32>(buf, width, first, vec, r0, r1, s0, s01, s02, s012);
    else
      add_window_moments<Bytes16>(buf, width, first, vec, r0, r1, s0, s01, s02, s012);
    for (long r = r0; r < r1; ++r) {
      const std::uint8_t* x = buf + r * width + first + vec;
      s0[vec] += x[0];
      s0[vec + 1] += x[1];
      s01[vec] += x[0] & x[1];
    }
    for (long i = 0; i < wrapped; ++i)
      add_wrapped_window(buf, width, first + vec + i, r0, r1, wrapped_counts + 8 * i);
  }
}

// Adds to h (index 4 x_k + 2 x_k+1 + x_k+2) a window's histogram over `rows` rows from its
// sums of a = x_k, b = x_k+1, c = x_k+2 and of their products, by inclusion-exclusion
// (x in {0, 1}, so x^2 = x).
void add_binary_histogram(long long* h, long rows, long long a, long long b, long long c,
                          long long ab, long long bc, long long ac, long long abc) {
  h[7] += abc;
  h[6] += ab - abc;
  h[5] += ac - abc;
  h[3] += bc - abc;
  h[4] += a - ab - ac + abc;
  h[2] += b - ab - bc + abc;
  h[1] += c - ac - bc + abc;
  h[0] += rows - a - b - c + ab + ac + bc - abc;
}

}  // namespace

CMERA_MULTI_TARGET
std::uint8_t max_value(const std::uint8_t* p, std::size_t n) {
  std::uint8_t top = 0;
  for (std::size_t i = 0; i < n; ++i) top = std::max(top, p[i]);
  return top;
}

// First out-of-alphabet value of a chunk (lowest sample, then site), if any.
BadValue find_bad_value(const std::vector<std::uint8_t>& buf, long first_sample, long rows,
                        const CyclicRange& cols, int alphabet) {
  // Fast path: one vectorizable max over the chunk; the position search runs only when
  // some value is out of range.
  if (max_value(buf.data(), buf.size()) < alphabet) return {};
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

// Rows per read: data.chunk_samples as the dataset's layout wants it (whole chunks,
// DatasetReader::block_rows), at most the `rows` there are, refused when `buffers`
// blocks `width` sites wide, plus the reader's block of all sites (chunked layouts; the
// bound counts it always), would not fit in memory.
long read_block(const Comm& comm, const DatasetReader& data, long chunk_samples, long rows,
                long width, int buffers) {
  const long block = std::min(data.block_rows(chunk_samples), std::max(rows, 1L));
  require_memory(comm, static_cast<double>(block) * static_cast<double>(width * buffers + data.shape().sites),
                 fmt::format("data.chunk_samples = {} ({} samples x {} sites per read)",
                             chunk_samples, block, width),
                 "for its read buffers");
  return block;
}

namespace {

// Calls f(first sample, rows) for consecutive sample chunks. Every rank runs the same
// chunks, so the collective reads inside f line up.
template <class F>
void for_each_chunk(long samples, long chunk, F&& f) {
  for (long s0 = 0; s0 < samples; s0 += chunk) f(s0, std::min(chunk, samples - s0));
}

}  // namespace

void count_windows(const std::uint8_t* buf, long rows, long width, long first, long n, int d,
                   long long* counts) {
  const long w = static_cast<long>(d) * d * d;
  // Column k + j wrapped onto the slab (j <= 2 < width: a compare, not a division).
  const auto col = [width](long k) { return k < width ? k : k - width; };
  for (long r = 0; r < rows; ++r) {
    const std::uint8_t* row = buf + r * width;
    for (long k = first; k < first + n; ++k)
      ++counts[(k - first) * w + (row[k] * d + row[col(k + 1)]) * d + row[col(k + 2)]];
  }
}

void count_binary_windows(const std::uint8_t* buf, long rows, long width, long first, long n,
                          long long* counts) {
  // Windows [plain, n) wrap around a whole-ring slab; a slab narrower than 16 windows
  // takes the histogram path.
  const long plain = std::max(0L, std::min(n, width - 2 - first));
  if (plain < 16) {
    count_windows(buf, rows, width, first, n, 2, counts);
    return;
  }
  const std::size_t m = static_cast<std::size_t>(plain + 2);
  std::vector<long long> s(4 * m, 0);
  long long* s0 = s.data();    // x_k, k < plain + 2
  long long* s01 = s0 + m;     // x_k x_k+1, k < plain + 1
  long long* s02 = s01 + m;    // x_k x_k+2, k < plain
  long long* s012 = s02 + m;   // x_k x_k+1 x_k+2, k < plain
  window_moments(buf, rows, width, first, plain, n - plain, s0, s01, s02, s012, counts + plain * 8);
  for (long k = 0; k < plain; ++k)
    add_binary_histogram(counts + k * 8, rows, s0[k], s0[k + 1], s0[k + 2], s01[k], s01[k + 1],
                         s02[k], s012[k]);
}

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
  const long block = read_block(comm, data, chunk_samples, shape.samples, cols.length, 1);
  for_each_chunk(shape.samples, block, [&](long s0, long rows) {
    data.read(s0, rows, cols, buf);
    if (bad.sample < 0) bad = find_bad_value(buf, s0, rows, cols, d);
    if (bad.sample >= 0) return;  // keep taking part in the collective reads
    // Threads take blocks of windows and stream the rows through them, so reads are
    // sequential within a row and each block's counts stay in one thread's cache.
#pragma omp parallel for schedule(static)
    for (long block = 0; block < count; block += kWindowBlock) {
      const long n = std::min(kWindowBlock, count - block);
      if (d == 2)
        count_binary_windows(buf.data(), rows, cols.length, block, n, counts.data() + block * w);
      else
        count_windows(buf.data(), rows, cols.length, block, n, d, counts.data() + block * w);
    }
  });
  check_values(comm, data, bad, d);
  st.q.resize(counts.size());
  for (std::size_t k = 0; k < counts.size(); ++k)
    st.q[k] = static_cast<double>(counts[k]) / static_cast<double>(shape.samples);
  set_window_entropies(st);
  return st;
}

double entropy_of(std::span<const double> q) {
  double h = 0;
  for (const double p : q)
    if (p > 0) h -= p * std::log(p);
  return h;
}

void average_with_flip(std::span<double> q, std::size_t cells) {
  for (std::size_t b = 0; b < q.size(); b += cells)
    for (std::size_t c = 0, f = cells - 1; c < f; ++c, --f) {
      const double mean = 0.5 * (q[b + c] + q[b + f]);
      q[b + c] = q[b + f] = mean;
    }
}

void average_with_flip(WindowStats& stats) {
  average_with_flip(stats.q, static_cast<std::size_t>(stats.d) * stats.d * stats.d);
  set_window_entropies(stats);
}

void average_with_flip(PairStats& stats) {
  average_with_flip(stats.q, static_cast<std::size_t>(stats.d) * stats.d);
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
  if (distances.empty()) return st;  // same on every rank: no collective read is skipped
  // Counts and the distributions made from them (8 bytes each).
  require_memory(comm, 16.0 * static_cast<double>(distances.size()) * static_cast<double>(npairs * dd),
                 fmt::format("objective.pair_distances ({} distances, {} pair sites per rank)",
                             distances.size(), npairs),
                 "for its pair distributions");
  std::vector<long long> counts(distances.size() * npairs * dd, 0);
  const CyclicRange base = CyclicRange::make(first, count, n);
  std::vector<std::uint8_t> left, right;
  BadValue bad;
  const long block = read_block(comm, data, chunk_samples, shape.samples, count, 2);
  for_each_chunk(shape.samples, block, [&](long s0, long rows) {
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
  const BlockPartition part{shape.samples, comm.size()};
  const long first = part.begin(comm.rank()), count = part.count(comm.rank());
  const long most = (shape.samples + comm.size() - 1) / comm.size();  // largest block
  const CyclicRange all = CyclicRange::make(0, n, n);
  CircularAutocorrelation rows_acf(n);
  std::vector<double> row(static_cast<std::size_t>(n));
  std::vector<std::uint8_t> buf;
  BadValue bad;
  const long block = read_block(comm, data, chunk_samples, most, n, 1);
  // Every rank makes the same number of (collective) reads; a short block reads 0 rows.
  for (long c0 = 0; c0 < most; c0 += block) {
    const long rows = std::clamp(count - c0, 0L, block);
    data.read(first + std::min(c0, count), rows, all, buf);
    if (bad.sample < 0) bad = find_bad_value(buf, first + c0, rows, all, alphabet);
    if (bad.sample >= 0) continue;
    for (long k = 0; k < rows; ++k) {
      for (long i = 0; i < n; ++i) row[i] = spin_value(buf[k * n + i], alphabet);
      rows_acf.add(row);
    }
  }
  check_values(comm, data, bad, alphabet);
  // Integer sums (exact, autocorrelation.hpp), so the total is the same at any rank count.
  std::vector<double> sums = rows_acf.sums(max_distance);
  comm.sum_inplace(sums.data(), sums.size());
  for (double& s : sums) s /= static_cast<double>(n) * static_cast<double>(shape.samples);
  return sums;
}

}  // namespace cmera
