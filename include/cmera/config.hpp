// Run configuration: a TOML file plus `-P section.key=value` overrides, checked against
// one schema (every key, its type, default and meaning lives in config.cpp's table).
// Unknown keys, wrong types and out-of-range values are errors naming the file and key.
// The resolved config (defaults filled in) is what every output file records.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cmera {

struct Config {
  // [data]
  std::string data_path;
  long data_chunk_samples = 16384;  // samples per collective read in the statistics pass
  // [model]
  std::vector<int> chi;             // chi[0] = alphabet, then one per layer upward
  int depth = -1;                   // optional: extend chi by repeating its last entry;
                                    // once loaded, always len(chi) - 1
  std::vector<int> intermediate_chi; // grids: alphabet between the half-steps of step l,
                                     // from the bottom; missing entries: chi[l]
  bool tied = true;
  std::string init = "decimation";  // decimation | random | uniform
  double init_noise = 0.1;
  // [train]
  long iterations = 300;
  std::string optimizer = "adam";   // adam | em (measured: adam + pair terms fits best)
  std::uint64_t seed = 1;
  double learning_rate = 0.1;       // adam
  double learning_rate_decay = 200; // adam: rate / sqrt(1 + t / this); 0 = constant
  double pseudocount = 0.0;         // em: Dirichlet alpha (counts per entry)
  int restarts = 4;                 // candidate starts, best kept after restart_iterations
  long restart_iterations = 20;
  double log_seconds = 2.0;         // progress line at most this often (plus first/last)
  long checkpoint_every = 50;       // iterations between checkpoints (0: selection and end only)
  // [objective]
  bool pairs = true;                // multiscale pair terms {i, i+r} (docs/design.md §3)
  std::vector<long> pair_distances; // empty: dyadic 2, 4, ..., N/2
  std::vector<long> pair_diagonal_distances; // grids: pairs along (1, 1) and (1, -1); empty: none
  double pair_weight = 1.0;         // weight of each distance relative to the windows
  long pair_stride = 0;             // pairs at i = 0, s, 2s, ...; 0: max(1, N chi_max^2 / 2048)
  std::string symmetry = "none";    // none | spin_flip: statistics averaged with their flips
  // [output]
  std::string output_dir = "cmera-out";
  int keep_checkpoints = 2;         // newest checkpoints kept; older ones are deleted

  // objective.symmetry asks for statistics averaged with their spin flips.
  bool spin_flip() const { return symmetry == "spin_flip"; }

  // The resolved configuration as TOML text (stored in every output file).
  std::string to_toml() const;

  bool operator==(const Config&) const = default;
};

// Parse `path` (TOML) and apply overrides "section.key=value" in order. Values are read
// as TOML (so model.chi=[2,4,4] works); a bare word is taken as a string.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);
Config parse_config_text(const std::string& text, const std::string& origin,
                         const std::vector<std::string>& overrides);

}  // namespace cmera
