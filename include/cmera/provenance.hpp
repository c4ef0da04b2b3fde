// Provenance recorded in every file cmera writes: program version and git hash,
// compiler, MPI library and HDF5 versions, the command and the parameters used.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace cmera {

using Attributes = std::vector<std::pair<std::string, std::string>>;

// Version line for --version.
std::string version_string();
// Names of the provenance attributes, in the order provenance() writes them.
const std::vector<std::string>& provenance_keys();
// Key/value provenance; `parameters` is the resolved config or the command's arguments.
Attributes provenance(const std::string& command, const std::string& parameters);

}  // namespace cmera
