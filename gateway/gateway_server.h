#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/shared_slot.h"
#include "gateway/gateway_context.h"
#include "gateway/h2_connection.h"
#include "gateway/tunnel_opener.h"

namespace tollgate::gateway {

// The tunnel listener: mTLS (TLS 1.3, verified SPIFFE client certificate) on one port, then
// HTTP/2 CONNECT streams (ALPN h2) or one HTTP/1.1 CONNECT (ALPN http/1.1 or none) per
// connection. Runs on the io_context of `in`; not thread-safe.
class GatewayServer {
 public:
  explicit GatewayServer(GatewayInputs& in);
  ~GatewayServer();
  GatewayServer(const GatewayServer&) = delete;
  GatewayServer& operator=(const GatewayServer&) = delete;

  // The listener's TLS context; replaced on certificate rotation, used by the next handshake.
  // Any thread.
  void setServerContext(std::shared_ptr<ssl::context> ctx) { ctx_.store(std::move(ctx)); }
  // Data-plane threads: accepted connections are spread over these io_contexts round-robin and
  // each lives entirely on one of them. None: everything runs on the inputs' io_context.
  // Call before listen().
  void setWorkers(std::vector<asio::io_context*> workers) { workers_ = std::move(workers); }
  Status listen(const std::string& ip, uint16_t port);
  uint16_t port() const { return port_; }

  // SIGTERM: stop accepting, GOAWAY on every HTTP/2 connection; open tunnels finish. Call on
  // the inputs' io_context.
  void startDrain();
  bool draining() const { return draining_.load(); }

 private:
  awaitable<void> acceptLoop();
  awaitable<void> serveConnection(asio::ip::tcp::socket sock);
  awaitable<void> serveHttp1(std::shared_ptr<TlsStream> tls, identity::SpiffeId peer);

  GatewayInputs& in_;
  TunnelOpener opener_;
  SharedSlot<ssl::context> ctx_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  std::vector<asio::io_context*> workers_;
  size_t nextWorker_ = 0;
  std::mutex h2Mu_;  // connections register from their worker threads
  std::list<std::weak_ptr<H2Connection>> h2_;
};

}  // namespace tollgate::gateway
