#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/error.h"
#include "proxy/asio.h"

namespace tollgate::proxy {

// A minimal plain-HTTP/1.1 GET server for /metrics and /healthz/ready: one request per
// connection, a read deadline, a size cap, and nothing else.
class StatusServer {
 public:
  struct Response {
    int status = 200;
    std::string contentType = "text/plain; version=0.0.4";
    std::string body;
  };
  using Handler = std::function<Response()>;

  explicit StatusServer(asio::io_context& io) : io_(io) {}

  void route(std::string path, Handler h) { routes_[std::move(path)] = std::move(h); }
  // Binds ip:port (port 0: any) in the calling thread's netns and starts accepting.
  Status listen(const std::string& ip, uint16_t port);
  // Starts accepting on an already listening TCP socket (owned from here on): one obtained
  // through the SocketRegistry, possibly inherited from the previous agent.
  Status listenFd(int fd);
  uint16_t port() const { return port_; }
  void close();

 private:
  awaitable<void> acceptLoop();
  awaitable<void> serve(asio::ip::tcp::socket sock);

  asio::io_context& io_;
  std::map<std::string, Handler> routes_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  uint16_t port_ = 0;
};

// Parses "GET /path HTTP/1.1..." and returns the path without query, or "" when malformed.
std::string requestPath(std::string_view head);

}  // namespace tollgate::proxy
