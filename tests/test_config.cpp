// Config schema: valid files and overrides give the expected values, to_toml() reads back
// to an equal Config, and every kind of mistake is a cmera::Error whose one line names
// the origin and the key (checked by substring, so wording can improve without churn).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "cmera/config.hpp"
#include "cmera/error.hpp"

namespace {

using cmera::Config;
using cmera::parse_config_text;
using Overrides = std::vector<std::string>;

const std::string kMinimal = R"(
[data]
path = "d.h5"
[model]
chi = [2, 4]
)";

const std::string kFull = R"(# every key, none at its default
[data]
path = "runs/ising.h5"
chunk_samples = 100

[model]
chi = [2, 3, 5]
depth = 4
tied = false
init = "random"
init_noise = 0      # an integer where a float is expected

[train]
iterations = 7
optimizer = "adam"
seed = 42
learning_rate = 0.5
pseudocount = 1.5
restarts = 2
restart_iterations = 3
log_seconds = 0.25

[objective]          # pairs stays true: false would contradict pair_distances
pair_distances = [2, 8]
pair_diagonal_distances = [4]
pair_weight = 0.5
symmetry = "spin_flip"

[output]
dir = "out dir"
)";

Config parse(const std::string& text, const Overrides& overrides = {}) {
  return parse_config_text(text, "config.toml", overrides);
}

// Parsing must fail with a usage error whose message contains every part.
void expect_error(const std::string& text, const Overrides& overrides,
                  std::initializer_list<std::string_view> parts) {
  try {
    parse(text, overrides);
    ADD_FAILURE() << "no error for:\n" << text;
  } catch (const cmera::Error& e) {
    EXPECT_EQ(e.code(), cmera::kExitUsage);
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (std::string_view part : parts)
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  }
}

TEST(Config, FullFileParses) {
  const Config c = parse(kFull);
  EXPECT_EQ(c.data_path, "runs/ising.h5");
  EXPECT_EQ(c.data_chunk_samples, 100);
  EXPECT_EQ(c.chi, (std::vector<int>{2, 3, 5, 5, 5}));
  EXPECT_EQ(c.depth, 4);
  EXPECT_FALSE(c.tied);
  EXPECT_EQ(c.init, "random");
  EXPECT_EQ(c.init_noise, 0.0);
  EXPECT_EQ(c.iterations, 7);
  EXPECT_EQ(c.optimizer, "adam");
  EXPECT_EQ(c.seed, 42u);
  EXPECT_EQ(c.learning_rate, 0.5);
  EXPECT_EQ(c.pseudocount, 1.5);
  EXPECT_EQ(c.restarts, 2);
  EXPECT_EQ(c.restart_iterations, 3);
  EXPECT_EQ(c.log_seconds, 0.25);
  EXPECT_TRUE(c.pairs);
  EXPECT_EQ(c.pair_distances, (std::vector<long>{2, 8}));
  EXPECT_EQ(c.pair_diagonal_distances, (std::vector<long>{4}));
  EXPECT_EQ(c.pair_weight, 0.5);
  EXPECT_EQ(c.symmetry, "spin_flip");
  EXPECT_EQ(c.output_dir, "out dir");
}

TEST(Config, DefaultsAreFilled) {
  Config expected;
  expected.data_path = "d.h5";
  expected.chi = {2, 4};
  expected.depth = 1;  // resolved to len(chi) - 1
  EXPECT_EQ(parse(kMinimal), expected);
}

TEST(Config, DepthExtendsChi) {
  const Config c = parse(kMinimal, {"model.depth=3"});
  EXPECT_EQ(c.chi, (std::vector<int>{2, 4, 4, 4}));
  EXPECT_EQ(c.depth, 3);
  // depth equal to len(chi) - 1 changes nothing; depth combines with a chi given later.
  EXPECT_EQ(parse(kMinimal, {"model.depth=1"}).chi, (std::vector<int>{2, 4}));
  EXPECT_EQ(parse(kMinimal, {"model.depth=3", "model.chi=[3,2]"}).chi,
            (std::vector<int>{3, 2, 2, 2}));
}

TEST(Config, ToTomlRoundTrips) {
  for (const Config& c : {parse(kFull), parse(kMinimal),
                          parse(kMinimal, {R"(data.path="a \"q\" \\ b	tab ü")",
                                           "train.learning_rate=0.1", "train.log_seconds=1e-7"})}) {
    const std::string text = c.to_toml();
    SCOPED_TRACE(text);
    EXPECT_EQ(parse_config_text(text, "resolved", {}), c);
  }
}

TEST(Config, ToTomlListsKeysInSchemaOrder) {
  const std::string text = parse(kMinimal).to_toml();
  std::size_t at = 0;
  for (std::string_view key : {"[data]", "path =", "chunk_samples =", "[model]", "chi =",
                               "depth =", "[train]", "iterations =", "log_seconds =",
                               "[objective]", "pair_weight =", "[output]", "dir ="}) {
    const std::size_t next = text.find(key, at);
    ASSERT_NE(next, std::string::npos) << key << " missing or out of order in:\n" << text;
    at = next;
  }
}

TEST(Config, OverridesApplyInOrder) {
  const Config c = parse(kMinimal, {"data.path=/x/y.h5",      // bare path: a string
                                    "model.chi=[2,4,4]",      // TOML array
                                    "train.iterations=5",     // integer
                                    "model.tied=false",       // boolean
                                    "train.optimizer=adam",   // bare word: a string
                                    "output.dir=\"a b\"",     // quoted TOML string
                                    "model.init_noise=0",     // integer for a float
                                    " train.seed = 9 ",       // spaces are trimmed
                                    "train.iterations=6"});   // later wins
  EXPECT_EQ(c.data_path, "/x/y.h5");
  EXPECT_EQ(c.chi, (std::vector<int>{2, 4, 4}));
  EXPECT_EQ(c.depth, 2);
  EXPECT_FALSE(c.tied);
  EXPECT_EQ(c.optimizer, "adam");
  EXPECT_EQ(c.output_dir, "a b");
  EXPECT_EQ(c.init_noise, 0.0);
  EXPECT_EQ(c.seed, 9u);
  EXPECT_EQ(c.iterations, 6);
}

TEST(Config, OverrideOfStringKeyKeepsUnquotedText) {
  // A number, date or array given to a string key means the text as typed.
  EXPECT_EQ(parse(kMinimal, {"output.dir=2024"}).output_dir, "2024");
  EXPECT_EQ(parse(kMinimal, {"output.dir=2024-01-31"}).output_dir, "2024-01-31");
}

TEST(Config, OverrideCanSupplyRequiredKey) {
  const Config c = parse("[model]\nchi = [2, 2]\n", {"data.path=d.h5"});
  EXPECT_EQ(c.data_path, "d.h5");
}

TEST(Config, LoadConfigReadsFile) {
  const auto path = std::filesystem::temp_directory_path() / "cmera_test_config.toml";
  std::ofstream(path) << kFull;
  const Config c = cmera::load_config(path.string(), {"train.seed=3"});
  std::filesystem::remove(path);
  EXPECT_EQ(c.data_path, "runs/ising.h5");
  EXPECT_EQ(c.seed, 3u);
}

TEST(ConfigErrors, UnknownKey) {
  expect_error(kMinimal + "[train]\niteratons = 5\n", {},
               {"config.toml: unknown key 'train.iteratons'", "iterations, optimizer"});
  expect_error(kMinimal + "[model.x]\n", {}, {"unknown key 'model.x'"});  // a sub-table
}

TEST(ConfigErrors, UnknownSection) {
  expect_error(kMinimal + "[trian]\niterations = 5\n", {},
               {"config.toml: unknown section [trian]", "data, model, train"});
}

TEST(ConfigErrors, TopLevelKeyOutsideSection) {
  expect_error("iterations = 5\n" + kMinimal, {}, {"config.toml", "'iterations'"});
  expect_error("data = 5\n[model]\nchi = [2, 2]\n", {}, {"config.toml", "'data' must be a table"});
}

TEST(ConfigErrors, SyntaxErrorHasPosition) {
  expect_error("[data]\npath = \"d.h5\"\nchi = [2,\n", {}, {"config.toml:3:", "TOML syntax error"});
  expect_error("[data]\n\npath = \n", {}, {"config.toml:3:", "TOML syntax error"});
}

TEST(ConfigErrors, ChiWrongType) {
  expect_error("[data]\npath = \"d\"\n[model]\nchi = \"2,4\"\n", {},
               {"config.toml: 'model.chi' must be an array of integers >= 2 with at least 2 "
                "entries, got \"2,4\""});
  expect_error("[data]\npath = \"d\"\n[model]\nchi = [2, 4.0]\n", {}, {"'model.chi'", "[2, 4.0]"});
}

TEST(ConfigErrors, ChiTooShort) {
  expect_error("[data]\npath = \"d\"\n[model]\nchi = [2]\n", {},
               {"config.toml: 'model.chi' must be an array of integers >= 2 with at least 2 "
                "entries, got [2]"});
}

TEST(ConfigErrors, ChiEntryBelowTwo) {
  expect_error("[data]\npath = \"d\"\n[model]\nchi = [2, 1, 4]\n", {},
               {"'model.chi'", "got [2, 1, 4]"});
}

TEST(ConfigErrors, NegativeIterations) {
  expect_error(kMinimal + "[train]\niterations = -5\n", {},
               {"config.toml: 'train.iterations' must be an integer >= 0, got -5"});
}

TEST(ConfigErrors, UnknownOptimizer) {
  expect_error(kMinimal + "[train]\noptimizer = \"sgd\"\n", {},
               {"config.toml: 'train.optimizer' must be one of em, adam, got \"sgd\""});
}

TEST(ConfigErrors, InitNoiseAboveOne) {
  expect_error("[data]\npath = \"d\"\n[model]\nchi = [2, 2]\ninit_noise = 1.5\n", {},
               {"'model.init_noise' must be a number in [0, 1], got 1.5"});
}

TEST(ConfigErrors, OtherRangesAndTypes) {
  expect_error(kMinimal, {"train.learning_rate=0"},
               {"-P: 'train.learning_rate' must be a number > 0"});
  expect_error(kMinimal, {"train.learning_rate=nan"}, {"'train.learning_rate'", "got nan"});
  expect_error(kMinimal, {"model.tied=yes"}, {"'model.tied' must be true or false, got \"yes\""});
  expect_error(kMinimal, {"model.init=zero"},
               {"'model.init' must be one of decimation, random, uniform"});
  expect_error(kMinimal, {"objective.symmetry=flip"},
               {"'objective.symmetry' must be one of none, spin_flip, got \"flip\""});
  expect_error(kMinimal, {"output.dir="}, {"'output.dir' must be a non-empty string, got \"\""});
  expect_error(kMinimal, {"train.restarts=3000000000"}, {"'train.restarts'", "at most 2147483647"});
  expect_error(kMinimal, {"objective.pair_distances=[0]"}, {"'objective.pair_distances'"});
  expect_error(kMinimal, {"train.iterations=abc"},
               {"-P: 'train.iterations' must be an integer >= 0, got \"abc\""});
}

TEST(ConfigErrors, MalformedOverride) {
  for (const char* bad : {"xyz", "train=5", ".iterations=5", "train.=5", "train.iterations"})
    expect_error(kMinimal, {bad}, {"-P '", bad, "': expected section.key=value"});
}

TEST(ConfigErrors, OverrideUnknownKeyOrSection) {
  expect_error(kMinimal, {"train.bogus=1"}, {"-P: unknown key 'train.bogus'", "iterations"});
  expect_error(kMinimal, {"trian.iterations=1"}, {"-P: unknown section [trian]"});
}

TEST(ConfigErrors, MissingRequiredKeys) {
  expect_error("[model]\nchi = [2, 2]\n", {}, {"config.toml: missing required key 'data.path'"});
  expect_error("[data]\npath = \"d\"\n", {}, {"config.toml: missing required key 'model.chi'"});
}

TEST(ConfigErrors, DepthBelowChi) {
  expect_error("[data]\npath = \"d\"\n[model]\nchi = [2, 2, 2, 2]\ndepth = 2\n", {},
               {"config.toml: 'model.depth' is 2", "'model.chi' has 4 entries"});
  expect_error(kMinimal, {"model.depth=0"}, {"'model.depth' must be an integer in [1, 60], got 0"});
  // chi is extended to depth + 1 entries before N is known: 2e9 would allocate 8 GB.
  expect_error(kMinimal, {"model.depth=2000000000"},
               {"-P: 'model.depth' must be an integer in [1, 60], got 2000000000"});
}

TEST(ConfigErrors, RestartsAreBounded) {
  expect_error(kMinimal + "[train]\nrestarts = 1001\n", {},
               {"config.toml: 'train.restarts' must be an integer in [1, 1000], got 1001"});
  expect_error(kMinimal, {"train.restart_iterations=1000001"},
               {"-P: 'train.restart_iterations' must be an integer in [0, 1000000], got 1000001"});
  EXPECT_EQ(parse(kMinimal, {"train.restarts=1000", "train.restart_iterations=1000000"}).restarts,
            1000);
}

TEST(ConfigErrors, PairDistancesListedTwice) {
  expect_error(kMinimal + "[objective]\npair_distances = [8, 2, 4, 2]\n", {},
               {"config.toml: 'objective.pair_distances' lists distance 2 twice"});
  expect_error(kMinimal, {"objective.pair_distances=[4,4]"},
               {"-P: 'objective.pair_distances' lists distance 4 twice"});
  expect_error(kMinimal + "[objective]\npair_diagonal_distances = [8, 16, 8]\n", {},
               {"config.toml: 'objective.pair_diagonal_distances' lists distance 8 twice"});
  expect_error(kMinimal, {"objective.pair_diagonal_distances=[0]"},
               {"'objective.pair_diagonal_distances'"});
}

TEST(ConfigErrors, PairDistancesWithoutPairs) {
  // Contradictory in one place (the file, or the command line): refused, naming where
  // pairs = false came from.
  expect_error(kMinimal + "[objective]\npairs = false\npair_distances = [2]\n", {},
               {"config.toml: 'objective.pair_distances' is set but 'objective.pairs' is false"});
  expect_error(kMinimal, {"objective.pairs=false", "objective.pair_distances=[2]"},
               {"-P: 'objective.pair_distances' is set but 'objective.pairs' is false"});
  // Distances added on the command line to a file that switches pairs off: refused too.
  expect_error(kMinimal + "[objective]\npairs = false\n", {"objective.pair_distances=[2]"},
               {"config.toml: 'objective.pair_distances' is set but 'objective.pairs' is false"});
  expect_error(kMinimal + "[objective]\npairs = false\npair_diagonal_distances = [8]\n", {},
               {"config.toml: 'objective.pair_diagonal_distances' is set but 'objective.pairs' is "
                "false"});
  EXPECT_FALSE(parse(kMinimal + "[objective]\npairs = false\n").pairs);
}

TEST(Config, PairsSwitchedOffOnTheCommandLineDropTheFilesDistances) {
  // A list cannot be unset by -P, so -P objective.pairs=false is how a user runs a file
  // with pair distances windows-only; what is written back (to_toml) says so.
  const Config c = parse(kMinimal + "[objective]\npair_distances = [2, 4]\npair_diagonal_distances = [4]\n",
                         {"objective.pairs=false"});
  EXPECT_FALSE(c.pairs);
  EXPECT_TRUE(c.pair_distances.empty());
  EXPECT_TRUE(c.pair_diagonal_distances.empty());
  EXPECT_EQ(parse(c.to_toml()).pair_distances, std::vector<long>{});
}

TEST(ConfigErrors, NotARegularFileOrTooLarge) {
  const auto message = [](const std::string& path) {
    try {
      cmera::load_config(path, {});
    } catch (const cmera::Error& e) {
      EXPECT_EQ(e.code(), cmera::kExitUsage);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("/dev/zero"), "/dev/zero: not a regular file (a device); expected a TOML config file");
  const auto dir = std::filesystem::temp_directory_path();
  EXPECT_EQ(message(dir.string()),
            dir.string() + ": not a regular file (a directory); expected a TOML config file");
  const auto big = dir / "cmera_test_big.toml";
  std::ofstream(big) << std::string((1 << 20) + 1, '#');
  EXPECT_EQ(message(big.string()),
            big.string() + ": 1048577 bytes is too large for a config file (at most 1 MiB)");
  std::filesystem::remove(big);
}

TEST(ConfigErrors, UnreadableFile) {
  try {
    cmera::load_config("/nonexistent/cmera.toml", {});
    ADD_FAILURE() << "no error";
  } catch (const cmera::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "/nonexistent/cmera.toml: cannot read config file (No such file or directory)");
  }
}

}  // namespace
