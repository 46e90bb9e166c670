#include "agent/options.h"

#include <charconv>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>

namespace tollgate::agent {
namespace {

Result<uint64_t> parseUint(std::string_view flag, std::string_view v, uint64_t min, uint64_t max) {
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || out < min || out > max) {
    return fail(fmt::format("{}: '{}' is not a number in {}..{}", flag, v, min, max));
  }
  return out;
}

}  // namespace

Result<std::chrono::seconds> parseDuration(std::string_view flag, std::string_view v) {
  uint64_t unit = 1;
  std::string_view num = v;
  if (!v.empty()) {
    switch (v.back()) {
      case 's': unit = 1; num.remove_suffix(1); break;
      case 'm': unit = 60; num.remove_suffix(1); break;
      case 'h': unit = 3600; num.remove_suffix(1); break;
      case 'd': unit = 86400; num.remove_suffix(1); break;
      default: break;
    }
  }
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
  constexpr uint64_t kMax = 366ull * 86400;
  if (num.empty() || ec != std::errc() || p != num.data() + num.size() || n > kMax / unit ||
      n * unit < 60) {
    return fail(fmt::format("{}: '{}' is not a duration between 1m and 366d (e.g. 24h)", flag, v));
  }
  return std::chrono::seconds(n * unit);
}

Result<std::chrono::milliseconds> parseInterval(std::string_view flag, std::string_view v) {
  uint64_t unit = 1;
  std::string_view num = v;
  if (num.ends_with("ms")) {
    num.remove_suffix(2);
  } else if (num.ends_with("s")) {
    unit = 1000;
    num.remove_suffix(1);
  } else if (num.ends_with("m")) {
    unit = 60000;
    num.remove_suffix(1);
  }
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
  constexpr uint64_t kMaxMs = 3600ull * 1000;
  bool valid = !num.empty() && ec == std::errc() && p == num.data() + num.size() &&
               n <= kMaxMs / unit && (n == 0 || n * unit >= 100);
  if (!valid) {
    return fail(fmt::format("{}: '{}' is not 0 or an interval between 100ms and 1h (e.g. 5s)",
                            flag, v));
  }
  return std::chrono::milliseconds(n * unit);
}

std::string usage() {
  return fmt::format(
      "usage: tollgate-agent {} DIR [{} DIR] [{} PORT] [{} PORT] [{} text|json]\n"
      "                      [{} PATH] [{} N] [{} PATTERN]... [{} debug|info|warn|error]\n"
      "       tollgate-agent --config-source kubernetes [--kubeconfig PATH] [--node-name NODE] ...\n"
      "  {}     directory of YAML config (watched, reloaded)\n"
      "  --config-source files|kubernetes  where config comes from (default files); kubernetes:\n"
      "                     list+watch of the API server, in-cluster unless --kubeconfig is given;\n"
      "                     only Pods with spec.nodeName = --node-name (default $NODE_NAME) enroll\n"
      "  {}        state: cni.sock, pods/, netns/ (default /run/tollgate)\n"
      "  {}    Prometheus /metrics (default 15020; 0 disables)\n"
      "  {}     /healthz/ready (default 15021; 0 disables)\n"
      "  {}      access log format (default text)\n"
      "  {}      access log file (default stdout)\n"
      "  {}        proxy threads (default 2)\n"
      "  {}  pod-facing interface in the node netns, '*' suffix = prefix (default tg0)\n"
      "  {} PATH --ca-key PATH [--ca-chain PATH]  built-in CA issuing SVIDs for gateway\n"
      "                     tunnels (without it gateway routes fail closed)\n"
      "  {} DURATION  SVID lifetime (default 24h), rotated at half life\n"
      "  {} N  TLS connections per identity and gateway (default 2; 0 = no pooling)\n"
      "  {} INTERVAL  verify and repair every pod's rules and listeners (default 5s;\n"
      "                     e.g. 200ms, 1m; 0 disables)\n"
      "  {} INTERVAL  after handing the sockets to a new agent (it takes them over through\n"
      "                     <run-dir>/handoff.sock on start), let open connections finish for\n"
      "                     up to this long, then exit (default 30s; 0 = close at once)\n"
      "  {} INTERVAL  a connection's first message must be complete this long after\n"
      "                     accept, or it is reset (default 5s)\n"
      "  {} N  open connections per pod (default 1024)\n"
      "  {} N  open connections on the node (default 16384, lowered to fit the\n"
      "                     open files limit); a pod under its fair share is still admitted\n"
      "  {} nftables|ebpf  how pod egress reaches the proxy (default: TollgateConfig's\n"
      "                     spec.redirectMode, else nftables); the flag wins over the config\n"
      "  {} DIR  ebpf mode: bpffs directory for pinned links and maps (default\n"
      "                     /sys/fs/bpf/tollgate)\n",
      flags::kConfigDir, flags::kRunDir, flags::kMetricsPort, flags::kHealthPort,
      flags::kLogFormat, flags::kAccessLog, flags::kThreads, flags::kPodInterface,
      flags::kLogLevel, flags::kConfigDir, flags::kRunDir, flags::kMetricsPort,
      flags::kHealthPort, flags::kLogFormat, flags::kAccessLog, flags::kThreads,
      flags::kPodInterface, flags::kCaCert, flags::kSvidLifetime, flags::kTunnelConnections,
      flags::kReconcileInterval, flags::kDrainTime, flags::kSniffTimeout,
      flags::kMaxConnectionsPerPod, flags::kMaxConnectionsPerNode, flags::kRedirectMode,
      flags::kBpfPinDir);
}

Result<AgentOptions> parseOptions(const std::vector<std::string>& args) {
  AgentOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inlineValue;
    if (auto eq = flag.find('='); eq != std::string::npos && flag.rfind("--", 0) == 0) {
      inlineValue = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (flag == flags::kHelp || flag == "-h") {
      o.help = true;
      continue;
    }
    auto value = [&]() -> Result<std::string> {
      if (inlineValue) return *inlineValue;
      if (i + 1 >= args.size()) return fail(fmt::format("{}: missing value", flag));
      return args[++i];
    };
    auto v = value();
    if (!v) return std::unexpected(v.error());
    if (flag == flags::kConfigDir) {
      o.configDir = *v;
    } else if (flag == flags::kConfigSource) {
      if (*v != "files" && *v != "kubernetes") {
        return fail(fmt::format("{}: '{}' is not files or kubernetes", flag, *v));
      }
      o.configSource = *v;
    } else if (flag == flags::kKubeconfig) {
      o.kubeconfig = *v;
    } else if (flag == flags::kNodeName) {
      o.nodeName = *v;
    } else if (flag == flags::kRunDir) {
      o.runDir = *v;
    } else if (flag == flags::kMetricsPort || flag == flags::kHealthPort) {
      auto n = parseUint(flag, *v, 0, 65535);
      if (!n) return std::unexpected(n.error());
      (flag == flags::kMetricsPort ? o.metricsPort : o.healthPort) = static_cast<uint16_t>(*n);
    } else if (flag == flags::kLogFormat) {
      if (*v == "text") {
        o.logFormat = proxy::LogFormat::Text;
      } else if (*v == "json") {
        o.logFormat = proxy::LogFormat::Json;
      } else {
        return fail(fmt::format("{}: '{}' is not text or json", flag, *v));
      }
    } else if (flag == flags::kAccessLog) {
      o.accessLog = *v;
    } else if (flag == flags::kThreads) {
      auto n = parseUint(flag, *v, 1, 256);
      if (!n) return std::unexpected(n.error());
      o.threads = static_cast<int>(*n);
    } else if (flag == flags::kPodInterface) {
      o.podInterfaces.push_back(*v);
    } else if (flag == flags::kLogLevel) {
      if (*v != "debug" && *v != "info" && *v != "warn" && *v != "error") {
        return fail(fmt::format("{}: '{}' is not debug, info, warn or error", flag, *v));
      }
      o.logLevel = *v;
    } else if (flag == flags::kCaCert) {
      o.caCert = *v;
    } else if (flag == flags::kCaKey) {
      o.caKey = *v;
    } else if (flag == flags::kCaChain) {
      o.caChain = *v;
    } else if (flag == flags::kSvidLifetime) {
      auto d = parseDuration(flag, *v);
      if (!d) return std::unexpected(d.error());
      o.svidLifetime = *d;
    } else if (flag == flags::kTunnelConnections) {
      auto n = parseUint(flag, *v, 0, 64);
      if (!n) return std::unexpected(n.error());
      o.tunnelConnections = static_cast<int>(*n);
    } else if (flag == flags::kReconcileInterval) {
      auto d = parseInterval(flag, *v);
      if (!d) return std::unexpected(d.error());
      o.reconcileInterval = *d;
    } else if (flag == flags::kDrainTime) {
      auto d = parseInterval(flag, *v);
      if (!d) return std::unexpected(d.error());
      o.drainTime = *d;
    } else if (flag == flags::kSniffTimeout) {
      auto d = parseInterval(flag, *v);
      if (!d) return std::unexpected(d.error());
      if (d->count() == 0) return fail(fmt::format("{}: must not be 0", flag));
      o.sniffTimeout = *d;
    } else if (flag == flags::kMaxConnectionsPerPod || flag == flags::kMaxConnectionsPerNode) {
      auto n = parseUint(flag, *v, 1, 10'000'000);
      if (!n) return std::unexpected(n.error());
      (flag == flags::kMaxConnectionsPerPod ? o.maxConnectionsPerPod : o.maxConnectionsPerNode) =
          static_cast<size_t>(*n);
    } else if (flag == flags::kRedirectMode) {
      if (*v != "nftables" && *v != "ebpf") {
        return fail(fmt::format("{}: '{}' is not nftables or ebpf", flag, *v));
      }
      o.redirectMode = *v;
    } else if (flag == flags::kBpfPinDir) {
      if (!v->starts_with("/")) return fail(fmt::format("{}: '{}' is not an absolute path", flag, *v));
      o.bpfPinDir = *v;
    } else {
      return fail(fmt::format("unknown flag '{}'", flag));
    }
  }
  if (o.help) return o;
  if (o.configSource == "files") {
    if (o.configDir.empty()) return fail(fmt::format("{} is required", flags::kConfigDir));
    if (!o.kubeconfig.empty()) {
      return fail(fmt::format("{} needs {} kubernetes", flags::kKubeconfig, flags::kConfigSource));
    }
  } else {
    if (!o.configDir.empty()) {
      return fail(fmt::format("{} and {} kubernetes are exclusive", flags::kConfigDir,
                              flags::kConfigSource));
    }
    if (o.nodeName.empty()) {
      if (const char* env = std::getenv("NODE_NAME"); env && *env) o.nodeName = env;
    }
    if (o.nodeName.empty()) {
      return fail(fmt::format("{} kubernetes needs {} (or NODE_NAME)", flags::kConfigSource,
                              flags::kNodeName));
    }
  }
  if (o.runDir.empty()) return fail(fmt::format("{} must not be empty", flags::kRunDir));
  if (o.podInterfaces.empty()) o.podInterfaces.push_back("tg0");
  if (o.caCert.empty() != o.caKey.empty()) {
    return fail(fmt::format("{} and {} go together", flags::kCaCert, flags::kCaKey));
  }
  if (!o.caChain.empty() && o.caCert.empty()) {
    return fail(fmt::format("{} needs {} and {}", flags::kCaChain, flags::kCaCert, flags::kCaKey));
  }
  return o;
}

}  // namespace tollgate::agent
