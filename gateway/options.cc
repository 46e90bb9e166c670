#include "gateway/options.h"

#include <fmt/format.h>

#include <charconv>

namespace tollgate::gateway {
namespace {

Result<uint32_t> parseNumber(std::string_view flag, std::string_view v, uint32_t max) {
  uint32_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n > max) {
    return fail(fmt::format("{}: invalid value '{}'", flag, v));
  }
  return n;
}

}  // namespace

std::string usage() {
  return "usage: tollgate-gateway --config-dir DIR --cert SVID.pem --key KEY.pem "
         "--trust-bundle CA.pem\n"
         "       tollgate-gateway --config-source kubernetes [--kubeconfig PATH] --cert ...\n"
         "         (--config-source files|kubernetes: default files; kubernetes lists and watches\n"
         "          the API server, in-cluster unless --kubeconfig is given)\n"
         "         [--listen 0.0.0.0:15008] [--metrics-port 15020] [--health-port 15021]\n"
         "         [--credentials-dir DIR] [--namespace NS] [--access-log PATH]\n"
         "         [--log-format text|json] [--drain-seconds N] [--threads N]\n"
         "         [--label key=value]... [--h2-idle-seconds N (default 60; 0 = never)]\n"
         "         [--h2-write-stall-seconds N (default 30; 0 = never)]\n";
}

Result<Options> parseOptions(const std::vector<std::string>& args) {
  Options o;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    if (auto eq = flag.find('='); eq != std::string::npos && flag.starts_with("--")) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else {
      if (i + 1 >= args.size()) return fail(fmt::format("{}: missing value", flag));
      value = args[++i];
    }
    if (flag == kFlagConfigDir) {
      o.configDir = value;
    } else if (flag == kFlagConfigSource) {
      if (value != "files" && value != "kubernetes") {
        return fail(fmt::format("{}: '{}' is not files or kubernetes", flag, value));
      }
      o.configSource = value;
    } else if (flag == kFlagKubeconfig) {
      o.kubeconfig = value;
    } else if (flag == kFlagCert) {
      o.certFile = value;
    } else if (flag == kFlagKey) {
      o.keyFile = value;
    } else if (flag == kFlagTrustBundle) {
      o.trustBundleFile = value;
    } else if (flag == kFlagListen) {
      auto colon = value.rfind(':');
      if (colon == std::string::npos) return fail(fmt::format("{}: want ip:port", flag));
      auto port = parseNumber(flag, std::string_view(value).substr(colon + 1), 65535);
      if (!port) return std::unexpected(port.error());
      o.listenIp = value.substr(0, colon);
      if (o.listenIp.size() > 2 && o.listenIp.front() == '[' && o.listenIp.back() == ']') {
        o.listenIp = o.listenIp.substr(1, o.listenIp.size() - 2);
      }
      o.listenPort = static_cast<uint16_t>(*port);
    } else if (flag == kFlagMetricsPort || flag == kFlagHealthPort) {
      auto port = parseNumber(flag, value, 65535);
      if (!port) return std::unexpected(port.error());
      (flag == kFlagMetricsPort ? o.metricsPort : o.healthPort) = static_cast<uint16_t>(*port);
    } else if (flag == kFlagCredentialsDir) {
      o.credentialsDir = value;
    } else if (flag == kFlagNamespace) {
      o.ns = value;
    } else if (flag == kFlagAccessLog) {
      o.accessLogPath = value;
    } else if (flag == kFlagLogFormat) {
      if (value == "text") {
        o.logFormat = proxy::LogFormat::Text;
      } else if (value == "json") {
        o.logFormat = proxy::LogFormat::Json;
      } else {
        return fail(fmt::format("{}: want text or json, got '{}'", flag, value));
      }
    } else if (flag == kFlagDrainSeconds) {
      auto n = parseNumber(flag, value, 3600);
      if (!n) return std::unexpected(n.error());
      o.drain = std::chrono::seconds(*n);
    } else if (flag == kFlagH2WriteStallSeconds) {
      auto n = parseNumber(flag, value, 3600);
      if (!n) return std::unexpected(n.error());
      o.writeStallTimeout = std::chrono::seconds(*n);
    } else if (flag == kFlagH2IdleSeconds) {
      auto n = parseNumber(flag, value, 86400);
      if (!n) return std::unexpected(n.error());
      o.h2IdleTimeout = std::chrono::seconds(*n);
    } else if (flag == kFlagThreads) {
      auto n = parseNumber(flag, value, 64);
      if (!n) return std::unexpected(n.error());
      o.threads = *n;
    } else if (flag == kFlagLabel) {
      auto eq = value.find('=');
      if (eq == 0 || eq == std::string::npos) {
        return fail(fmt::format("{}: want key=value, got '{}'", flag, value));
      }
      o.labels[value.substr(0, eq)] = value.substr(eq + 1);
    } else {
      return fail(fmt::format("unknown flag '{}'", flag));
    }
  }
  if (o.configSource == "files") {
    if (o.configDir.empty()) return fail(fmt::format("{} is required", kFlagConfigDir));
    if (!o.kubeconfig.empty()) {
      return fail(fmt::format("{} needs {} kubernetes", kFlagKubeconfig, kFlagConfigSource));
    }
  } else if (!o.configDir.empty()) {
    return fail(
        fmt::format("{} and {} kubernetes are exclusive", kFlagConfigDir, kFlagConfigSource));
  }
  if (o.certFile.empty() || o.keyFile.empty()) return fail("--cert and --key are required");
  if (o.trustBundleFile.empty()) return fail("--trust-bundle is required");
  return o;
}

}  // namespace tollgate::gateway
