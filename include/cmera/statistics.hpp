// The one pass over the data (docs/design.md §5): empirical window distributions of a rank's
// owned windows and the data's two-point function. Reads run in collective sample chunks
// of each rank's column slab plus halo; values outside the alphabet are an error naming
// the file, sample and site.
#pragma once
#include <span>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/io.hpp"
#include "cmera/pair_terms.hpp"
#include "cmera/window_sweep.hpp"

namespace cmera {

// Window histogram kernels over a chunk of `rows` rows of a slab `width` columns wide:
// counts[(k - first) * d^3 + code] += #rows with window k (columns k, k+1, k+2 mod width)
// equal to code, for k in [first, first + n). count_windows is the plain reference;
// count_binary_windows (d = 2) derives the same counts from vectorizable sums of
// products. Tests hold them equal.
void count_windows(const std::uint8_t* buf, long rows, long width, long first, long n, int d,
                   long long* counts);
void count_binary_windows(const std::uint8_t* buf, long rows, long width, long first, long n,
                          long long* counts);

WindowStats count_window_stats(const Comm& comm, const DatasetReader& data, int alphabet,
                               long first_window, long count, long chunk_samples);

// Empirical pair distributions of {i, i+r} for the sites i of [first, first+count) that
// are multiples of `stride`, for every r in `distances`: one extra collective slab read
// per distance and chunk.
PairStats count_pair_stats(const Comm& comm, const DatasetReader& data, int alphabet,
                           long first, long count, long stride,
                           const std::vector<long>& distances, long chunk_samples);

// objective.symmetry = "spin_flip" (docs/design.md §3): the data's law is taken as
// unchanged by x -> d - 1 - x at every site at once, so each distribution over k sites
// becomes the mean of itself and its flip, exactly the statistics of the samples together
// with their flipped copies. Flipping every base-d digit of a code c gives d^k - 1 - c:
// the flip reverses each block of `cells` = d^k entries of q.
void average_with_flip(std::span<double> q, std::size_t cells);
// The same for every window (its entropy recomputed) and every pair of a chain's statistics.
void average_with_flip(WindowStats& stats);
void average_with_flip(PairStats& stats);
// -sum q log q (nats) of one distribution.
double entropy_of(std::span<const double> q);

// Shared by every pass over a dataset (chains and grids): the first value outside the
// alphabet in a chunk of `rows` samples of the columns `cols` (lowest sample, then site;
// sample -1 if none), the collective error that names it (file, sample, site), and the
// rows per read for data.chunk_samples (whole chunks, at most `rows`), refused when
// `buffers` blocks of `width` sites plus the reader's own block would not fit in memory.
struct BadValue {
  long sample = -1;
  long site = -1;
  int value = 0;
};
// The largest of n bytes (the fast check before any search for a bad value).
std::uint8_t max_value(const std::uint8_t* p, std::size_t n);
BadValue find_bad_value(const std::vector<std::uint8_t>& buf, long first_sample, long rows,
                        const CyclicRange& cols, int alphabet);
void check_values(const Comm& comm, const DatasetReader& data, const BadValue& bad, int alphabet);
long read_block(const Comm& comm, const DatasetReader& data, long chunk_samples, long rows,
                long width, int buffers);

// Spin value used in correlations: s = 2x - 1 for a binary alphabet, s = x otherwise.
inline double spin_value(int x, int alphabet) { return alphabet == 2 ? 2.0 * x - 1.0 : x; }

// Data's <s_i s_{i+r}> averaged over i and samples, r = 1..max_distance (collective;
// ranks split the samples, every rank gets the full result). O(S N log N) through the
// power spectrum, exact (integer sums restored by rounding) for any realistic dataset.
std::vector<double> data_correlation(const Comm& comm, const DatasetReader& data, int alphabet,
                                     long max_distance, long chunk_samples);

}  // namespace cmera
