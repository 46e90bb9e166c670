#pragma once

// tollgate-cni: a chained CNI plugin (spec 1.0.0, also 0.4.0 and 0.3.x). On ADD it hands the pod's network
// namespace to the agent over the enrollment socket and succeeds only once the agent replies that
// redirection is in place; the previous plugin's result passes through unchanged.

#include <yaml-cpp/yaml.h>

#include <iosfwd>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace tollgate::cni {

inline constexpr std::string_view kDefaultSocket = "/run/tollgate/cni.sock";
inline constexpr int kDefaultTimeoutMs = 10000;
inline constexpr std::string_view kSpecVersion = "1.0.0";
// 0.3.x: chaining and prevResult exist since 0.3.0 and ADD/DEL mean the same, so a primary list
// that still declares 0.3.1 (Calico's manifests do) works; CHECK only exists from 0.4.0 on.
inline const std::vector<std::string> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
// "0.3.0, 0.3.1, 0.4.0 and 1.0.0", for messages.
std::string supportedVersionsText();

// CNI spec error codes (1-99 reserved by the spec) and tollgate's own (100+). The agent's replies
// carry their own codes from 100 up; the plugin's own failures use the 190s so the two never mix.
enum ErrorCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kAgentUnreachable = 190,
  kAgentRefused = 191,  // reply not ok and without a code
};

// The network configuration from stdin: standard keys plus tollgate's.
struct NetConf {
  std::string cniVersion;
  std::string name;
  std::string type;
  std::string socket = std::string(kDefaultSocket);
  int timeoutMs = kDefaultTimeoutMs;
  bool failOpen = false;  // "failMode": "open" lets pods start when the agent is unreachable
  // An object when the runtime passed one; otherwise a null node. Test with hasPrevResult(): a
  // default YAML::Node is a *defined* null, so `if (prevResult)` is always true.
  YAML::Node prevResult;
  bool hasPrevResult() const { return prevResult.IsMap(); }
  // runtimeConfig.cgroupPath (the cgroupPath capability): the pod's cgroup, which the eBPF
  // mode attaches to. Empty when the runtime gave none.
  std::string cgroupPath;
};

Result<NetConf> parseNetConf(std::string_view json);

// The runtime's environment: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, ...
using Environment = std::map<std::string, std::string>;

// "K8S_POD_NAMESPACE=default;K8S_POD_NAME=client" -> map; malformed pairs are an error.
Result<std::map<std::string, std::string>> parseCniArgs(std::string_view args);

// Pod IPs from a prevResult (ips[].address without the prefix length).
std::vector<std::string> podIpsFromResult(const YAML::Node& prevResult);

// Runs one plugin invocation: the result or error JSON goes to `out`, diagnostics to `err`.
// Returns the process exit code (0 success, 1 error).
int run(const Environment& env, std::string_view stdinText, std::ostream& out, std::ostream& err);

// The CNI_* variables of this process.
Environment processEnvironment();

}  // namespace tollgate::cni
