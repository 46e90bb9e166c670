#include "agent/exclusions.h"

#include <algorithm>

namespace tollgate::agent {

bool namespaceExcluded(const policy::TollgateConfig& mesh, std::string_view ns) {
  return !ns.empty() && std::ranges::find(mesh.excludedNamespaces, ns) !=
                            mesh.excludedNamespaces.end();
}

}  // namespace tollgate::agent
