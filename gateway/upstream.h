#pragma once

#include <memory>
#include <optional>
#include <string>

#include "gateway/tls_contexts.h"
#include "proxy/asio.h"

namespace tollgate::gateway {

namespace asio = boost::asio;
using asio::awaitable;
using boost::system::error_code;

// The gateway's connection to a destination: plain TCP (DISABLE) or a TLS client stream the
// gateway originated (SIMPLE/MUTUAL). Both directions may be in flight at once (one read and
// one write), which asio's ssl::stream allows.
class Upstream {
 public:
  explicit Upstream(asio::ip::tcp::socket sock);
  Upstream(asio::ip::tcp::socket sock, UpstreamTls tls);
  ~Upstream();

  // Verified TLS handshake with SNI and the hostname/SAN checks of `tls`. No-op for plain TCP.
  awaitable<error_code> handshake();
  // After a failed handshake: why, for logs.
  std::string tlsFailure() const { return tlsFailure_; }

  awaitable<size_t> readSome(asio::mutable_buffer b, error_code& ec);
  awaitable<void> writeAll(asio::const_buffer b, error_code& ec);
  // Half-close towards the destination: TCP FIN. For TLS no close_notify is sent (asio cannot
  // send one while a read is pending), so a TLS server sees a bare FIN after the last record.
  void shutdownWrite();
  void cancel();
  void close();

  bool isTls() const { return tls_ != nullptr; }
  asio::ip::tcp::socket& socket();

 private:
  std::optional<asio::ip::tcp::socket> plain_;
  UpstreamTls tlsConfig_;
  std::unique_ptr<ssl::stream<asio::ip::tcp::socket>> tls_;
  std::string tlsFailure_;
};

}  // namespace tollgate::gateway
