// The window-counting kernels of the statistics pass (HPCG style): the vectorized binary
// kernel equals the plain histogram reference on random data, for slabs narrower than
// the ring (halo of 2) and for the whole ring (the last two windows wrap), at any block
// offset; and the reference itself equals counts taken by hand.
#include <gtest/gtest.h>

#include <random>

#include "cmera/statistics.hpp"

namespace cmera {
namespace {

std::vector<std::uint8_t> random_slab(long rows, long width, int d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> buf(static_cast<std::size_t>(rows * width));
  for (auto& x : buf) x = static_cast<std::uint8_t>(rng() % d);
  return buf;
}

TEST(WindowCounting, ReferenceMatchesHandCount) {
  const long rows = 50, width = 9;
  const auto buf = random_slab(rows, width, 3, 1);
  std::vector<long long> counts(static_cast<std::size_t>(width * 27), 0);
  count_windows(buf.data(), rows, width, 0, width, 3, counts.data());
  for (long k = 0; k < width; ++k)
    for (int code = 0; code < 27; ++code) {
      long long expected = 0;
      for (long r = 0; r < rows; ++r) {
        const auto* x = buf.data() + r * width;
        expected += (x[k] * 9 + x[(k + 1) % width] * 3 + x[(k + 2) % width]) == code;
      }
      EXPECT_EQ(counts[k * 27 + code], expected) << "window " << k << " code " << code;
    }
}

TEST(WindowCounting, BinaryKernelEqualsReference) {
  struct Case { long rows, width, first, n; };
  // width = n + 2: a rank's slab with its halo; width = n: the whole ring on one rank.
  // Rows beyond 255 cross the kernel's byte-sum flushes; n not a multiple of 16 leaves
  // an overlapping last block; all-ones rows fill the byte sums to their limit, in 16- and
  // 32-lane blocks.
  for (const Case c : {Case{1, 5, 0, 3}, Case{333, 130, 0, 128}, Case{333, 130, 64, 64},
                       Case{1000, 64, 0, 64}, Case{1000, 64, 32, 32}, Case{7, 3, 0, 3},
                       Case{600, 41, 0, 39}, Case{600, 41, 3, 36}, Case{256, 18, 0, 16},
                       Case{2000, 35, 16, 19}, Case{256, 34, 0, 32}, Case{256, 66, 0, 66}}) {
    SCOPED_TRACE(testing::Message() << "rows " << c.rows << " width " << c.width << " first "
                                    << c.first << " n " << c.n);
    auto buf = random_slab(c.rows, c.width, 2, static_cast<std::uint64_t>(c.width));
    if (c.rows == 256) std::fill(buf.begin(), buf.end(), 1);
    std::vector<long long> fast(static_cast<std::size_t>(c.n * 8), 0), plain(fast);
    count_binary_windows(buf.data(), c.rows, c.width, c.first, c.n, fast.data());
    count_windows(buf.data(), c.rows, c.width, c.first, c.n, 2, plain.data());
    EXPECT_EQ(fast, plain);
  }
}

}  // namespace
}  // namespace cmera
