#include "cli/load_config.h"

#include <ostream>

namespace tollgate::cli {

std::optional<policy::LoadResult> loadConfig(const std::string& path, std::ostream& diag) {
  auto loaded = policy::ConfigLoader::loadPath(path);
  if (!loaded) {
    for (const auto& d : loaded.error()) diag << d.str() << "\n";
    if (loaded.error().empty()) diag << path << ": configuration could not be loaded\n";
    return std::nullopt;
  }
  return std::move(*loaded);
}

policy::SnapshotPtr loadSnapshot(const std::string& path, std::ostream& diag) {
  auto loaded = loadConfig(path, diag);
  if (!loaded) return nullptr;
  auto snap = policy::Snapshot::compile(std::move(loaded->config));
  if (!snap) {
    diag << path << ": " << snap.error().str() << "\n";
    return nullptr;
  }
  return *snap;
}

}  // namespace tollgate::cli
