#pragma once

#include <string>
#include <string_view>

#include "policy/model.h"

namespace tollgate::agent {

// Whether pods of `ns` are left alone (TollgateConfig.excludedNamespaces). Only the namespace
// decides: labels and annotations come from the pod's own spec, so a pod must not be able to
// opt itself out with them.
bool namespaceExcluded(const policy::TollgateConfig& mesh, std::string_view ns);

// Whether the network namespace handed over for a pod (the SCM_RIGHTS fd when >= 0, else
// `path`) is the agent's own, i.e. the node's: the agent runs with hostNetwork, so that is where
// a hostNetwork pod lives. Such a pod has nothing to enroll, and installing pod redirect rules
// there would capture the node's own traffic. It is the namespace, not the Pod's
// spec.hostNetwork, that decides: a pod in a netns of its own that claims hostNetwork is enrolled.
// An fd or path that cannot be stat'ed is "not the node's" (enrollment then reports the error).
bool isNodeNetns(int netnsFd, const std::string& path);

}  // namespace tollgate::agent
