// Counter-based seeding: every random stream is derived from (seed, purpose, index) by
// splitmix64, so sample k of a generator or sampler is the same whichever rank draws it
// and however many ranks there are.
#pragma once
#include <cstdint>
#include <random>

namespace cmera {

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

enum class Stream : std::uint64_t { kGenerate = 1, kSample = 2, kInit = 3, kRestart = 4 };

inline std::mt19937_64 stream_rng(std::uint64_t seed, Stream purpose, std::uint64_t index) {
  std::uint64_t h = splitmix64(seed ^ splitmix64(static_cast<std::uint64_t>(purpose)));
  h = splitmix64(h ^ splitmix64(index + 0x632be59bd9b4e019ULL));
  return std::mt19937_64(h);
}

// Uniform double in [0, 1) with 53 random bits.
inline double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace cmera
