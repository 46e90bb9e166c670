#pragma once

#include <utility>  // before <boost/asio/awaitable.hpp> with Boost 1.74

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "kube/client_config.h"
#include "kube/token_file.h"

namespace tollgate::kube {

namespace asio = boost::asio;

struct Response {
  unsigned status = 0;
  std::string body;
};

// The seam to the API server: HTTPS (Boost.Beast over OpenSSL, TLS 1.2+, the server verified
// against the config's CA and its host name or IP) with a client certificate or a bearer token.
// One TCP+TLS connection per request; a watch keeps its connection for the stream. Every
// operation has a deadline. Thread-safe (immutable after create, the token file has its lock).
class ApiClient {
 public:
  static Result<std::shared_ptr<ApiClient>> create(ClientConfig config);

  class Connection;

  // A new connection (resolve, connect, handshake) within `timeout`.
  asio::awaitable<Result<std::shared_ptr<Connection>>> connect(asio::any_io_executor ex,
                                                               std::chrono::seconds timeout);

  // connect + one request + the whole response within `timeout`. A 401 makes the next request
  // re-read the token file.
  asio::awaitable<Result<Response>> request(asio::any_io_executor ex, boost::beast::http::verb verb,
                                            std::string target, std::string body,
                                            std::chrono::seconds timeout,
                                            std::string contentType = "application/json");

  const ClientConfig& config() const { return config_; }
  // The Authorization header value, or "" without a token.
  Result<std::string> authorization();
  void tokenRejected();

 private:
  explicit ApiClient(ClientConfig config) : config_(std::move(config)) {}
  ClientConfig config_;
  std::unique_ptr<asio::ssl::context> tls_;
  std::unique_ptr<TokenFile> tokenFile_;
};

// One TLS connection. cancel() (on the connection's executor) ends whatever is pending.
class ApiClient::Connection {
 public:
  Connection(ApiClient& client, asio::any_io_executor ex);

  asio::awaitable<Result<Response>> request(boost::beast::http::verb verb, const std::string& target,
                                            const std::string& body, const std::string& contentType,
                                            std::chrono::seconds timeout);

  // GET `target` and hand every line of the body to onLine as it arrives (a watch: one JSON
  // object per line, chunked). Each read must arrive within idleTimeout. Returns the status and,
  // for a status other than 200, the body; with 200, when the server ends the stream or onLine
  // returns false. onOpen runs once the 200 headers are in (a quiet watch sends no line).
  asio::awaitable<Result<Response>> streamLines(const std::string& target,
                                                std::chrono::seconds idleTimeout,
                                                const std::function<bool(std::string_view)>& onLine,
                                                const std::function<void()>& onOpen = {});
  void cancel();

 private:
  friend class ApiClient;
  asio::awaitable<Status> open(std::chrono::seconds timeout);
  Status prepareRequest(boost::beast::http::verb verb, const std::string& target);

  ApiClient& client_;
  boost::beast::ssl_stream<boost::beast::tcp_stream> stream_;
  boost::beast::flat_buffer buffer_;
  std::string auth_;
};

}  // namespace tollgate::kube
