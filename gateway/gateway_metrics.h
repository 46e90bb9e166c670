#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

namespace tollgate::gateway {

// The gateway's counters, rendered as Prometheus text. Names carry the tollgate_gateway_ prefix
// so a scrape of a node running both binaries cannot mix them up.
class GatewayMetrics {
 public:
  // One tunnel = one CONNECT (an HTTP/1.1 connection or one HTTP/2 stream).
  // result: "allow", "deny" or "error"; reason: the decision reason or the failure.
  void countStream(std::string_view protocol, std::string_view result, std::string_view reason);
  uint64_t streams(std::string_view result, std::string_view reason) const;

  // A client's HTTP/2 connection closed for abusing the protocol (rapid_reset,
  // settings_flood, ping_flood, continuation_flood, control_flood, header_list_too_large,
  // streams_refused, protocol_error, write_stalled).
  void countH2Abuse(std::string_view reason);
  uint64_t h2Abuse(std::string_view reason) const;

  std::string render() const;

  std::atomic<uint64_t> tlsConnectionsTotal{0};  // handshakes that completed with an identity
  std::atomic<int64_t> tlsConnectionsActive{0};
  std::atomic<uint64_t> tlsHandshakeFailures{0};  // includes missing/foreign/non-SPIFFE certs
  std::atomic<uint64_t> tunnelsTotal{0};          // CONNECT requests seen, any outcome
  std::atomic<int64_t> tunnelsActive{0};          // relaying now
  std::atomic<uint64_t> bytesUp{0};               // client -> upstream
  std::atomic<uint64_t> bytesDown{0};             // upstream -> client
  std::atomic<uint64_t> reloadsOk{0};
  std::atomic<uint64_t> reloadsFailed{0};
  std::atomic<uint64_t> h2IdleClosed{0};  // h2 connections closed after --h2-idle-timeout with no stream

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> streams_;
  std::map<std::string, uint64_t, std::less<>> h2Abuse_;
};

}  // namespace tollgate::gateway
