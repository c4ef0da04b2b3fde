// The only place MPI appears outside main(): a small communicator wrapper, the block
// partition used for every layer, cyclic index ranges (periodic lattices) and the cone
// rule on them, and the owner <-> user exchange of per-site tables. Keeping MPI behind
// this interface means physics code reads as serial code over "my range" and is testable
// at any rank count.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cmera {

struct BlockPartition;

class Comm {
 public:
  explicit Comm(MPI_Comm comm = MPI_COMM_WORLD);
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  MPI_Comm raw() const { return comm_; }

  void barrier() const;
  // Collective: how many ranks of this communicator share this rank's node (memory).
  int ranks_on_node() const;
  double sum(double x) const;
  long long sum(long long x) const;
  long long max(long long x) const;
  void sum_inplace(double* data, std::size_t n) const;
  void broadcast(double* data, std::size_t n, int root = 0) const;
  void broadcast(std::string& s, int root = 0) const;
  std::vector<long long> allgather(long long x) const;
  // In place: rank r's entries [part.begin(r) * block, part.end(r) * block) of `data`
  // are copied to every rank (an allgatherv of a block-partitioned array).
  void replicate_blocks(std::vector<double>& data, const BlockPartition& part,
                        std::size_t block) const;
  // Rank r's entries [part.begin(r) * block, part.end(r) * block) of `data`, gathered into
  // one full-length array on rank 0 (an MPI_Gatherv); other ranks get an empty array.
  std::vector<double> gather_blocks(const std::vector<double>& data, const BlockPartition& part,
                                    std::size_t block) const;
  // Concatenation of every rank's list, in rank order, with per-rank offsets.
  std::vector<long> allgatherv(const std::vector<long>& mine, std::vector<long>& offsets) const;

  // Collective error agreement: every rank passes its local verdict; if any rank failed,
  // the lowest failing rank's message is thrown as cmera::Error on all ranks.
  void check(bool ok, const std::string& message_if_failed, int code = 2) const;

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

// Contiguous block partition of n items over p parts; part r owns [begin(r), end(r)).
// Parts may be empty when n < p (thin upper layers).
struct BlockPartition {
  long n = 0;
  int parts = 1;
  long begin(int r) const { return static_cast<long>((static_cast<long long>(n) * r) / parts); }
  long end(int r) const { return begin(r + 1); }
  long count(int r) const { return end(r) - begin(r); }
  int owner(long i) const;
};

// A run of consecutive indices on a ring of size `period`, starting at `start`
// (already reduced mod period) with `length` <= period entries.
struct CyclicRange {
  long start = 0;
  long length = 0;
  long period = 1;

  static CyclicRange make(long first, long length, long period);  // first may be < 0
  long at(long k) const { return (start + k) % period; }          // k-th member
  bool contains(long i) const { return offset(i) < length; }
  long offset(long i) const { return ((i - start) % period + period) % period; }
  bool full() const { return length == period; }
};

// The coarse windows (of a layer with coarse_sites windows) that the windows `fine` come
// from: cone::coarse_window, floor((s - 1) / 2), over the range (docs/design.md §2), i.e.
// the range halved plus a halo of at most two, capped at the whole layer. The chain's
// sweep applies it per layer, the grid's once per axis (grid_decomposition.hpp).
CyclicRange coarse_windows(const CyclicRange& fine, long coarse_sites);

// Exchange of fixed-size per-index blocks between the owners of a block-partitioned
// index set and the ranks that use some of its indices (a rank's cones: a range around
// its block, plus the far ends of its pair cones). Built once from every rank's needed
// index list (sorted, unique). reduce_to_owners sums the users' contributions at the owner in rank
// order (deterministic for a fixed rank count); scatter_from_owners copies the owners'
// values to every user. Both operate on full-length arrays indexed by global index.
class IndexExchange {
 public:
  IndexExchange() = default;
  IndexExchange(const Comm& comm, const BlockPartition& owners, const std::vector<long>& needed,
                std::size_t block);
  void reduce_to_owners(std::vector<double>& data) const;
  void scatter_from_owners(std::vector<double>& data) const;

 private:
  const Comm* comm_ = nullptr;
  std::size_t block_ = 0;
  std::vector<std::vector<long>> users_of_mine_;   // per rank q: my owned indices q needs
  std::vector<std::vector<long>> mine_from_owner_; // per rank q: indices I need that q owns
};

}  // namespace cmera
