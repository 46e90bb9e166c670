#pragma once

#include <cstdlib>
#include <string>

namespace tollgate::tests {

// The control plane's state directory (lab/k8s/control-plane): the ctest fixture
// kube_control_plane sets TOLLGATE_KUBE_STATE; by hand, a directory in the build tree.
inline std::string kubeStateDir() {
  const char* s = std::getenv("TOLLGATE_KUBE_STATE");
  return s && *s ? s : std::string(TOLLGATE_BINARY_DIR) + "/kube-test-state";
}

}  // namespace tollgate::tests
