#include "proxy/status_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/read_until.hpp>

#include <fmt/format.h>

#include "common/log.h"

namespace tollgate::proxy {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr auto kReadDeadline = std::chrono::seconds(5);

std::string_view statusText(int status) {
  switch (status) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

}  // namespace

std::string requestPath(std::string_view head) {
  auto sp1 = head.find(' ');
  if (sp1 == std::string_view::npos) return "";
  auto sp2 = head.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return "";
  std::string_view target = head.substr(sp1 + 1, sp2 - sp1 - 1);
  auto q = target.find('?');
  if (q != std::string_view::npos) target = target.substr(0, q);
  return std::string(target);
}

Status StatusServer::listen(const std::string& ip, uint16_t port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(ip, ec);
  if (ec) return fail("status server: bad address " + ip);
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(asio::make_strand(io_));
  asio::ip::tcp::endpoint ep(addr, port);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(fmt::format("status server: listen {}:{}: {}", ip, port, ec.message()),
                ec.value());
  }
  port_ = acc->local_endpoint().port();
  acceptor_ = std::move(acc);
  asio::co_spawn(acceptor_->get_executor(), acceptLoop(), asio::detached);
  return {};
}

Status StatusServer::listenFd(int fd) {
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(asio::make_strand(io_));
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    auto e = failErrno("status server: getsockname");
    ::close(fd);
    return e;
  }
  boost::system::error_code ec;
  acc->assign(ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    return fail(fmt::format("status server: assign listener: {}", ec.message()), ec.value());
  }
  port_ = acc->local_endpoint().port();
  acceptor_ = std::move(acc);
  asio::co_spawn(acceptor_->get_executor(), acceptLoop(), asio::detached);
  return {};
}

void StatusServer::close() {
  if (!acceptor_) return;
  // The accept loop runs on the acceptor's strand: closing it from another thread would race
  // with the pending accept (ThreadSanitizer saw it), so the close goes through the strand.
  asio::post(acceptor_->get_executor(), [a = acceptor_.get()] {
    boost::system::error_code ec;
    a->close(ec);
  });
}

awaitable<void> StatusServer::acceptLoop() {
  for (;;) {
    boost::system::error_code ec;
    auto sock = co_await acceptor_->async_accept(
        asio::make_strand(io_), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
      continue;
    }
    // Accepted as the server closed (listener handoff): still answered.
    asio::co_spawn(sock.get_executor(), serve(std::move(sock)), asio::detached);
  }
}

awaitable<void> StatusServer::serve(asio::ip::tcp::socket s) {
  // Shared with the deadline handler, which may run after this frame ended.
  auto shared = std::make_shared<asio::ip::tcp::socket>(std::move(s));
  auto& sock = *shared;
  asio::steady_timer deadline(sock.get_executor());
  deadline.expires_after(kReadDeadline);
  // Shut down, not only cancelled: read_until is several reads, and a cancel that lands while
  // one's completion is queued would let the next read wait with no deadline.
  deadline.async_wait([shared](boost::system::error_code ec) {
    if (!ec) {
      boost::system::error_code ignored;
      shared->shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      shared->cancel(ignored);
    }
  });
  std::string buf;
  boost::system::error_code ec;
  co_await asio::async_read_until(sock, asio::dynamic_buffer(buf, kMaxRequestBytes), "\r\n\r\n",
                                  asio::redirect_error(use_awaitable, ec));
  deadline.cancel();
  if (ec) co_return;
  Response resp;
  std::string path = requestPath(buf);
  if (buf.rfind("GET ", 0) != 0) {
    resp = Response{405, "text/plain", "method not allowed\n"};
  } else if (auto it = routes_.find(path); it != routes_.end()) {
    resp = it->second();
  } else {
    resp = Response{404, "text/plain", "not found\n"};
  }
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
      resp.status, statusText(resp.status), resp.contentType, resp.body.size());
  out += resp.body;
  co_await asio::async_write(sock, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
  sock.shutdown(asio::socket_base::shutdown_send, ec);
  sock.close(ec);
}

}  // namespace tollgate::proxy
