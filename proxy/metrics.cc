#include "proxy/metrics.h"

#include <fmt/format.h>

#include "proxy/relay_buffer.h"

namespace tollgate::proxy {

std::string escapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string formatSample(std::string_view name, const Metrics::Labels& labels, double value) {
  std::string out(name);
  if (!labels.empty()) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out += ',';
      first = false;
      out += fmt::format("{}=\"{}\"", k, escapeLabelValue(v));
    }
    out += '}';
  }
  out += fmt::format(" {}\n", value);
  return out;
}

void Metrics::countConnection(std::string_view decision, std::string_view reason) {
  std::lock_guard lock(mu_);
  ++connections_[{std::string(decision), std::string(reason)}];
}

uint64_t Metrics::connections(std::string_view decision, std::string_view reason) const {
  std::lock_guard lock(mu_);
  auto it = connections_.find({std::string(decision), std::string(reason)});
  return it == connections_.end() ? 0 : it->second;
}

std::map<std::string, uint64_t> Metrics::connectionsByReason(std::string_view decision) const {
  std::lock_guard lock(mu_);
  std::map<std::string, uint64_t> out;
  for (const auto& [key, n] : connections_) {
    if (key.first == decision) out[key.second] += n;
  }
  return out;
}

void Metrics::countGatewayFailure(std::string_view reason) {
  std::lock_guard lock(mu_);
  auto it = gatewayFailures_.find(reason);
  if (it == gatewayFailures_.end()) it = gatewayFailures_.emplace(std::string(reason), 0).first;
  ++it->second;
}

uint64_t Metrics::gatewayFailures(std::string_view reason) const {
  std::lock_guard lock(mu_);
  auto it = gatewayFailures_.find(reason);
  return it == gatewayFailures_.end() ? 0 : it->second;
}

void Metrics::countRevocation(std::string_view pod, std::string_view reason, bool cut) {
  std::lock_guard lock(mu_);
  ++revocations_[{cut, std::string(pod), std::string(reason)}];
}

uint64_t Metrics::revocations(std::string_view pod, std::string_view reason, bool cut) const {
  std::lock_guard lock(mu_);
  auto it = revocations_.find({cut, std::string(pod), std::string(reason)});
  return it == revocations_.end() ? 0 : it->second;
}

void Metrics::addCollector(Collector c) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(c));
}

std::string Metrics::render() const {
  std::string out;
  auto counter = [&](std::string_view name, std::string_view help, uint64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", name, help, name);
    out += formatSample(name, {}, static_cast<double>(v));
  };
  auto gauge = [&](std::string_view name, std::string_view help, int64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, help, name);
    out += formatSample(name, {}, static_cast<double>(v));
  };

  std::vector<Collector> collectors;
  out += "# HELP tollgate_connections_total Connections handled, by decision and reason.\n"
         "# TYPE tollgate_connections_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, v] : connections_) {
      out += formatSample("tollgate_connections_total",
                          {{"decision", key.first}, {"reason", key.second}},
                          static_cast<double>(v));
    }
    collectors = collectors_;
    out += "# HELP tollgate_gateway_failures_total Flows not carried through a gateway, by "
           "reason.\n"
           "# TYPE tollgate_gateway_failures_total counter\n";
    for (const auto& [reason, v] : gatewayFailures_) {
      out += formatSample("tollgate_gateway_failures_total", {{"reason", reason}},
                          static_cast<double>(v));
    }
    for (bool cut : {true, false}) {
      std::string_view name = cut ? "tollgate_connections_revoked_total"
                                  : "tollgate_connections_revocation_kept_total";
      out += fmt::format(
          "# HELP {} Open connections a config reload no longer allowed, {}, by pod and "
          "reason.\n# TYPE {} counter\n",
          name, cut ? "cut" : "left open (revocation: keep)", name);
      for (const auto& [key, v] : revocations_) {
        if (std::get<0>(key) != cut) continue;
        out += formatSample(name, {{"pod", std::get<1>(key)}, {"reason", std::get<2>(key)}},
                            static_cast<double>(v));
      }
    }
  }
  gauge("tollgate_connections_active", "Connections currently open.", active.load());
  gauge("tollgate_relay_buffers_held",
        "16 KiB relay buffers leased by sessions now (only while bytes are in flight).",
        static_cast<int64_t>(RelayBuffer::held()));
  counter("tollgate_bytes_up_total", "Bytes relayed from pods to upstreams.", bytesUp.load());
  counter("tollgate_bytes_down_total", "Bytes relayed from upstreams to pods.", bytesDown.load());
  counter("tollgate_sniff_timeouts_total", "Connections whose first bytes did not arrive in time.",
          sniffTimeouts.load());
  counter("tollgate_limit_rejections_total", "Connections refused by the per-pod limit.",
          limitRejections.load());
  counter("tollgate_node_limit_rejections_total",
          "Connections refused by the node-wide limit (the pod held its fair share).",
          nodeLimitRejections.load());
  counter("tollgate_resolver_failures_total", "Upstream name resolutions that failed.",
          resolverFailures.load());
  counter("tollgate_upstream_connect_failures_total", "Upstream connects that failed.",
          upstreamConnectFailures.load());
  counter("tollgate_http_upgrades_total",
          "HTTP connections relayed as a byte stream after the upstream's 101 (WebSocket).",
          httpUpgrades.load());
  counter("tollgate_name_addr_mismatch_total",
          "Connections whose SNI/Host the pod never resolved to their destination.",
          nameAddrMismatch.load());
  counter("tollgate_refused_loop_total", "Connections refused because they target the proxy.",
          refusedLoops.load());
  counter("tollgate_refused_unattributed_total",
          "Connections refused because their origin or destination is unknown.",
          refusedUnattributed.load());
  counter("tollgate_config_reloads_ok_total", "Config reloads that produced a new snapshot.",
          reloadsOk.load());
  counter("tollgate_config_reloads_failed_total", "Config reloads rejected (old snapshot kept).",
          reloadsFailed.load());
  counter("tollgate_redirect_load_failures_total",
          "Redirects that could not be built from the config (the previous one kept).",
          redirectLoadFailures.load());
  counter("tollgate_enroll_ok_total", "Enrollment requests that succeeded.", enrollOk.load());
  counter("tollgate_enroll_failed_total", "Enrollment requests that failed.", enrollFailed.load());
  counter("tollgate_enroll_excluded_total",
          "Pod ADDs in an excluded namespace, answered ok without enrolling.",
          enrollExcluded.load());
  counter("tollgate_enroll_unknown_pod_total",
          "Pod ADDs refused because the API server has no such Pod on this node.",
          enrollUnknownPod.load());
  gauge("tollgate_enrolled_pods", "Pods currently enrolled.", enrolledPods.load());
  counter("tollgate_tunnel_streams_total", "CONNECT streams opened to gateways.",
          tunnelStreams.load());
  gauge("tollgate_tunnel_connections_active", "TLS connections to gateways currently up.",
        tunnelConnectionsActive.load());
  counter("tollgate_tunnel_connections_opened_total", "TLS connections to gateways established.",
          tunnelConnectionsOpened.load());
  for (const auto& c : collectors) out += c();
  return out;
}

}  // namespace tollgate::proxy
