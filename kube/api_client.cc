#include "kube/api_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include <limits>

#include <fmt/format.h>

namespace tollgate::kube {

namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {
constexpr size_t kMaxBody = 256u << 20;  // one list page; pageLimit keeps it far below
constexpr size_t kMaxLine = 64u << 20;   // one watch event (one object)

std::string errText(const boost::system::error_code& ec) { return ec.message(); }
}  // namespace

Result<std::shared_ptr<ApiClient>> ApiClient::create(ClientConfig config) {
  std::shared_ptr<ApiClient> c(new ApiClient(std::move(config)));
  c->tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  auto& ctx = *c->tls_;
  boost::system::error_code ec;
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  ctx.set_verify_mode(asio::ssl::verify_peer, ec);
  const auto& cfg = c->config_;
  if (!cfg.caPem.empty()) {
    ctx.add_certificate_authority(asio::buffer(cfg.caPem), ec);
    if (ec) return fail(fmt::format("{}: CA: {}", cfg.source, errText(ec)));
  } else {
    ctx.set_default_verify_paths(ec);
  }
  if (!cfg.clientCertPem.empty()) {
    ctx.use_certificate_chain(asio::buffer(cfg.clientCertPem), ec);
    if (ec) return fail(fmt::format("{}: client certificate: {}", cfg.source, errText(ec)));
    ctx.use_private_key(asio::buffer(cfg.clientKeyPem), asio::ssl::context::pem, ec);
    if (ec) return fail(fmt::format("{}: client key: {}", cfg.source, errText(ec)));
  }
  if (!cfg.tokenFile.empty()) {
    c->tokenFile_ = std::make_unique<TokenFile>(cfg.tokenFile);
    if (auto t = c->tokenFile_->current(); !t) return std::unexpected(t.error().wrap(cfg.source));
  }
  return c;
}

Result<std::string> ApiClient::authorization() {
  if (tokenFile_) {
    auto t = tokenFile_->current();
    if (!t) return std::unexpected(t.error());
    return "Bearer " + *t;
  }
  if (!config_.token.empty()) return "Bearer " + config_.token;
  return std::string();
}

void ApiClient::tokenRejected() {
  if (tokenFile_) tokenFile_->invalidate();
}

asio::awaitable<Result<std::shared_ptr<ApiClient::Connection>>> ApiClient::connect(
    asio::any_io_executor ex, std::chrono::seconds timeout) {
  auto conn = std::make_shared<Connection>(*this, ex);
  auto s = co_await conn->open(timeout);
  if (!s) co_return std::unexpected(s.error());
  co_return conn;
}

asio::awaitable<Result<Response>> ApiClient::request(asio::any_io_executor ex, http::verb verb,
                                                     std::string target, std::string body,
                                                     std::chrono::seconds timeout,
                                                     std::string contentType) {
  auto conn = co_await connect(ex, timeout);
  if (!conn) co_return std::unexpected(conn.error());
  co_return co_await (*conn)->request(verb, target, body, contentType, timeout);
}

ApiClient::Connection::Connection(ApiClient& client, asio::any_io_executor ex)
    : client_(client), stream_(ex, *client.tls_) {}

asio::awaitable<Status> ApiClient::Connection::open(std::chrono::seconds timeout) {
  const auto& cfg = client_.config_;
  std::string where = fmt::format("API server {}:{}", cfg.host, cfg.port);
  boost::system::error_code ec;
  auto& tcpStream = beast::get_lowest_layer(stream_);
  tcp::resolver resolver(stream_.get_executor());
  auto endpoints = co_await resolver.async_resolve(cfg.host, std::to_string(cfg.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(fmt::format("{}: resolve: {}", where, errText(ec)), ec.value());
  tcpStream.expires_after(timeout);
  co_await tcpStream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(fmt::format("{}: connect: {}", where, errText(ec)), ec.value());
  tcpStream.socket().set_option(tcp::no_delay(true), ec);
  SSL* ssl = stream_.native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  boost::system::error_code addrEc;
  asio::ip::make_address(cfg.host, addrEc);
  if (!addrEc) {
    X509_VERIFY_PARAM_set1_ip_asc(param, cfg.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, cfg.host.c_str(), 0);
    SSL_set_tlsext_host_name(ssl, cfg.host.c_str());
  }
  co_await stream_.async_handshake(asio::ssl::stream_base::client,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(fmt::format("{}: TLS handshake: {}", where, errText(ec)), ec.value());
  auto auth = client_.authorization();
  if (!auth) co_return std::unexpected(auth.error());
  auth_ = *auth;
  co_return Status{};
}

void ApiClient::Connection::cancel() {
  boost::system::error_code ec;
  beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
  beast::get_lowest_layer(stream_).cancel();
}

asio::awaitable<Result<Response>> ApiClient::Connection::request(http::verb verb,
                                                                 const std::string& target,
                                                                 const std::string& body,
                                                                 const std::string& contentType,
                                                                 std::chrono::seconds timeout) {
  const auto& cfg = client_.config_;
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, cfg.host);
  req.set(http::field::user_agent, "tollgate");
  req.set(http::field::accept, "application/json");
  if (!auth_.empty()) req.set(http::field::authorization, auth_);
  if (!body.empty() || verb == http::verb::post || verb == http::verb::put) {
    req.set(http::field::content_type, contentType);
    req.body() = body;
    req.prepare_payload();
  }
  boost::system::error_code ec;
  beast::get_lowest_layer(stream_).expires_after(timeout);
  co_await http::async_write(stream_, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(fmt::format("{} {}: write: {}", std::string(req.method_string()), target, errText(ec)), ec.value());
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  co_await http::async_read(stream_, buffer_, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(fmt::format("{} {}: read: {}", std::string(req.method_string()), target, errText(ec)), ec.value());
  auto res = parser.release();
  if (res.result_int() == 401) client_.tokenRejected();
  co_return Response{res.result_int(), std::move(res.body())};
}

asio::awaitable<Result<Response>> ApiClient::Connection::streamLines(
    const std::string& target, std::chrono::seconds idleTimeout,
    const std::function<bool(std::string_view)>& onLine,
                                                const std::function<void()>& onOpen) {
  const auto& cfg = client_.config_;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, cfg.host);
  req.set(http::field::user_agent, "tollgate");
  req.set(http::field::accept, "application/json");
  if (!auth_.empty()) req.set(http::field::authorization, auth_);
  boost::system::error_code ec;
  auto& tcpStream = beast::get_lowest_layer(stream_);
  tcpStream.expires_after(idleTimeout);
  co_await http::async_write(stream_, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(fmt::format("GET {}: write: {}", target, errText(ec)), ec.value());

  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  std::string pending;
  bool tooLong = false;
  // Chunks are not stored in the body: each is appended to `pending`, cut into lines below.
  auto onChunk = [&](std::uint64_t, beast::string_view data, boost::system::error_code&) {
    pending.append(data.data(), data.size());
    if (pending.size() > kMaxLine) tooLong = true;
    return data.size();
  };
  parser.on_chunk_body(onChunk);
  co_await http::async_read_header(stream_, buffer_, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(fmt::format("GET {}: read header: {}", target, errText(ec)), ec.value());
  unsigned status = parser.get().result_int();
  if (status == 200 && onOpen) onOpen();  // the stream is up before any line arrives
  if (status != 200) {
    parser.body_limit(kMaxBody);
    co_await http::async_read(stream_, buffer_, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (status == 401) client_.tokenRejected();
    co_return Response{status, pending.empty() ? parser.get().body() : pending};
  }
  for (;;) {
    if (!parser.chunked()) {  // a server that sent Content-Length: the body is the stream
      pending += parser.get().body();
      parser.get().body().clear();
    }
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != pending.npos; start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (!line.empty() && !onLine(line)) co_return Response{200, {}};
    }
    pending.erase(0, start);
    if (tooLong) co_return fail(fmt::format("GET {}: a line over {} bytes", target, kMaxLine));
    if (parser.is_done()) {
      if (!pending.empty() && !onLine(pending)) co_return Response{200, {}};
      co_return Response{200, {}};
    }
    tcpStream.expires_after(idleTimeout);
    co_await http::async_read_some(stream_, buffer_, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::end_of_stream || ec == asio::ssl::error::stream_truncated) {
      co_return fail(fmt::format("GET {}: the server closed the stream", target), ec.value());
    }
    if (ec) co_return fail(fmt::format("GET {}: read: {}", target, errText(ec)), ec.value());
  }
}

}  // namespace tollgate::kube
