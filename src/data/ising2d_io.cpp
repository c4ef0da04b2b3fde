// Parallel driver of `cmera generate ising2d`; see ising2d.hpp for the dataset order.
// Ranks take a BlockPartition of the chains; since a chain fills a fixed block of rows,
// each rank's rows are contiguous and one collective hyperslab write per rank puts them
// in place: no gather, and memory per rank is its own share of the samples.
// The file is written by io.hpp's write_dataset: /configs uint8 [S, L, L] (or the rows
// layout [S*L, L]), attribute alphabet, provenance, temporary name then rename.
#include <fmt/format.h>

#include "cmera/error.hpp"
#include "cmera/io.hpp"
#include "cmera/ising2d.hpp"
#include "cmera/output_guard.hpp"

namespace cmera::ising2d {

void generate(const Comm& comm, const Params& params, const std::string& path, bool as_rows,
              const std::string& command) {
  const Params p = resolved(params);
  const BlockPartition chains{p.chains, comm.size()};
  const long first_chain = chains.begin(comm.rank()), last_chain = chains.end(comm.rank());
  const BlockPartition rows = rows_of_chains(p);
  const long first = rows.begin(static_cast<int>(first_chain));
  const long mine = rows.begin(static_cast<int>(last_chain)) - first;
  const long L = p.size;
  const std::string params_toml = fmt::format(
      "generator = \"ising2d\"\nalgorithm = \"swendsen-wang\"\nsize = {}\nbeta = {:.17g}\n"
      "samples = {}\nchains = {}\nthermalization = {}\nsweeps_between = {}\nseed = {}\n"
      "layout = \"{}\"\norder = \"chain-major: rows [S*c/C, S*(c+1)/C) from chain c, "
      "in time order\"\n",
      L, p.beta, p.samples, p.chains, p.thermalization, p.sweeps_between, p.seed,
      as_rows ? "rows [S*L, L]" : "[S, L, L]");
  require_replaceable(comm, path, "dataset", {}, same_parameters(params_toml));
  std::vector<std::uint8_t> data(static_cast<std::size_t>(mine * L * L));
  run_chains(p, first_chain, last_chain, data.data());
  const Attributes attrs = provenance(command, params_toml);
  // A configuration's bytes are its L rows in order, so the same buffer serves both
  // layouts.
  if (as_rows)
    write_dataset(comm, path, p.samples * L, L, 2, first * L, data, attrs);
  else
    write_dataset(comm, path, p.samples, std::vector<long>{L, L}, 2, first, data, attrs);
}

}  // namespace cmera::ising2d
