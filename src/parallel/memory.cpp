// Memory guard (memory.hpp): node memory from sysconf, ranks per node from the
// communicator (Comm::ranks_on_node), both agreed over all ranks so that every rank
// reaches the same verdict.
#include "cmera/memory.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace cmera {

double node_memory_bytes() {
  return static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
}

void require_memory(const Comm& comm, double bytes_per_rank, std::string_view subject,
                    std::string_view purpose) {
  // Agreed in whole KiB (long long holds any real size; absurd requests saturate).
  constexpr double kUnit = 1024, kCap = 4e18;
  const auto kib = [&](double bytes) {
    return static_cast<long long>(std::min(std::ceil(bytes / kUnit), kCap));
  };
  const double need = static_cast<double>(comm.max(kib(bytes_per_rank))) * kUnit;
  const double node = -static_cast<double>(comm.max(-kib(node_memory_bytes()))) * kUnit;
  const long long ranks = comm.max(comm.ranks_on_node());
  constexpr double kGiB = 1 << 30;
  comm.check(need * static_cast<double>(ranks) <= node,
             fmt::format("{} needs about {:.1f} GiB per rank {}; this node has {:.1f} GiB{}",
                         subject, need / kGiB, purpose, node / kGiB,
                         ranks > 1 ? fmt::format(" for {} ranks", ranks) : std::string()));
}

}  // namespace cmera
