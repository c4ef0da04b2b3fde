// Memory guard for allocations sized by user input (model.chi, sample counts, read blocks,
// pair distances): refused up front, with one line, instead of an out-of-memory kill or
// std::bad_alloc after the job has waited in the queue. Trade-off: the bound is the node's
// physical memory shared by the ranks on it, not what happens to be free, so the verdict
// depends only on the machine and the input (tests can rely on it); a request that fits on
// paper can still fail on a busy node.
#pragma once
#include <string_view>

#include "cmera/comm.hpp"

namespace cmera {

// Physical memory of this node in bytes.
double node_memory_bytes();

// Collective: refuses (cmera::Error, exit 2, on every rank) when `bytes_per_rank` (this
// rank's need; the largest over ranks counts) times the ranks sharing a node exceeds the
// smallest node's memory. The message reads "<subject> needs about X GiB per rank
// <purpose>; this node has Y GiB[ for K ranks]".
void require_memory(const Comm& comm, double bytes_per_rank, std::string_view subject,
                    std::string_view purpose);

}  // namespace cmera
