#include "gateway/gateway_server.h"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <array>
#include <boost/asio/read_until.hpp>

#include "common/log.h"
#include "gateway/deadline.h"
#include "gateway/gateway_metrics.h"
#include "gateway/http1_connect.h"
#include "proxy/socket_util.h"

namespace tollgate::gateway {
namespace {

constexpr std::string_view kLog = "gateway";
constexpr size_t kMaxRequestHead = 8 * 1024;
constexpr auto kCloseNotifyWait = std::chrono::milliseconds(1000);

bool isEof(const error_code& ec) {
  return ec == asio::error::eof || ec == ssl::error::stream_truncated;
}

// Sends close_notify (bounded wait for the peer's) and closes the socket.
awaitable<void> closeTls(TlsStream& tls) {
  asio::steady_timer timer(tls.get_executor());
  auto st = armDeadline(timer, tls.next_layer(), kCloseNotifyWait);
  error_code ec;
  co_await tls.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
  disarm(timer, *st);
  tls.lowest_layer().close(ec);
}

}  // namespace

GatewayServer::GatewayServer(GatewayInputs& in) : in_(in), opener_(in) {}

GatewayServer::~GatewayServer() = default;

Status GatewayServer::listen(const std::string& ip, uint16_t port) {
  error_code ec;
  auto addr = asio::ip::make_address(ip, ec);
  if (ec) return fail("gateway: bad listen address " + ip);
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(in_.io);
  asio::ip::tcp::endpoint ep(addr, port);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(fmt::format("gateway: listen {}:{}: {}", ip, port, ec.message()), ec.value());
  }
  port_ = acc->local_endpoint().port();
  acceptor_ = std::move(acc);
  asio::co_spawn(in_.io, acceptLoop(), asio::detached);
  return {};
}

void GatewayServer::startDrain() {
  if (draining_.exchange(true)) return;
  if (acceptor_) {
    error_code ec;
    acceptor_->close(ec);
  }
  std::lock_guard lock(h2Mu_);
  for (auto& w : h2_) {
    // Each connection belongs to its worker thread: ask there.
    if (auto c = w.lock()) asio::post(c->executor(), [c] { c->goaway(); });
  }
}

awaitable<void> GatewayServer::acceptLoop() {
  while (acceptor_ && acceptor_->is_open()) {
    error_code ec;
    asio::io_context& worker =
        workers_.empty() ? in_.io : *workers_[nextWorker_++ % workers_.size()];
    asio::ip::tcp::socket sock =
        co_await acceptor_->async_accept(worker, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || draining_) break;
    if (ec) {
      // EMFILE and friends: back off instead of spinning.
      log::warn(kLog, "accept: {}", ec.message());
      asio::steady_timer t(in_.io, std::chrono::milliseconds(100));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    auto ex = sock.get_executor();
    asio::co_spawn(
        ex,
        [this, sock = std::move(sock)]() mutable -> awaitable<void> {
          try {
            co_await serveConnection(std::move(sock));
          } catch (const std::exception& e) {
            // Nothing on the data plane should throw; if a library does, one connection ends.
            log::error(kLog, "connection: {}", e.what());
          }
        },
        asio::detached);
  }
}

awaitable<void> GatewayServer::serveConnection(asio::ip::tcp::socket sock) {
  std::shared_ptr<ssl::context> ctx = ctx_.load();  // keeps a rotated-away context alive
  if (!ctx) co_return;
  proxy::setNoDelay(sock.native_handle());
  error_code ec;
  auto remote = sock.remote_endpoint(ec);
  auto tls = std::make_shared<TlsStream>(std::move(sock), *ctx);
  {
    asio::steady_timer timer(tls->get_executor());
    auto st = armDeadline(timer, tls->next_layer(), in_.options.handshakeTimeout);
    co_await tls->async_handshake(ssl::stream_base::server,
                                  asio::redirect_error(asio::use_awaitable, ec));
    disarm(timer, *st);
    if (!ec && st->fired) ec = asio::error::timed_out;  // the deadline shut the socket down
  }
  if (ec) {
    in_.metrics.tlsHandshakeFailures++;
    log::debug(kLog, "{}: TLS handshake: {}", remote.address().to_string(),
               sslErrorText(tls->native_handle()));
    tls->lowest_layer().close(ec);
    co_return;
  }
  auto peer = identity::workloadIdOf(SSL_get0_peer_certificate(tls->native_handle()));
  if (!peer) {
    in_.metrics.tlsHandshakeFailures++;
    log::info(kLog, "{}: refused: {}", remote.address().to_string(), peer.error().str());
    co_await closeTls(*tls);
    co_return;
  }
  in_.metrics.tlsConnectionsTotal++;
  in_.metrics.tlsConnectionsActive++;
  const unsigned char* alpn = nullptr;
  unsigned int alpnLen = 0;
  SSL_get0_alpn_selected(tls->native_handle(), &alpn, &alpnLen);
  std::string_view protocol(reinterpret_cast<const char*>(alpn), alpnLen);
  try {
    if (protocol == "h2") {
      auto conn = std::make_shared<H2Connection>(opener_, in_.metrics, tls, *peer);
      {
        std::lock_guard lock(h2Mu_);
        std::erase_if(h2_, [](const auto& w) { return w.expired(); });
        h2_.push_back(conn);
      }
      if (draining_) conn->goaway();
      co_await conn->run();
    } else {
      co_await serveHttp1(tls, *peer);
    }
  } catch (const std::exception& e) {
    // Nothing here should throw; if a library does, this connection ends, the gateway lives.
    log::error(kLog, "{}: connection: {}", peer->str(), e.what());
    tls->lowest_layer().close(ec);
  }
  in_.metrics.tlsConnectionsActive--;
}

awaitable<void> GatewayServer::serveHttp1(std::shared_ptr<TlsStream> tls, identity::SpiffeId peer) {
  std::string buf;
  error_code ec;
  size_t headLen = 0;
  {
    asio::steady_timer timer(tls->get_executor());
    auto st = armDeadline(timer, tls->next_layer(), in_.options.handshakeTimeout);
    headLen =
        co_await asio::async_read_until(*tls, asio::dynamic_buffer(buf, kMaxRequestHead),
                                        "\r\n\r\n", asio::redirect_error(asio::use_awaitable, ec));
    disarm(timer, *st);
    if (!ec && st->fired) ec = asio::error::timed_out;
  }
  auto respond = [&](std::string text) -> awaitable<void> {
    error_code wec;
    co_await asio::async_write(*tls, asio::buffer(text),
                               asio::redirect_error(asio::use_awaitable, wec));
  };
  if (ec) {
    if (ec == asio::error::not_found) {  // head larger than the cap
      co_await respond(http1Response(400, kDeniedHeader, "bad_request"));
    }
    co_await closeTls(*tls);
    co_return;
  }
  std::string_view head = std::string_view(buf).substr(0, headLen);
  auto req = parseHttp1Request(head);
  // CONNECT opens a tunnel; an absolute-form http:// request (a forward-proxy client without
  // --proxytunnel) is authorized the same way and relayed as one request/response exchange.
  std::string authority;
  std::string preamble;  // sent upstream before relaying (the rewritten forward request)
  if (req && req->method == "CONNECT") {
    authority = req->target;
  } else if (req) {
    auto fwd = toOriginForm(head);
    if (fwd) {
      authority = std::move(fwd->authority);
      preamble = std::move(fwd->head);
    }
  }
  if (authority.empty()) {
    in_.metrics.countStream("http/1.1", "deny", req ? "not_connect" : "bad_request");
    co_await respond(req ? http1Response(405, kDeniedHeader, "not_connect")
                         : http1Response(400, kDeniedHeader, "bad_request"));
    co_await closeTls(*tls);
    co_return;
  }
  TunnelOutcome o;
  if (draining_) {
    o.status = 503;
    o.reason = "draining";
    o.record.identity = peer.str();
    o.record.decision = "error";
    o.record.reason = o.reason;
  } else {
    // A named request: GCC 12 destroys brace-initialised coroutine arguments twice.
    TunnelRequest request{peer, authority, "http/1.1"};
    o = co_await opener_.open(std::move(request));
  }
  if (!o.ok()) {
    opener_.finish(o, "http/1.1");  // logged and counted before the client can see the refusal
    co_await respond(http1Response(o.status, o.reasonHeader(), o.reason));
    co_await closeTls(*tls);
    co_return;
  }
  if (preamble.empty()) co_await respond(http1Response(200));
  // Tunnel bytes (or a request body) sent right behind the head.
  std::string early = preamble + buf.substr(headLen);

  // Relay. Client EOF half-closes the upstream; upstream EOF ends the tunnel (HTTP/1.1 has no
  // way to half-close towards the client except close_notify, which clients take as the end).
  in_.metrics.tunnelsActive++;
  std::shared_ptr<Upstream> up = std::move(o.upstream);
  auto upDone = std::make_shared<bool>(false);
  asio::steady_timer joined(tls->get_executor(), asio::steady_timer::time_point::max());
  auto* record = &o.record;
  auto& metrics = in_.metrics;
  auto idle = std::make_shared<IdleWatch>(tls->get_executor(), in_.options.idleTimeout, [tls, up] {
    error_code ignored;
    tls->next_layer().cancel(ignored);
    up->cancel();
  });
  idle->start();
  asio::co_spawn(
      tls->get_executor(),
      [tls, up, upDone, &joined, record, &metrics, early, idle]() -> awaitable<void> {
        error_code ec;
        if (!early.empty()) {
          co_await up->writeAll(asio::buffer(early), ec);
          record->bytesUp += early.size();
          metrics.bytesUp += early.size();
        }
        std::array<char, 16 * 1024> b;
        while (!ec) {
          size_t n = co_await tls->async_read_some(asio::buffer(b),
                                                   asio::redirect_error(asio::use_awaitable, ec));
          idle->touch();
          if (n > 0) {
            error_code wec;
            co_await up->writeAll(asio::buffer(b.data(), n), wec);
            if (wec) {
              ec = wec;
              break;
            }
            record->bytesUp += n;
            metrics.bytesUp += n;
          }
        }
        if (isEof(ec)) {
          up->shutdownWrite();
        } else {
          up->cancel();
        }
        *upDone = true;
        joined.cancel();
      },
      asio::detached);
  std::array<char, 16 * 1024> b;
  for (;;) {
    size_t n = co_await up->readSome(asio::buffer(b), ec);
    idle->touch();
    if (n > 0) {
      error_code wec;
      co_await asio::async_write(*tls, asio::buffer(b.data(), n),
                                 asio::redirect_error(asio::use_awaitable, wec));
      if (wec) break;
      o.record.bytesDown += n;
      in_.metrics.bytesDown += n;
    }
    if (ec) break;
  }
  if (!*upDone) tls->next_layer().cancel(ec);
  while (!*upDone) {
    joined.expires_at(asio::steady_timer::time_point::max());
    co_await joined.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  idle->stop();
  if (idle->fired()) o.detail = "idle timeout";
  in_.metrics.tunnelsActive--;
  up->close();
  opener_.finish(o, "http/1.1");
  co_await closeTls(*tls);
}

}  // namespace tollgate::gateway
