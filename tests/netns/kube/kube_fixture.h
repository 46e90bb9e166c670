#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <fmt/format.h>

namespace tollgate::tests {

// The control plane's state directory (lab/k8s/control-plane): the ctest fixture
// kube_control_plane sets TOLLGATE_KUBE_STATE; by hand, a directory in the build tree.
inline std::string kubeStateDir() {
  const char* s = std::getenv("TOLLGATE_KUBE_STATE");
  return s && *s ? s : std::string(TOLLGATE_BINARY_DIR) + "/kube-test-state";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The API server's loopback port, from the control plane's env file; 0 when it is not there.
inline uint16_t apiServerPort() {
  std::smatch m;
  std::string env = slurp(kubeStateDir() + "/env");
  if (!std::regex_search(env, m, std::regex("KUBE_APISERVER=https://127\\.0\\.0\\.1:(\\d+)"))) return 0;
  return static_cast<uint16_t>(std::stoi(m[1]));
}

// The admin kubeconfig with its server moved to 127.0.0.1:`port` (a test relay). The serving
// certificate names 127.0.0.1, so the client still verifies it.
inline std::string adminKubeconfigVia(uint16_t port) {
  return std::regex_replace(slurp(kubeStateDir() + "/admin.kubeconfig"),
                            std::regex("https://127\\.0\\.0\\.1:\\d+"),
                            fmt::format("https://127.0.0.1:{}", port));
}

}  // namespace tollgate::tests
