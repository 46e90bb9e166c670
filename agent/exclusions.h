#pragma once

#include <string_view>

#include "policy/model.h"

namespace tollgate::agent {

// Whether pods of `ns` are left alone (TollgateConfig.excludedNamespaces). Only the namespace
// decides: labels and annotations come from the pod's own spec, so a pod must not be able to
// opt itself out with them.
bool namespaceExcluded(const policy::TollgateConfig& mesh, std::string_view ns);

}  // namespace tollgate::agent
