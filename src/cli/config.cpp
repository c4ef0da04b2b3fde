// Config loading: TOML file, then `-P section.key=value` overrides, checked against the
// schema table kSchema below. That table is the only list of keys: parsing, validation,
// error messages and to_toml() all walk it, so adding a key is one line here plus the
// struct field. The trade-off is a little template machinery (a member-pointer variant
// read and written per field type) instead of hand-written code per key, which would
// drift from the error messages and the written-out config as keys are added.
#include "cmera/config.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include <sys/stat.h>
#include <toml++/toml.h>

#include "cmera/error.hpp"

namespace cmera {
namespace {

// Where a key set by `-P section.key=value` came from, in messages.
constexpr std::string_view kOverrideOrigin = "-P";

constexpr double kInf = std::numeric_limits<double>::infinity();
// A config is a few hundred bytes; anything beyond this is the wrong file.
constexpr long kMaxConfigBytes = long{1} << 20;

// What a value must satisfy besides its type. Numeric bounds apply to numbers and to
// each entry of an array; a string key with no choices must be non-empty (every free-form
// string here is a path, and an empty path is never what was meant).
struct Rule {
  bool required = false;
  double lo = -kInf;
  bool lo_open = false;  // lo itself excluded
  double hi = kInf;
  std::size_t min_entries = 0;  // arrays
  std::span<const std::string_view> choices = {};

  bool admits(double x) const { return (lo_open ? x > lo : x >= lo) && x <= hi; }
};

using Field = std::variant<std::string Config::*, bool Config::*, int Config::*,
                           long Config::*, std::uint64_t Config::*, double Config::*,
                           std::vector<int> Config::*, std::vector<long> Config::*>;

struct Entry {
  std::string_view section;
  std::string_view key;
  Field field;
  Rule rule;
  std::string_view default_note;  // empty: the default is the value in Config{}
  std::string_view meaning;
};

// Bounds that catch typos: 1000 candidates of 10^6 iterations each is already beyond any
// job's time limit.
constexpr double kMaxRestarts = 1000;
constexpr double kMaxRestartIterations = 1e6;
// chi is extended to depth + 1 entries before N is known; N < 2^62 allows no more.
constexpr double kMaxDepth = 60;

constexpr std::string_view kInits[] = {"decimation", "random", "uniform"};
constexpr std::string_view kOptimizers[] = {"em", "adam"};
constexpr std::string_view kSymmetries[] = {"none", "spin_flip"};

// Entries of one section are adjacent; sections and keys are written in this order.
constexpr Entry kSchema[] = {
    {"data", "path", &Config::data_path, {.required = true}, "", "dataset file (HDF5)"},
    {"data", "chunk_samples", &Config::data_chunk_samples, {.lo = 1}, "",
     "samples per collective read (bounds memory of the statistics pass)"},
    {"model", "chi", &Config::chi, {.required = true, .lo = 2, .min_entries = 2}, "",
     "chi[0] = data alphabet, then one alphabet per layer upward; depth = len - 1"},
    {"model", "depth", &Config::depth, {.lo = 1, .hi = kMaxDepth}, "len(chi)-1",
     "extend chi to this depth by repeating its last entry (at most 60: N >= 3 * 2^depth)"},
    {"model", "intermediate_chi", &Config::intermediate_chi, {.lo = 2}, "chi[l]",
     "grids only: alphabet of the grid between the y and x half-steps of step l+1 -> l, "
     "from the bottom step; steps not listed use chi[l]"},
    {"model", "tied", &Config::tied, {}, "",
     "one isometry and one disentangler per layer, or one per position"},
    {"model", "init", &Config::init, {.choices = kInits}, "",
     "initial tables: decimation (noisy copy-structure start), random or uniform"},
    {"model", "init_noise", &Config::init_noise, {.lo = 0, .hi = 1}, "",
     "weight of a random table mixed into the structured start"},
    {"train", "iterations", &Config::iterations, {.lo = 0}, "", "total iterations"},
    {"train", "optimizer", &Config::optimizer, {.choices = kOptimizers}, "",
     "em (monotone, parameter free) or adam (softmax logits)"},
    {"train", "seed", &Config::seed, {.lo = 0}, "", "seed of the initial tables"},
    {"train", "learning_rate", &Config::learning_rate, {.lo = 0, .lo_open = true}, "",
     "Adam step size"},
    {"train", "learning_rate_decay", &Config::learning_rate_decay, {.lo = 0}, "",
     "Adam step size decays as learning_rate / sqrt(1 + t / this); 0 = constant"},
    {"train", "pseudocount", &Config::pseudocount, {.lo = 0}, "",
     "EM Dirichlet pseudocount per table entry (in sample counts)"},
    {"train", "restarts", &Config::restarts, {.lo = 1, .hi = kMaxRestarts}, "",
     "candidate starts; each runs restart_iterations, the best continues (at most 1000: "
     "selection costs restarts x restart_iterations iterations)"},
    {"train", "restart_iterations", &Config::restart_iterations,
     {.lo = 0, .hi = kMaxRestartIterations}, "",
     "iterations per candidate start (counted in iterations, so at most train.iterations "
     "are run; values above 10^6 are refused as typos)"},
    {"train", "log_seconds", &Config::log_seconds, {.lo = 0}, "",
     "at most one progress line per this many seconds"},
    {"train", "checkpoint_every", &Config::checkpoint_every, {.lo = 0}, "",
     "checkpoint every this many iterations (also after candidate selection and at the end; 0: only those)"},
    {"objective", "pairs", &Config::pairs, {}, "",
     "add pair terms {i, i+r} (exact joint cones) to the window objective"},
    {"objective", "pair_distances", &Config::pair_distances, {.lo = 1}, "",
     "distances r, each once; empty = dyadic 2, 4, ..., N/2 (grids: 1, 2, 4, ..., L/2 per axis; "
     "set with pairs = false: an error, but -P objective.pairs=false drops the file's list)"},
    {"objective", "pair_diagonal_distances", &Config::pair_diagonal_distances, {.lo = 1}, "",
     "grids only: distances r, each once, of pair terms along the diagonals (r, r) and "
     "(r, -r), up to min(Lx, Ly)/2; empty = none"},
    {"objective", "pair_weight", &Config::pair_weight, {.lo = 0}, "",
     "weight of each distance relative to the windows"},
    {"objective", "pair_stride", &Config::pair_stride, {.lo = 0}, "",
     "pair terms at sites i = 0, s, 2s, ..., weighted by s (so s <= N); 0 = automatic, "
     "max(1, N chi_max^2 / 2048)"},
    {"objective", "symmetry", &Config::symmetry, {.choices = kSymmetries}, "",
     "spin_flip: the data's law is taken as unchanged by x -> chi[0] - 1 - x at every site at "
     "once (the Ising spin flip), so window and pair statistics are averaged with their "
     "flipped copies, as if every sample were also seen flipped; none: the data as read"},
    {"output", "dir", &Config::output_dir, {}, "", "where model.h5 and checkpoints are written"},
    {"output", "keep_checkpoints", &Config::keep_checkpoints, {.lo = 1}, "",
     "newest checkpoints kept in output.dir (older ones are deleted)"},
};
constexpr std::size_t kKeys = std::size(kSchema);

std::size_t index_of(const Entry& e) { return static_cast<std::size_t>(&e - kSchema); }

const Entry& schema_entry(std::string_view section, std::string_view key) {
  return *std::find_if(std::begin(kSchema), std::end(kSchema), [&](const Entry& e) {
    return e.section == section && e.key == key;
  });
}

// ---- rendering values as TOML (error messages and to_toml share it) ----

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += fmt::format("\\u{:04X}", c);
        else out += ch;
    }
  }
  return out + '"';
}

// Shortest text that reads back to the same double, kept recognisably a float.
std::string format_double(double x) {
  std::string s = fmt::format("{}", x);
  if (s.find_first_not_of("-0123456789") == std::string::npos) s += ".0";
  return s;
}

// One line, TOML syntax, so "got ..." shows the value as the user would write it.
std::string render(const toml::node& n) {
  if (const toml::array* a = n.as_array()) {
    std::string out = "[";
    for (std::size_t i = 0; i < a->size(); ++i) out += (i ? ", " : "") + render(*a->get(i));
    return out + "]";
  }
  if (n.is_table()) return "a table";
  if (auto s = n.value_exact<std::string>()) return quote(*s);
  if (auto d = n.value_exact<double>()) return format_double(*d);
  std::ostringstream os;  // integers, booleans, dates and times
  n.visit([&](const auto& v) { os << v; });
  return os.str();
}

template <class T>
std::string render_value(const T& v) {
  if constexpr (std::is_same_v<T, std::vector<int>> || std::is_same_v<T, std::vector<long>>) {
    toml::array a;
    for (const auto x : v) a.push_back(static_cast<std::int64_t>(x));
    return render(a);
  } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    return render(toml::value<std::int64_t>(static_cast<std::int64_t>(v)));
  } else {
    return render(toml::value<T>(v));
  }
}

std::string render_field(const Config& c, const Entry& e) {
  return std::visit([&](auto member) { return render_value(c.*member); }, e.field);
}

// ---- reading and checking one value ----

std::string bounds_text(const Rule& r) {
  if (r.hi < kInf) return fmt::format(" in {}{}, {}]", r.lo_open ? '(' : '[', r.lo, r.hi);
  if (r.lo > -kInf) return fmt::format(" {} {}", r.lo_open ? ">" : ">=", r.lo);
  return "";
}

std::string join(std::span<const std::string_view> items) {
  return fmt::format("{}", fmt::join(items, ", "));
}

template <class T>
std::string expected(const Rule& r) {
  if constexpr (std::is_same_v<T, bool>) {
    return "true or false";
  } else if constexpr (std::is_integral_v<T>) {
    return "an integer" + bounds_text(r);
  } else if constexpr (std::is_same_v<T, double>) {
    return "a number" + bounds_text(r);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return r.choices.empty() ? "a non-empty string" : "one of " + join(r.choices);
  } else {
    return fmt::format("an array of integers{}{}", bounds_text(r),
                       r.min_entries ? fmt::format(" with at least {} entries", r.min_entries)
                                     : std::string());
  }
}

// The value of `n` as a T that satisfies `r`, or nothing.
template <class T>
std::optional<T> convert(const Rule& r, const toml::node& n) {
  if constexpr (std::is_same_v<T, bool>) {
    return n.value_exact<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    const auto v = n.value_exact<std::int64_t>();
    if (v && std::in_range<T>(*v) && r.admits(static_cast<double>(*v))) return static_cast<T>(*v);
    return std::nullopt;
  } else if constexpr (std::is_same_v<T, double>) {
    // TOML keeps 0 and 0.0 apart; a user writing init_noise = 0 means the number.
    const auto i = n.value_exact<std::int64_t>();
    const auto v = i ? std::optional<double>(static_cast<double>(*i)) : n.value_exact<double>();
    if (v && std::isfinite(*v) && r.admits(*v)) return v;
    return std::nullopt;
  } else if constexpr (std::is_same_v<T, std::string>) {
    auto v = n.value_exact<std::string>();
    const bool ok = v && (r.choices.empty() ? !v->empty()
                                            : std::ranges::find(r.choices, *v) != r.choices.end());
    return ok ? v : std::nullopt;
  } else {
    const toml::array* a = n.as_array();
    if (!a || a->size() < r.min_entries) return std::nullopt;
    T out;
    for (const toml::node& item : *a) {
      const auto v = convert<typename T::value_type>(r, item);
      if (!v) return std::nullopt;
      out.push_back(*v);
    }
    return out;
  }
}

template <class T>
T read(const Entry& e, const toml::node& n, std::string_view origin) {
  if (auto v = convert<T>(e.rule, n)) return *std::move(v);
  std::string want = expected<T>(e.rule);
  // An int field also refuses values beyond its type, which the rule's text omits.
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (const auto v = n.value_exact<std::int64_t>(); v && !std::in_range<T>(*v))
      want += fmt::format(" (at most {})", std::numeric_limits<T>::max());
  }
  throw Error(fmt::format("{}: '{}.{}' must be {}, got {}", origin, e.section, e.key, want,
                          render(n)));
}

// ---- locating keys ----

std::string known_sections() {
  std::vector<std::string_view> names;
  for (const Entry& e : kSchema)
    if (names.empty() || names.back() != e.section) names.push_back(e.section);
  return join(names);
}

bool is_section(std::string_view name) {
  return std::ranges::any_of(kSchema, [&](const Entry& e) { return e.section == name; });
}

void require_section(std::string_view name, std::string_view origin) {
  if (!is_section(name))
    throw Error(fmt::format("{}: unknown section [{}] (known sections: {})", origin, name,
                            known_sections()));
}

const Entry& find_key(std::string_view section, std::string_view key, std::string_view origin) {
  std::vector<std::string_view> keys;
  for (const Entry& e : kSchema) {
    if (e.section != section) continue;
    if (e.key == key) return e;
    keys.push_back(e.key);
  }
  throw Error(fmt::format("{}: unknown key '{}.{}' (known keys in [{}]: {})", origin, section,
                          key, section, join(keys)));
}

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// The value of an override as a TOML node. Text that is not one TOML value is the plain
// string itself (so optimizer=adam and path=/x/y.h5 need no quotes), and so is any
// unquoted text given to a string key (so output.dir=2024 means the directory "2024").
toml::table override_value(const Entry& e, std::string_view raw) {
  toml::table t;
  try {
    t = toml::parse("v = " + std::string(raw));
  } catch (const toml::parse_error&) {
  }
  const toml::node* v = t.get("v");
  const bool string_key = std::holds_alternative<std::string Config::*>(e.field);
  if (t.size() != 1 || !v || (string_key && !v->is_string()))
    t = toml::table{{"v", std::string(raw)}};
  return t;
}

// A Config being assembled, remembering where each key was last set: required keys are
// those never set, and a cross-key error names the origin of the value that caused it.
class Builder {
 public:
  void set(const Entry& e, const toml::node& n, std::string_view origin) {
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(config_.*member)>;
          config_.*member = read<T>(e, n, origin);
        },
        e.field);
    set_by_[index_of(e)] = origin;
  }

  Config finish(std::string_view origin) && {
    for (const Entry& e : kSchema)
      if (e.rule.required && set_by_[index_of(e)].empty())
        throw Error(fmt::format("{}: missing required key '{}.{}' ({})", origin, e.section, e.key,
                                e.meaning));
    // Resolve depth last, so it combines with a chi given later (e.g. by -P). Afterwards
    // depth == len(chi) - 1 always, which is also what to_toml writes.
    std::vector<int>& chi = config_.chi;
    const int implied = static_cast<int>(chi.size()) - 1;
    if (config_.depth >= 0 && config_.depth < implied)
      throw Error(fmt::format("{}: 'model.depth' is {} but 'model.chi' has {} entries (depth {}); "
                              "depth may only extend chi",
                              set_by_[index_of(schema_entry("model", "depth"))], config_.depth,
                              chi.size(), implied));
    if (config_.depth > implied)
      chi.resize(static_cast<std::size_t>(config_.depth) + 1, chi.back());
    config_.depth = static_cast<int>(chi.size()) - 1;
    // A distance listed twice would weigh its pair terms twice; distances without pair
    // terms would be ignored. Both are refused rather than silently honoured, except that
    // `-P objective.pairs=false` switches off the pair terms of a config file that lists
    // distances (a list cannot be unset from the command line): the later, explicit choice
    // wins and the file's distances go with the terms.
    const std::string_view pairs_origin = set_by_[index_of(schema_entry("objective", "pairs"))];
    for (std::vector<long> Config::*list : {&Config::pair_distances, &Config::pair_diagonal_distances}) {
      const Entry& entry = *std::ranges::find(kSchema, Field{list}, &Entry::field);
      const std::string_view origin = set_by_[index_of(entry)];
      std::vector<long>& distances = config_.*list;
      if (!config_.pairs && pairs_origin == kOverrideOrigin && origin != kOverrideOrigin)
        distances.clear();
      std::vector<long> sorted = distances;
      std::ranges::sort(sorted);
      if (const auto dup = std::ranges::adjacent_find(sorted); dup != sorted.end())
        throw Error(fmt::format("{}: 'objective.{}' lists distance {} twice", origin, entry.key,
                                *dup));
      if (!config_.pairs && !distances.empty())
        throw Error(fmt::format("{}: 'objective.{}' is set but 'objective.pairs' is false "
                                "(pair distances without pair terms: remove one of them)",
                                pairs_origin, entry.key));
    }
    return std::move(config_);
  }

 private:
  Config config_;
  std::array<std::string_view, kKeys> set_by_{};
};

void apply_document(Builder& b, const toml::table& doc, std::string_view origin) {
  for (const auto& [name, node] : doc) {
    const toml::table* section = node.as_table();
    if (!section && !is_section(name.str()))
      throw Error(fmt::format("{}: unknown top-level key '{}' (every key belongs to a section: "
                              "{})", origin, name.str(), known_sections()));
    require_section(name.str(), origin);
    if (!section)
      throw Error(fmt::format("{}: '{}' must be a table ([{}]), got {}", origin, name.str(),
                              name.str(), render(node)));
    for (const auto& [key, value] : *section)
      b.set(find_key(name.str(), key.str(), origin), value, origin);
  }
}

void apply_override(Builder& b, std::string_view text) {
  const auto eq = text.find('=');
  const std::string_view name = trim(text.substr(0, eq));
  const auto dot = name.find('.');
  if (eq == std::string_view::npos || dot == std::string_view::npos || dot == 0 ||
      dot + 1 == name.size())
    throw Error(fmt::format("-P '{}': expected section.key=value", text));
  const std::string_view section = name.substr(0, dot);
  require_section(section, kOverrideOrigin);
  const Entry& e = find_key(section, name.substr(dot + 1), kOverrideOrigin);
  const toml::table holder = override_value(e, trim(text.substr(eq + 1)));
  b.set(e, *holder.get("v"), kOverrideOrigin);
}

}  // namespace

std::string Config::to_toml() const {
  static const Config defaults;
  std::string out;
  std::string_view section;
  for (const Entry& e : kSchema) {
    if (e.section != section) {
      section = e.section;
      out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", section);
    }
    const std::string note = e.rule.required        ? "required"
                             : e.default_note.empty() ? "default: " + render_field(defaults, e)
                                                      : "default: " + std::string(e.default_note);
    out += fmt::format("{:<30} # {} [{}]\n", fmt::format("{} = {}", e.key, render_field(*this, e)),
                       e.meaning, note);
  }
  return out;
}

Config parse_config_text(const std::string& text, const std::string& origin,
                         const std::vector<std::string>& overrides) {
  toml::table doc;
  try {
    doc = toml::parse(text, std::string_view(origin));
  } catch (const toml::parse_error& err) {
    throw Error(fmt::format("{}:{}:{}: TOML syntax error: {}", origin, err.source().begin.line,
                            err.source().begin.column, err.description()));
  }
  Builder b;
  apply_document(b, doc, origin);
  for (const std::string& o : overrides) apply_override(b, o);
  return std::move(b).finish(origin);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  const auto cannot_read = [&] {
    return Error(fmt::format("{}: cannot read config file ({})", path, std::strerror(errno)));
  };
  // Only a regular file of sane size is read: a device (/dev/zero), a FIFO or a directory
  // would block or read forever, and a multi-gigabyte file is a wrong path, not a config.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw cannot_read();
  if (!S_ISREG(st.st_mode))
    throw Error(fmt::format("{}: not a regular file ({}); expected a TOML config file", path,
                            S_ISDIR(st.st_mode)    ? "a directory"
                            : S_ISFIFO(st.st_mode) ? "a FIFO"
                            : S_ISSOCK(st.st_mode) ? "a socket"
                                                   : "a device"));
  if (st.st_size > kMaxConfigBytes)
    throw Error(fmt::format("{}: {} bytes is too large for a config file (at most {} MiB)", path,
                            st.st_size, kMaxConfigBytes >> 20));
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"),
                                                          &std::fclose);
  if (!f) throw cannot_read();
  std::string text;
  char buf[1 << 14];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0)
    text.append(buf, n);
  if (std::ferror(f.get())) throw cannot_read();
  return parse_config_text(text, path, overrides);
}

}  // namespace cmera
