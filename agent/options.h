#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "proxy/access_log.h"

namespace tollgate::agent {

// Every flag of tollgate-agent, parsed in one place.
namespace flags {
inline constexpr std::string_view kConfigDir = "--config-dir";
inline constexpr std::string_view kRunDir = "--run-dir";
inline constexpr std::string_view kMetricsPort = "--metrics-port";
inline constexpr std::string_view kHealthPort = "--health-port";
inline constexpr std::string_view kLogFormat = "--log-format";
inline constexpr std::string_view kAccessLog = "--access-log";
inline constexpr std::string_view kThreads = "--threads";
inline constexpr std::string_view kPodInterface = "--pod-interface";
inline constexpr std::string_view kLogLevel = "--log-level";
inline constexpr std::string_view kCaCert = "--ca-cert";
inline constexpr std::string_view kCaKey = "--ca-key";
inline constexpr std::string_view kCaChain = "--ca-chain";
inline constexpr std::string_view kSvidLifetime = "--svid-lifetime";
inline constexpr std::string_view kTunnelConnections = "--tunnel-connections";
inline constexpr std::string_view kReconcileInterval = "--reconcile-interval";
inline constexpr std::string_view kDrainTime = "--drain-time";
inline constexpr std::string_view kSniffTimeout = "--sniff-timeout";
inline constexpr std::string_view kMaxConnectionsPerPod = "--max-connections-per-pod";
inline constexpr std::string_view kMaxConnectionsPerNode = "--max-connections-per-node";
inline constexpr std::string_view kRedirectMode = "--redirect-mode";
inline constexpr std::string_view kBpfPinDir = "--bpf-pin-dir";
inline constexpr std::string_view kConfigSource = "--config-source";
inline constexpr std::string_view kKubeconfig = "--kubeconfig";
inline constexpr std::string_view kNodeName = "--node-name";
inline constexpr std::string_view kHelp = "--help";
}  // namespace flags

struct AgentOptions {
  // "files": YAML under configDir, watched. "kubernetes": list+watch of the API server
  // (kube/kube_config_source.h) through kubeconfig, or in-cluster when it is empty.
  std::string configSource = "files";
  std::string configDir;               // files: required
  std::string kubeconfig;
  // kubernetes: the node whose Pods this agent enrolls (spec.nodeName); default $NODE_NAME.
  std::string nodeName;
  std::string runDir = "/run/tollgate";  // cni.sock, pods/, netns/
  uint16_t metricsPort = 15020;
  uint16_t healthPort = 15021;
  proxy::LogFormat logFormat = proxy::LogFormat::Text;
  std::string accessLog;  // empty: stdout
  int threads = 2;
  // Interfaces pod traffic arrives on in the node netns (host fence). TollgateConfig has no
  // field for it yet, so it is a flag; repeatable.
  std::vector<std::string> podInterfaces;
  std::string logLevel = "info";
  // The built-in CA issuing workload SVIDs for gateway tunnels. Without one, gateway routes
  // fail closed (gateway_unavailable).
  std::string caCert;
  std::string caKey;
  std::string caChain;  // optional: CA up to the root, for an intermediate CA
  std::chrono::seconds svidLifetime = std::chrono::hours(24);
  // TLS connections per (identity, gateway); 0 disables pooling (one connection per flow).
  int tunnelConnections = 2;
  // How often every enrolled pod's rules and listeners are verified and repaired; 0 disables.
  std::chrono::milliseconds reconcileInterval{5000};
  // After handing its sockets to a new agent (listener handoff), how long the old one lets
  // open connections finish before it closes them and exits; 0: close at once.
  std::chrono::milliseconds drainTime{30000};
  // A new agent taking over from a running one (handoff) on the kubernetes source waits this
  // long for its first config before it serves a pod, and gives the upgrade up otherwise (the
  // running agent carries on). Below the running agent's 60 s commit timeout.
  std::chrono::milliseconds handoffConfigWait{40000};
  // A connection's first message (TLS ClientHello, HTTP request head) must be complete within
  // this long from accept, however slowly it trickles in (slowloris); then it is reset.
  std::chrono::milliseconds sniffTimeout{5000};
  // Open proxied connections per pod, and on the node (a pod under its fair share of the node
  // limit is still admitted; proxy/connection_budget.h). Over them new connections are reset.
  size_t maxConnectionsPerPod = 1024;
  size_t maxConnectionsPerNode = 16384;
  // "nftables" or "ebpf"; empty: TollgateConfig's spec.redirectMode, else nftables. When given,
  // it wins over the config (the node knows what its kernel can run).
  std::string redirectMode;
  // eBPF mode: where programs' links and maps are pinned (bpffs), so that enforcement outlives
  // the agent and the next agent re-adopts them.
  std::string bpfPinDir = "/sys/fs/bpf/tollgate";
  bool help = false;
};

// "--flag value" and "--flag=value" forms. Unknown flags and bad values are errors.
Result<AgentOptions> parseOptions(const std::vector<std::string>& args);
// "90s", "30m", "24h", "1d" or plain seconds; at least one minute.
Result<std::chrono::seconds> parseDuration(std::string_view flag, std::string_view v);
// "200ms", "5s", "1m" or plain milliseconds; 0 or 100ms..1h.
Result<std::chrono::milliseconds> parseInterval(std::string_view flag, std::string_view v);
std::string usage();

}  // namespace tollgate::agent
