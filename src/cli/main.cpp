// cmera command line: generate, train, eval, sample, info (one file per command in
// src/cli/, registered through commands.hpp). Parses arguments (CLI11), initializes MPI,
// and turns cmera::Error into one line on rank 0 and a documented exit status on every
// rank. Errors are raised collectively (Comm::check), so no rank is left waiting in a
// collective call when another one fails.
#include <malloc.h>
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <iostream>
#include <memory>
#include <utility>

#include "cmera/comm.hpp"
#include "cmera/error.hpp"
#include "cmera/io.hpp"
#include "cmera/provenance.hpp"
#include "commands.hpp"

namespace cmera::cli {

void require_positive(long value, const char* option) {
  if (value <= 0) throw Error(fmt::format("{} must be a positive integer, got {}", option, value));
}

namespace {

std::string join_args(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

// `cmera info file.h5`: what a cmera file is, its shape or model and its provenance.
Command add_info(CLI::App& app, const Comm& comm) {
  auto path = std::make_shared<std::string>();
  CLI::App* info = app.add_subcommand("info", "Summarise a cmera file (dataset, model, checkpoint).");
  info->add_option("file", *path, "HDF5 file")->required();
  return {info, [&comm, path] {
    const std::string text = describe_file(comm, *path);
    if (comm.is_root()) fmt::print("{}", text);
    return 0;
  }};
}

int dispatch(int argc, char** argv, const Comm& comm) {
  CLI::App app{"cmera: learn generative models of lattice configurations with a classical MERA\n"
               "(exact causal-cone marginals, no sampling during training)."};
  app.set_version_flag("--version", version_string());
  app.require_subcommand(1);

  const std::string line = join_args(argc, argv);
  CLI::App* generate = app.add_subcommand("generate", "Write a synthetic dataset (HDF5 /configs uint8 [S, N]).");
  generate->require_subcommand(1);
  // In the order --help lists them.
  const std::vector<Command> commands{
      add_generate_ising1d(*generate, comm, line), add_generate_ising2d(*generate, comm, line),
      add_train(app, comm, line), add_info(app, comm), add_eval(app, comm),
      add_sample(app, comm, line)};

  // Usage errors become one cmera::Error line like every other bad input; CLI11 alone
  // would only say "A subcommand is required" for a misspelt command.
  std::vector<std::string> names;
  for (const CLI::App* sub : std::as_const(app).get_subcommands(nullptr)) names.push_back(sub->get_name());
  if (argc > 1 && argv[1][0] != '-' && std::ranges::find(names, argv[1]) == names.end()) {
    throw Error(fmt::format("unknown command '{}' (expected one of {}; see cmera --help)", argv[1],
                            fmt::join(names, ", ")));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      if (comm.is_root()) app.exit(e);
      return 0;
    }
    std::string where = "cmera";
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();)
      where += " " + (sub = sub->get_subcommands().front())->get_name();
    throw Error(fmt::format("{} (see {} --help)", e.what(), where));
  }
  for (const Command& c : commands)
    if (*c.app) return c.run();
  return kExitUsage;
}

}  // namespace
}  // namespace cmera::cli

int main(int argc, char** argv) {
  // Pair terms and the exact correlation function build dense joints of up to a few MiB per
  // step and free them at once. glibc's defaults give such blocks back to the kernel
  // (mmap above a threshold, trimming the heap's top), so every step paid page faults and
  // the zeroing of fresh pages: a third of a grid's C(r) at L = 128. Blocks below 32 MiB
  // come from the heap instead, and up to 128 MiB of freed heap stays with the process.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int code = 0;
  {
    const cmera::Comm comm(MPI_COMM_WORLD);
    try {
      code = cmera::cli::dispatch(argc, argv, comm);
    } catch (const cmera::Error& e) {
      // Raised on every rank (collective check) or from rank-independent validation.
      if (comm.is_root()) std::cerr << "cmera: error: " << e.what() << std::endl;
      code = e.code();
    } catch (const std::exception& e) {
      // Unexpected and possibly local to this rank: take the whole job down now.
      std::cerr << "cmera: internal error on rank " << comm.rank() << ": " << e.what() << std::endl;
      MPI_Abort(MPI_COMM_WORLD, cmera::kExitRuntime);
    }
  }
  MPI_Finalize();
  return code;
}
