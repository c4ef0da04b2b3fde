// Provenance key/values stamped into every file cmera writes. Everything is collected
// locally (no communication), so host and time are this rank's; the writers in src/io/
// store rank 0's values, which is what a file needs: one consistent record.
#include "cmera/provenance.hpp"

#include <hdf5.h>
#include <mpi.h>
#include <unistd.h>

#include <climits>
#include <ctime>
#include <fmt/format.h>

#include "cmera/version.hpp"

namespace cmera {

namespace {

// First line of the MPI library's self-description, trimmed ("Open MPI v4.1.4, ...").
std::string mpi_library() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(buf, &len);
  std::string s(buf);  // len may or may not count a trailing NUL; the C string is exact
  s = s.substr(0, s.find('\n'));
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

std::string hdf5_version() {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return fmt::format("{}.{}.{}", major, minor, release);
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

// The command line as stored: HDF5 attributes hold at most 64 KiB, and an absurdly long
// line (thousands of -P overrides) must not fail a write at the end of a run; the
// resolved parameters, stored in full, record what the overrides did.
std::string stored_command(const std::string& command) {
  constexpr std::size_t kKeep = 8192;
  if (command.size() <= kKeep) return command;
  return fmt::format("{} ... [abridged: {} bytes in all]", command.substr(0, kKeep), command.size());
}

}  // namespace

std::string version_string() {
  return fmt::format("cmera {} (git {})", build::version, build::git_hash);
}

const std::vector<std::string>& provenance_keys() {
  static const std::vector<std::string> keys = {
      "cmera_version", "git_hash", "build_type", "compiler",  "mpi_library",
      "hdf5_version",  "created_utc", "host",    "command", "parameters"};
  return keys;
}

Attributes provenance(const std::string& command, const std::string& parameters) {
  const std::vector<std::string> values = {
      build::version, build::git_hash, build::build_type, build::compiler, mpi_library(),
      hdf5_version(), utc_now(),       host_name(),       stored_command(command), parameters};
  Attributes attrs;
  for (std::size_t k = 0; k < values.size(); ++k) attrs.emplace_back(provenance_keys()[k], values[k]);
  return attrs;
}

}  // namespace cmera
