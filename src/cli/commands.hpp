// The subcommands of the cmera program. Each add_* registers one subcommand's options on
// the command line (CLI11) and returns how to run it; cli/main.cpp parses the line and
// runs the one given. Trade-off: options are bound to state owned by the returned
// Command, so a subcommand's parsing and running stay together in its own file.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "cmera/comm.hpp"

namespace cmera::cli {

// A registered subcommand: `run` executes it once the command line has been parsed.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// `line` is the whole command line, recorded in the provenance of the files written.
Command add_generate_ising1d(CLI::App& generate, const Comm& comm, const std::string& line);
Command add_generate_ising2d(CLI::App& generate, const Comm& comm, const std::string& line);
Command add_train(CLI::App& app, const Comm& comm, const std::string& line);
Command add_eval(CLI::App& app, const Comm& comm);
Command add_sample(CLI::App& app, const Comm& comm, const std::string& line);

// cmera::Error unless value > 0.
void require_positive(long value, const char* option);

}  // namespace cmera::cli
