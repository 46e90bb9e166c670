#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/error.h"

namespace tollgate::kube {

// Where and how to reach one API server: what a kubeconfig context or a pod's service account
// gives. PEM text, not paths, except the token file (re-read on rotation by TokenFile).
struct ClientConfig {
  std::string host;  // name or IP literal (no brackets)
  uint16_t port = 443;
  std::string caPem;          // empty: the system's default trust store
  std::string clientCertPem;  // client certificate authentication, with clientKeyPem
  std::string clientKeyPem;
  std::string token;      // a fixed bearer token
  std::string tokenFile;  // a bearer token re-read when the file changes (service accounts)
  std::string ns;         // the context's or the pod's namespace; may be empty
  std::string source;     // "kubeconfig /path (context x)" / "in-cluster": named in errors
};

// Reads a kubeconfig file (the current-context, or `context` when not empty): server, CA
// (certificate-authority or -data), client-certificate/-key (file or -data), token or tokenFile.
// Relative paths are relative to the kubeconfig's directory. Errors name the file and field.
Result<ClientConfig> loadKubeconfig(const std::string& path, const std::string& context = "");
Result<ClientConfig> parseKubeconfig(const std::string& text, const std::string& path,
                                     const std::string& context = "");

// The pod's own service account: KUBERNETES_SERVICE_HOST/PORT from `env` and token, ca.crt and
// namespace from `dir` (the default is where the kubelet mounts them).
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
Result<ClientConfig> inClusterConfig(const std::map<std::string, std::string>& env,
                                     const std::string& dir = kServiceAccountDir);
// inClusterConfig with the process environment.
Result<ClientConfig> inClusterConfigFromEnvironment(const std::string& dir = kServiceAccountDir);

// "https://host:port" split; accepts [v6]:port and no port (443). Errors name `what`.
Status parseServerUrl(const std::string& url, ClientConfig& out);

}  // namespace tollgate::kube
