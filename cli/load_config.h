#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "policy/config_loader.h"
#include "policy/snapshot.h"

namespace tollgate::cli {

// Loads a configuration directory or file. On failure prints every diagnostic
// ("file:line: object: field: message") to `diag` and returns nullopt.
std::optional<policy::LoadResult> loadConfig(const std::string& path, std::ostream& diag);

// Loads and compiles; failures are printed to `diag`.
policy::SnapshotPtr loadSnapshot(const std::string& path, std::ostream& diag);

}  // namespace tollgate::cli
