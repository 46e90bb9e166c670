#include "gateway/gateway_metrics.h"

#include <fmt/format.h>

#include "proxy/metrics.h"

namespace tollgate::gateway {

void GatewayMetrics::countStream(std::string_view protocol, std::string_view result,
                                 std::string_view reason) {
  std::lock_guard lock(mu_);
  ++streams_[{std::string(protocol), std::string(result), std::string(reason)}];
}

uint64_t GatewayMetrics::streams(std::string_view result, std::string_view reason) const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& [k, v] : streams_) {
    if (std::get<1>(k) == result && std::get<2>(k) == reason) n += v;
  }
  return n;
}

void GatewayMetrics::countH2Abuse(std::string_view reason) {
  std::lock_guard lock(mu_);
  auto it = h2Abuse_.find(reason);
  if (it == h2Abuse_.end()) it = h2Abuse_.emplace(std::string(reason), 0).first;
  ++it->second;
}

uint64_t GatewayMetrics::h2Abuse(std::string_view reason) const {
  std::lock_guard lock(mu_);
  auto it = h2Abuse_.find(reason);
  return it == h2Abuse_.end() ? 0 : it->second;
}

std::string GatewayMetrics::render() const {
  std::string out;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help, double v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    out += proxy::formatSample(name, {}, v);
  };
  out +=
      "# HELP tollgate_gateway_streams_total CONNECT tunnels finished, by protocol, result and "
      "reason.\n# TYPE tollgate_gateway_streams_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [k, v] : streams_) {
      out += proxy::formatSample(
          "tollgate_gateway_streams_total",
          {{"protocol", std::get<0>(k)}, {"result", std::get<1>(k)}, {"reason", std::get<2>(k)}},
          static_cast<double>(v));
    }
  }
  out +=
      "# HELP tollgate_gateway_h2_abuse_total HTTP/2 client connections closed for abusing the "
      "protocol, by reason.\n# TYPE tollgate_gateway_h2_abuse_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [reason, v] : h2Abuse_) {
      out += proxy::formatSample("tollgate_gateway_h2_abuse_total", {{"reason", reason}},
                                 static_cast<double>(v));
    }
  }
  metric("tollgate_gateway_h2_idle_closed_total", "counter",
         "HTTP/2 client connections closed (GOAWAY) after the idle timeout with no stream open.",
         static_cast<double>(h2IdleClosed.load()));
  metric("tollgate_gateway_tunnels_total", "counter", "CONNECT requests received.",
         static_cast<double>(tunnelsTotal.load()));
  metric("tollgate_gateway_tunnels_active", "gauge", "CONNECT tunnels relaying now.",
         static_cast<double>(tunnelsActive.load()));
  metric("tollgate_gateway_tls_connections_total", "counter",
         "Client TLS connections accepted with a verified SPIFFE identity.",
         static_cast<double>(tlsConnectionsTotal.load()));
  metric("tollgate_gateway_tls_connections_active", "gauge", "Client TLS connections open.",
         static_cast<double>(tlsConnectionsActive.load()));
  metric("tollgate_gateway_tls_handshake_failures_total", "counter",
         "Client TLS handshakes refused (no, foreign or non-SPIFFE certificate, timeout).",
         static_cast<double>(tlsHandshakeFailures.load()));
  metric("tollgate_gateway_bytes_up_total", "counter", "Bytes relayed from clients to upstreams.",
         static_cast<double>(bytesUp.load()));
  metric("tollgate_gateway_bytes_down_total", "counter", "Bytes relayed from upstreams to clients.",
         static_cast<double>(bytesDown.load()));
  metric("tollgate_gateway_config_reloads_ok_total", "counter",
         "Config reloads that produced a new snapshot.", static_cast<double>(reloadsOk.load()));
  metric("tollgate_gateway_config_reloads_failed_total", "counter",
         "Config reloads rejected (old snapshot kept).", static_cast<double>(reloadsFailed.load()));
  return out;
}

}  // namespace tollgate::gateway
