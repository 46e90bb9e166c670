#pragma once

#include <chrono>
#include <cstddef>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proxy/asio.h"
#include "proxy/tunnel_client.h"

namespace tollgate::proxy {

struct TunnelPoolOptions {
  size_t connectionsPerKey = 2;  // TLS connections per (identity, gateway), chosen by least streams
  bool pooling = true;           // false: a new TLS connection per flow (churn benchmark)
  std::chrono::milliseconds backoffInitial{200};
  std::chrono::milliseconds backoffMax{5000};
  TunnelLimits limits;
};

// One flow to carry.
struct TunnelRequest {
  std::string ns;              // source workload's namespace and service account: whose SVID
  std::string serviceAccount;  // the TLS connection presents
  asio::ip::tcp::endpoint gateway;
  std::string authority;  // host:port the gateway connects to (a name for hostname routes)
  TunnelConnection::SocketFactory sockets;  // makes the TCP socket (marked, in the right netns)
  // Extra pool-key part: connections whose sockets live in different netns never mix. Empty when
  // tunnels are made from the node netns.
  std::string scope;
};

// Pooled TLS connections to gateways, keyed by (source identity, gateway address:port, scope).
// Thread-safe: sessions on any strand call open().
class TunnelPool {
 public:
  using OpenResult = std::expected<std::shared_ptr<TunnelStream>, TunnelError>;

  TunnelPool(asio::io_context& io, SvidSource svids, Metrics* metrics = nullptr,
             TunnelPoolOptions options = {});
  ~TunnelPool();
  TunnelPool(const TunnelPool&) = delete;
  TunnelPool& operator=(const TunnelPool&) = delete;

  // A CONNECT stream that the gateway answered 200, or why not. Never falls back to anything.
  awaitable<OpenResult> open(TunnelRequest req);
  // Closes every connection; later opens fail.
  void shutdown();

  size_t connectionCount() const;  // connections currently in the pool (any state)
  const TunnelPoolOptions& options() const { return options_; }

 private:
  awaitable<OpenResult> openOnce(TunnelRequest req);

  struct Entry {
    std::vector<std::shared_ptr<TunnelConnection>> conns;
    int failures = 0;
    std::chrono::steady_clock::time_point retryAt{};
    std::string lastError;
    std::string lastReason;
    TunnelIdentityPtr identity;  // the SVID `ctx` was built from
    std::shared_ptr<SSL_CTX> ctx;
  };
  struct State {
    mutable std::mutex mu;
    std::map<std::string, Entry> entries;
    bool shut = false;
  };

  asio::io_context& io_;
  SvidSource svids_;
  Metrics* metrics_;
  TunnelPoolOptions options_;
  std::shared_ptr<State> state_;
};

}  // namespace tollgate::proxy
