// MPI wrapper, block partition, cyclic ranges and their cone rule, and the owner <-> user
// table exchange.
// The exchange uses one MPI_Alltoallv per call with counts fixed at construction: for a
// contiguous partition only neighbours exchange non-empty blocks, and the fixed
// receive order (by source rank) keeps sums deterministic for a given rank count.
#include "cmera/comm.hpp"

#include <algorithm>
#include <numeric>

#include "cmera/error.hpp"
#include "cmera/model.hpp"

namespace cmera {

Comm::Comm(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

void Comm::barrier() const { MPI_Barrier(comm_); }

int Comm::ranks_on_node() const {
  MPI_Comm node;
  MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

double Comm::sum(double x) const {
  double r = 0;
  MPI_Allreduce(&x, &r, 1, MPI_DOUBLE, MPI_SUM, comm_);
  return r;
}

long long Comm::sum(long long x) const {
  long long r = 0;
  MPI_Allreduce(&x, &r, 1, MPI_LONG_LONG, MPI_SUM, comm_);
  return r;
}

long long Comm::max(long long x) const {
  long long r = 0;
  MPI_Allreduce(&x, &r, 1, MPI_LONG_LONG, MPI_MAX, comm_);
  return r;
}

void Comm::sum_inplace(double* data, std::size_t n) const {
  if (n == 0) return;
  MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, comm_);
}

void Comm::broadcast(double* data, std::size_t n, int root) const {
  if (n == 0) return;
  MPI_Bcast(data, static_cast<int>(n), MPI_DOUBLE, root, comm_);
}

void Comm::broadcast(std::string& s, int root) const {
  long long n = static_cast<long long>(s.size());
  MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm_);
  s.resize(static_cast<std::size_t>(n));
  if (n > 0) MPI_Bcast(s.data(), static_cast<int>(n), MPI_CHAR, root, comm_);
}

std::vector<long long> Comm::allgather(long long x) const {
  std::vector<long long> all(static_cast<std::size_t>(size_));
  MPI_Allgather(&x, 1, MPI_LONG_LONG, all.data(), 1, MPI_LONG_LONG, comm_);
  return all;
}

std::vector<long> Comm::allgatherv(const std::vector<long>& mine, std::vector<long>& offsets) const {
  std::vector<int> counts(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
  const int n = static_cast<int>(mine.size());
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_);
  offsets.assign(static_cast<std::size_t>(size_) + 1, 0);
  for (int q = 0; q < size_; ++q) {
    displs[q] = static_cast<int>(offsets[q]);
    offsets[q + 1] = offsets[q] + counts[q];
  }
  std::vector<long> all(static_cast<std::size_t>(offsets.back()));
  MPI_Allgatherv(mine.data(), n, MPI_LONG, all.data(), counts.data(), displs.data(), MPI_LONG, comm_);
  return all;
}

void Comm::replicate_blocks(std::vector<double>& data, const BlockPartition& part,
                            std::size_t block) const {
  std::vector<int> counts(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
  for (int q = 0; q < size_; ++q) {
    counts[q] = static_cast<int>(part.count(q) * block);
    displs[q] = static_cast<int>(part.begin(q) * block);
  }
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data.data(), counts.data(), displs.data(),
                 MPI_DOUBLE, comm_);
}

std::vector<double> Comm::gather_blocks(const std::vector<double>& data, const BlockPartition& part,
                                        std::size_t block) const {
  std::vector<int> counts(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
  for (int q = 0; q < size_; ++q) {
    counts[q] = static_cast<int>(part.count(q) * block);
    displs[q] = static_cast<int>(part.begin(q) * block);
  }
  std::vector<double> all(is_root() ? data.size() : 0);
  MPI_Gatherv(data.data() + displs[rank_], counts[rank_], MPI_DOUBLE, all.data(), counts.data(),
              displs.data(), MPI_DOUBLE, 0, comm_);
  return all;
}

void Comm::check(bool ok, const std::string& message_if_failed, int code) const {
  const int mine = ok ? size_ : rank_;
  int first_failed = size_;
  MPI_Allreduce(&mine, &first_failed, 1, MPI_INT, MPI_MIN, comm_);
  if (first_failed == size_) return;
  std::string message = message_if_failed;
  broadcast(message, first_failed);
  int agreed_code = code;
  MPI_Bcast(&agreed_code, 1, MPI_INT, first_failed, comm_);
  throw Error(message, agreed_code);
}

int BlockPartition::owner(long i) const {
  // Smallest r with end(r) > i; begin() is monotone so binary search is exact.
  int lo = 0, hi = parts - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (end(mid) > i) hi = mid; else lo = mid + 1;
  }
  return lo;
}

CyclicRange CyclicRange::make(long first, long length, long period) {
  CyclicRange r;
  r.period = period;
  r.length = std::min(length, period);
  r.start = ((first % period) + period) % period;
  return r;
}

CyclicRange coarse_windows(const CyclicRange& fine, long coarse_sites) {
  if (fine.length == 0) return CyclicRange::make(0, 0, coarse_sites);
  if (fine.full()) return CyclicRange::make(0, coarse_sites, coarse_sites);
  // fine.start >= 0, so cone::coarse_window is floor((s - 1) / 2) at both ends.
  const long first = cone::coarse_window(fine.start);
  const long last = cone::coarse_window(fine.start + fine.length - 1);
  return CyclicRange::make(first, last - first + 1, coarse_sites);
}

IndexExchange::IndexExchange(const Comm& comm, const BlockPartition& owners,
                             const std::vector<long>& needed, std::size_t block)
    : comm_(&comm), block_(block) {
  const int p = comm.size();
  std::vector<long> offsets;
  const std::vector<long> all = comm.allgatherv(needed, offsets);
  users_of_mine_.assign(p, {});
  mine_from_owner_.assign(p, {});
  for (long i : needed) mine_from_owner_[owners.owner(i)].push_back(i);
  const long my_begin = owners.begin(comm.rank()), my_end = owners.end(comm.rank());
  for (int q = 0; q < p; ++q)
    for (long k = offsets[q]; k < offsets[q + 1]; ++k)
      if (all[k] >= my_begin && all[k] < my_end) users_of_mine_[q].push_back(all[k]);
}

namespace {
// Packs data[index*block .. +block) for each index list, exchanges, returns the buffer
// received and per-source offsets (in blocks).
void alltoallv_blocks(const Comm& comm, const std::vector<std::vector<long>>& send_idx,
                      const std::vector<std::vector<long>>& recv_idx, std::size_t block,
                      const std::vector<double>& data, std::vector<double>& recv) {
  const int p = comm.size();
  std::vector<int> sc(p), sd(p), rc(p), rd(p);
  std::size_t st = 0, rt = 0;
  for (int q = 0; q < p; ++q) {
    sc[q] = static_cast<int>(send_idx[q].size() * block);
    rc[q] = static_cast<int>(recv_idx[q].size() * block);
    sd[q] = static_cast<int>(st);
    rd[q] = static_cast<int>(rt);
    st += sc[q];
    rt += rc[q];
  }
  std::vector<double> send(st);
  for (int q = 0; q < p; ++q)
    for (std::size_t k = 0; k < send_idx[q].size(); ++k)
      std::copy_n(data.begin() + send_idx[q][k] * block, block,
                  send.begin() + sd[q] + k * block);
  recv.assign(rt, 0.0);
  MPI_Alltoallv(send.data(), sc.data(), sd.data(), MPI_DOUBLE, recv.data(), rc.data(),
                rd.data(), MPI_DOUBLE, comm.raw());
}
}  // namespace

void IndexExchange::reduce_to_owners(std::vector<double>& data) const {
  std::vector<double> recv;
  alltoallv_blocks(*comm_, mine_from_owner_, users_of_mine_, block_, data, recv);
  // Owned entries are rebuilt as the rank-ordered sum of every user's contribution.
  const int p = comm_->size();
  for (int q = 0; q < p; ++q)
    for (long i : users_of_mine_[q]) std::fill_n(data.begin() + i * block_, block_, 0.0);
  std::size_t pos = 0;
  for (int q = 0; q < p; ++q)
    for (long i : users_of_mine_[q]) {
      for (std::size_t b = 0; b < block_; ++b) data[i * block_ + b] += recv[pos + b];
      pos += block_;
    }
}

void IndexExchange::scatter_from_owners(std::vector<double>& data) const {
  std::vector<double> recv;
  alltoallv_blocks(*comm_, users_of_mine_, mine_from_owner_, block_, data, recv);
  std::size_t pos = 0;
  for (int q = 0; q < comm_->size(); ++q)
    for (long i : mine_from_owner_[q]) {
      std::copy_n(recv.begin() + pos, block_, data.begin() + i * block_);
      pos += block_;
    }
}

}  // namespace cmera
