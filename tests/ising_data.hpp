// Shared by the training tests: an exact periodic 1D Ising dataset written collectively
// (the same file for any rank count), and the scratch directories of scratch_dir.hpp.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/io.hpp"
#include "cmera/ising1d.hpp"
#include "scratch_dir.hpp"

namespace cmera::testing {

inline std::string write_ising(const Comm& comm, const std::string& dir, long n, long samples,
                               double t, std::uint64_t seed) {
  const std::string path = dir + "/ising_" + std::to_string(n) + "_" + std::to_string(t) + ".h5";
  const double u = ising1d::bond_parameter_for(t, n);
  const BlockPartition rows{samples, comm.size()};
  const long first = rows.begin(comm.rank()), count = rows.count(comm.rank());
  std::vector<std::uint8_t> data(static_cast<std::size_t>(count * n));
  for (long k = 0; k < count; ++k)
    ising1d::draw(u, n, seed, static_cast<std::uint64_t>(first + k), data.data() + k * n);
  write_dataset(comm, path, samples, n, 2, first, data, {});
  return path;
}

}  // namespace cmera::testing
