#pragma once

// A temporary configuration directory for CLI tests, removed on destruction.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace tollgate::cli::testing {

class TempConfigDir {
 public:
  TempConfigDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tg-cli-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
  }
  ~TempConfigDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempConfigDir(const TempConfigDir&) = delete;
  TempConfigDir& operator=(const TempConfigDir&) = delete;

  void write(const std::string& name, const std::string& text) const {
    std::ofstream(std::filesystem::path(path_) / name) << text;
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const {
    return (std::filesystem::path(path_) / name).string();
  }

 private:
  std::string path_;
};

// A small mesh: REGISTRY_ONLY, cluster CIDRs, one gateway, a registry entry, a pod, and an egress
// NetworkPolicy for pods labelled app=locked.
inline constexpr const char* kMeshYaml = R"(apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  clusterCIDRs:
    pods: [10.244.0.0/16]
    services: [10.96.0.0/12]
  gateways:
  - name: egress
    address: 10.0.0.2
    default: true
)";

inline constexpr const char* kRegistryYaml = R"(apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: httpbin
  namespace: default
spec:
  hosts: [httpbin.org]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: httpbin-tls
  namespace: default
spec:
  host: httpbin.org
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE}
)";

inline constexpr const char* kPodsYaml = R"(apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: default
  labels: {app: client}
spec:
  serviceAccountName: client-sa
status:
  podIP: 10.244.1.10
---
apiVersion: v1
kind: Pod
metadata:
  name: locked
  namespace: default
  labels: {app: locked}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: only-dns
  namespace: default
spec:
  podSelector:
    matchLabels: {app: locked}
  policyTypes: [Egress]
  egress:
  - ports:
    - {protocol: UDP, port: 53}
)";

}  // namespace tollgate::cli::testing
