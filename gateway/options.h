#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "proxy/access_log.h"

namespace tollgate::gateway {

// Flag names, parsed in one place.
inline constexpr std::string_view kFlagConfigDir = "--config-dir";
inline constexpr std::string_view kFlagConfigSource = "--config-source";
inline constexpr std::string_view kFlagKubeconfig = "--kubeconfig";
inline constexpr std::string_view kFlagCert = "--cert";
inline constexpr std::string_view kFlagKey = "--key";
inline constexpr std::string_view kFlagTrustBundle = "--trust-bundle";
inline constexpr std::string_view kFlagListen = "--listen";
inline constexpr std::string_view kFlagMetricsPort = "--metrics-port";
inline constexpr std::string_view kFlagHealthPort = "--health-port";
inline constexpr std::string_view kFlagCredentialsDir = "--credentials-dir";
inline constexpr std::string_view kFlagNamespace = "--namespace";
inline constexpr std::string_view kFlagAccessLog = "--access-log";
inline constexpr std::string_view kFlagLogFormat = "--log-format";
inline constexpr std::string_view kFlagDrainSeconds = "--drain-seconds";
inline constexpr std::string_view kFlagLabel = "--label";
inline constexpr std::string_view kFlagThreads = "--threads";
inline constexpr std::string_view kFlagH2IdleSeconds = "--h2-idle-seconds";
inline constexpr std::string_view kFlagH2WriteStallSeconds = "--h2-write-stall-seconds";

struct Options {
  // "files": YAML under configDir, polled. "kubernetes": list+watch of the API server
  // (kube/kube_config_source.h) through kubeconfig, or in-cluster when it is empty.
  std::string configSource = "files";
  std::string configDir;  // files: required
  std::string kubeconfig;
  std::string certFile;  // the gateway's own SVID chain (PEM)
  std::string keyFile;
  std::string trustBundleFile;  // CAs that issue workload SVIDs
  std::string listenIp = "0.0.0.0";
  uint16_t listenPort = 15008;
  std::string statusIp = "0.0.0.0";
  uint16_t metricsPort = 15020;
  uint16_t healthPort = 15021;
  std::string credentialsDir = "/etc/tollgate/credentials";  // credentialName -> <dir>/<name>/
  std::string ns = "tollgate-system";  // the gateway's own namespace (for logs)
  std::string accessLogPath;           // "" or "-": stdout
  proxy::LogFormat logFormat = proxy::LogFormat::Text;
  std::chrono::seconds drain{15};
  unsigned threads = 0;  // data-plane threads; 0: one per CPU (at most 8)
  // This gateway's own pod labels (--label k=v, repeatable): AuthorizationPolicy `selector`s
  // are matched against them, so a policy written for "istio: egressgateway" applies here.
  std::map<std::string, std::string> labels;
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds handshakeTimeout{10000};
  std::chrono::milliseconds idleTimeout{300 * 1000};
  // An HTTP/2 client connection with no stream for this long gets GOAWAY and is closed (the
  // agent's pool opens a new one when needed); 0: never.
  std::chrono::milliseconds h2IdleTimeout{60 * 1000};
  // A connection whose writes make no progress for this long (the client stopped reading) is
  // closed (--h2-write-stall-seconds); 0: never.
  std::chrono::milliseconds writeStallTimeout{30 * 1000};
};

std::string usage();
// argv[0] is skipped. Every error names the flag.
Result<Options> parseOptions(const std::vector<std::string>& args);

}  // namespace tollgate::gateway
