// Grid pair terms (grid_pair_terms.hpp, docs/design-grid.md §7): the statistics of the
// rank's pairs in two box reads per sample chunk, and the pairs' log-likelihood with its
// reverse pass through GridSetMarginals, one pair at a time on the threads.
#include "cmera/grid_pair_terms.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>

#include "cmera/error.hpp"
#include "cmera/grid_pairs.hpp"
#include "cmera/io.hpp"
#include "cmera/memory.hpp"

namespace cmera::grid {

long grid_pair_stride(const GridLattice& g, long requested) {
  const long shortest = std::min(g.lx, g.ly);
  if (requested > shortest)
    throw Error(fmt::format("objective.pair_stride = {} is larger than the {} x {} grid's "
                            "shorter side; use 1..{}, or 0 for automatic",
                            requested, g.lx, g.ly, shortest));
  if (requested > 0) return requested;
  const double chi = *std::max_element(g.chi.begin(), g.chi.end());
  const auto s = static_cast<long>(std::sqrt(static_cast<double>(g.sites_at(0)) * chi * chi / 2048));
  return std::max(1L, s);
}

std::vector<long> grid_pair_distances(const GridLattice& g, const std::vector<long>& requested) {
  const long longest = std::max(g.lx, g.ly) / 2;
  std::vector<long> distances = requested;
  if (distances.empty())
    for (long r = 1; r <= longest; r *= 2) distances.push_back(r);
  for (long r : distances)
    if (r < 1 || r > longest)
      throw Error(fmt::format("objective.pair_distances: distance {} is outside 1..{} (half "
                              "the {} x {} grid's longer side)", r, longest, g.lx, g.ly));
  return distances;
}

long grid_pair_stride_at(long stride, long r) { return std::max(stride, r / 2); }

std::vector<long> grid_diagonal_distances(const GridLattice& g, const std::vector<long>& requested) {
  const long longest = std::min(g.lx, g.ly) / 2;
  for (long r : requested)
    if (r < 1 || r > longest)
      throw Error(fmt::format("objective.pair_diagonal_distances: distance {} is outside 1..{} "
                              "(half the {} x {} grid's shorter side)", r, longest, g.lx, g.ly));
  return requested;
}

std::vector<GridPair> grid_pair_sites(const GridLattice& g, const CyclicRange& owned_x,
                                      const CyclicRange& owned_y, long stride,
                                      const std::vector<long>& distances,
                                      const std::vector<GridPairDirection>& directions,
                                      double pair_weight) {
  const int d = g.chi[0];
  std::vector<GridPair> pairs;
  for (const GridPairDirection& u : directions) {
    const long half = std::min(u.ux ? g.lx : g.ly, u.uy ? g.ly : g.lx) / 2;
    for (long r : distances) {
      if (r > half) continue;
      const long s = grid_pair_stride_at(stride, r);
      const long all = ((g.lx + s - 1) / s) * ((g.ly + s - 1) / s);  // over every rank
      const double weight = pair_weight * static_cast<double>(g.sites_at(0)) / static_cast<double>(all);
      for (long oy = 0; oy < owned_y.length; ++oy)
        for (long ox = 0; ox < owned_x.length; ++ox)
          if (owned_x.at(ox) % s == 0 && owned_y.at(oy) % s == 0) {
            // The pair's sites span the box with corner (x, y) = owned window; for (1, -1)
            // they are {(x, y + r), (x + r, y)}, so that its start window is owned or
            // within the halo, as for the other directions (docs/design-grid.md §7).
            const long first_y = u.uy < 0 ? cone::wrap(owned_y.at(oy) + r, g.ly) : owned_y.at(oy);
            pairs.push_back({owned_x.at(ox), first_y, u.ux * r, u.uy * r,
                             std::vector<double>(d * d, 0.0), weight});
          }
    }
  }
  return pairs;
}

void count_grid_pairs(const Comm& comm, const DatasetReader& data, const GridLattice& g,
                      const CyclicRange& owned_x, const CyclicRange& owned_y,
                      std::vector<GridPair>& pairs, long chunk_samples) {
  const int d = g.chi[0];
  const long samples = data.shape().samples, ox = owned_x.length, oy = owned_y.length;
  const long block = std::min(data.block_rows(chunk_samples), samples);
  require_memory(comm,
                 static_cast<double>(block) *
                     static_cast<double>(2 * oy * g.lx + g.ly * ox + g.sites_at(0)),
                 fmt::format("data.chunk_samples = {} ({} samples of the owned rows and columns)",
                             chunk_samples, block),
                 "for the pair statistics' read buffers");
  const CyclicRange all_x = CyclicRange::make(0, g.lx, g.lx), all_y = CyclicRange::make(0, g.ly, g.ly);
  // The pairs by the boxes their sites are read from: x pairs from the owned rows, y pairs
  // from the owned columns, and a diagonal pair with corner row y (its lower site's row)
  // from the owned rows and the owned rows shifted by r (its upper site); groups with the
  // same shift share one read. Each pair's two sites are offsets into one sample of their
  // boxes, fixed once for every chunk and tile.
  struct Group {
    long shift;       // diagonal pairs: r, the upper site's box; else 0
    bool columns;     // y pairs
    bool first_upper; // diagonal (1, -1): the first site is the upper one
    std::vector<std::size_t> members;
    std::vector<long> at, to;
  };
  std::vector<Group> groups;
  const auto group_of = [&](long shift, bool columns, bool first_upper) -> Group& {
    for (Group& gr : groups)
      if (gr.shift == shift && gr.columns == columns && gr.first_upper == first_upper) return gr;
    return groups.emplace_back(Group{shift, columns, first_upper, {}, {}, {}});
  };
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    const GridPair& p = pairs[k];
    const bool columns = p.dx == 0, diagonal = p.dx != 0 && p.dy != 0;
    Group& gr = group_of(diagonal ? std::abs(p.dy) : 0, columns, p.dy < 0);
    gr.members.push_back(k);
    if (columns) {
      gr.at.push_back(p.y * ox + owned_x.offset(p.x));
      gr.to.push_back(cone::wrap(p.y + p.dy, g.ly) * ox + owned_x.offset(p.x));
    } else {  // the upper site's row sits at the lower one's offset in the shifted rows
      const long row = owned_y.offset(p.dy < 0 ? p.y + p.dy : p.y) * g.lx;
      gr.at.push_back(row + p.x);
      gr.to.push_back(row + cone::wrap(p.x + p.dx, g.lx));
    }
  }
  // The shifted reads are collective: every rank reads every shift any rank's pairs need
  // (a rank may own no pair site of some distance).
  std::vector<double> needs(static_cast<std::size_t>(std::min(g.lx, g.ly) / 2 + 1), 0.0);
  for (const Group& gr : groups) needs[static_cast<std::size_t>(gr.shift)] = 1;
  comm.sum_inplace(needs.data(), needs.size());
  std::vector<long> shifts;
  for (std::size_t r = 1; r < needs.size(); ++r)
    if (needs[r] > 0) shifts.push_back(static_cast<long>(r));
  std::vector<std::uint8_t> rows, columns, shifted;
  const auto count = [&](const Group& gr, const std::vector<std::uint8_t>& first,
                         const std::vector<std::uint8_t>& second, long per_sample, long n) {
    // Samples in tiles whose boxes (kTile x a few rows or columns) stay in L1/L2 while every
    // pair passes over them; a pair streaming through the whole chunk missed the cache on
    // nearly every sample. Static schedules with the same bounds give a thread the same
    // pairs in every tile, so no two threads add to one pair.
    constexpr long kTile = 16;
#pragma omp parallel
    for (long t0 = 0; t0 < n; t0 += kTile) {
      const long t1 = std::min(n, t0 + kTile);
#pragma omp for schedule(static) nowait
      for (std::size_t i = 0; i < gr.members.size(); ++i) {
        double* q = pairs[gr.members[i]].q.data();
        for (long s = t0; s < t1; ++s)  // values were checked by the window pass
          q[first[s * per_sample + gr.at[i]] * d + second[s * per_sample + gr.to[i]]] += 1;
      }
    }
  };
  for (long s0 = 0; s0 < samples; s0 += block) {
    const long n = std::min(block, samples - s0);
    data.read_box(s0, n, owned_y, all_x, rows);     // [n][oy][Lx]
    data.read_box(s0, n, all_y, owned_x, columns);  // [n][Ly][ox]
    for (const Group& gr : groups)
      if (gr.shift == 0) {
        if (gr.columns) count(gr, columns, columns, g.ly * ox, n);
        else count(gr, rows, rows, oy * g.lx, n);
      }
    for (long shift : shifts) {
      data.read_box(s0, n, CyclicRange::make(owned_y.start + shift, oy, g.ly), all_x, shifted);
      for (const Group& gr : groups)
        if (gr.shift == shift) {
          if (gr.first_upper) count(gr, shifted, rows, oy * g.lx, n);
          else count(gr, rows, shifted, oy * g.lx, n);
        }
    }
  }
  for (GridPair& p : pairs)
    for (double& v : p.q) v /= static_cast<double>(samples);
}

GridPairTerms::GridPairTerms(std::vector<GridPair> pairs) : pairs_(std::move(pairs)) {}

void GridPairTerms::check_memory(const Comm& comm, const GridModel& m,
                                 const GridWindowMarginals& windows) const {
  const GridLattice& g = m.lattice;
  // A pair's joints depend on its sites modulo 2^depth and its offset only.
  const long period = 1L << g.depth();
  std::set<std::array<long, 4>> seen;
  GridSetMarginals sets(m, windows);
  GridSetMarginals::JointSizes worst;
  std::size_t tape_bytes = 0, steps = 0;  // the largest pair tape's, the most steps
  const GridPair* worst_pair = nullptr;
  for (const GridPair& p : pairs_) {
    if (!seen.insert({p.x % period, p.y % period, p.dx, p.dy}).second) continue;
    const GridSetMarginals::JointSizes s = sets.pair_sizes(p.x, p.y, p.dx, p.dy);
    tape_bytes = std::max(tape_bytes, s.tape_bytes);
    steps = std::max(steps, s.steps);
    if (s.total + s.largest > worst.total + worst.largest) {
      worst = s;
      worst_pair = &p;
    }
  }
  // Every pair's tape, up to the budget (a few more past it: see log_likelihood).
  const double tapes = std::min(static_cast<double>(kTapeBudgetBytes) * 1.1,
                                static_cast<double>(tape_bytes) * static_cast<double>(pairs_.size()));
  // Per thread: the tape (every joint of one pair), their adjoints in the reverse pass, two
  // gathered copies of the largest, and the small values and adjoints kept for the next pair.
  const double kept = 2.0 * static_cast<double>(steps) *
                      static_cast<double>(std::min(worst.largest, GridSetMarginals::kKeptEntries));
  require_pair_joint_memory(
      comm, 2.0 * static_cast<double>(worst.total) + 2.0 * static_cast<double>(worst.largest) + kept, tapes,
      worst_pair ? fmt::format("training with grid pair terms at chi = [{}] (the pair of ({}, {}) "
                               "and ({}, {}), offset ({}, {}), builds a joint of {} entries)",
                               fmt::join(g.chi, ", "), worst_pair->x, worst_pair->y,
                               worst_pair->x + worst_pair->dx, worst_pair->y + worst_pair->dy,
                               worst_pair->dx, worst_pair->dy, worst.largest)
                 : std::string("training with grid pair terms"),
      "leave that distance out, lower chi in the upper layers, or set objective.pairs = false");
}

double GridPairTerms::log_likelihood(const GridModel& m, const GridWindowMarginals& windows) {
  // Fixed blocks of pairs, each with its own adjoints, summed in block order a wave of
  // blocks at a time (memory: a wave's adjoints, not every block's).
  constexpr std::size_t kBlock = 16;
  const std::size_t blocks = (pairs_.size() + kBlock - 1) / kBlock;
  const std::size_t wave = 4 * static_cast<std::size_t>(omp_get_max_threads());
  std::vector<std::unique_ptr<GridSetMarginals>> sets(static_cast<std::size_t>(omp_get_max_threads()));
  std::vector<double> terms(pairs_.size(), 0.0);
  if (tape_lattice_ != m.lattice || tape_tied_ != m.tied) {  // first call: no lattice yet
    tapes_.assign(pairs_.size(), PairTape{});
    tape_bytes_ = 0;
    tape_lattice_ = m.lattice;
    tape_tied_ = m.tied;
  }
  adjoints_ = PairAdjoints{};
  ThreadErrors errors;
  for (std::size_t b0 = 0; b0 < blocks; b0 += wave) {
    std::vector<PairAdjoints> adj(std::min(wave, blocks - b0));
#pragma omp parallel for schedule(dynamic, 1)
    for (std::size_t i = 0; i < adj.size(); ++i) errors.run([&] {
      auto& mine = sets[static_cast<std::size_t>(omp_get_thread_num())];
      if (!mine) mine = std::make_unique<GridSetMarginals>(m, windows);
      const std::size_t first = (b0 + i) * kBlock, last = std::min(first + kBlock, pairs_.size());
      for (std::size_t k = first; k < last; ++k) {
        const GridPair& pair = pairs_[k];
        // The term weight sum_x q log p and its derivative d/dp.
        const auto term_gradient = [&](const std::vector<double>& p) {
          std::vector<double> g(p.size(), 0.0);
          for (std::size_t e = 0; e < p.size(); ++e)
            if (pair.q[e] > 0) {
              terms[k] += pair.weight * pair.q[e] * std::log(p[e]);
              g[e] = pair.weight * pair.q[e] / p[e];
            }
          return g;
        };
        // A pair without a tape records one while the budget lasts (threads that read the
        // count at once may pass it by a few tapes).
        std::size_t used;
#pragma omp atomic read
        used = tape_bytes_;
        PairTape* tape = !tapes_[k].empty() || used < kTapeBudgetBytes ? &tapes_[k] : nullptr;
        const bool fresh = tape && tape->empty();
        mine->pair_backward(pair.x, pair.y, pair.dx, pair.dy, term_gradient, adj[i], tape);
        if (fresh) {
          const std::size_t bytes = tape->bytes();
#pragma omp atomic update
          tape_bytes_ += bytes;
        }
      }
    });
    errors.rethrow();
    for (const PairAdjoints& a : adj) adjoints_.add(a);
  }
  double total = 0;  // fixed order
  for (double t : terms) total += t;
  return total;
}

void GridPairTerms::gradient(const GridModel& m, const GridWindowMarginals& windows,
                             GridModel& grad, WindowAdjoints& windows_adjoint) const {
  if (pairs_.empty()) return;
  GridSetMarginals(m, windows).add_table_gradient(adjoints_, grad);
  add_window_adjoints(adjoints_.windows, windows_adjoint);
}

}  // namespace cmera::grid
