#include "agent/admin_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/framing.h"
#include "common/log.h"
#include "proxy/metrics.h"

namespace tollgate::agent {
namespace {
constexpr std::string_view kLog = "admin";
// A client that connects and stalls must not hold the socket for others.
constexpr int kIoTimeoutSec = 10;

void reply(int conn, const admin::AdminReply& r) {
  std::string out;
  r.SerializeToString(&out);
  if (auto st = sendFrame(conn, out); !st) log::warn(kLog, "reply: {}", st.error().str());
}

admin::AdminReply refusal(std::string error) {
  admin::AdminReply r;
  r.set_ok(false);
  r.set_error(std::move(error));
  return r;
}
}  // namespace

AdminServer::AdminServer(std::string socketPath, Handler handler)
    : handler_(std::move(handler)),
      server_(std::move(socketPath), std::string(kLog), [this](int conn) { serve(conn); },
              kIoTimeoutSec) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::stop() {
  server_.stop();
  std::lock_guard lock(workerMu_);
  if (worker_.joinable()) worker_.join();
}

void AdminServer::serveLong(int conn, admin::AdminRequest req) {
  std::lock_guard lock(workerMu_);
  if (workerBusy_) {
    reply(conn, refusal("a verify is already running on this node: try again when it has "
                        "finished"));
    return;
  }
  int own = ::dup(conn);  // the server closes `conn` when serve() returns
  if (own < 0) {
    reply(conn, refusal("cannot start the verify: dup: out of file descriptors"));
    return;
  }
  if (worker_.joinable()) worker_.join();  // the previous one has finished
  workerBusy_ = true;
  worker_ = std::thread([this, conn = own, req = std::move(req)] {
    admin::AdminReply r = handler_(req);
    // Not busy before the answer goes out: a client that asks again as soon as it has read it
    // must not be told a verify is running (the next serveLong() joins this thread first).
    workerBusy_ = false;
    reply(conn, r);
    ::close(conn);
  });
}

void AdminServer::serve(int conn) {
  // The request is read before the peer is checked, so that a refused client gets its answer
  // (closing on unread bytes would reset the connection under it).
  auto frame = recvFrame(conn);
  ucred peer{};
  socklen_t len = sizeof peer;
  if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != 0) {
    counters_.refused++;
    if (frame && frame->fd >= 0) ::close(frame->fd);
    log::warn(kLog, "refused a request from uid {} pid {}: the admin socket is root only",
              static_cast<long>(peer.uid), static_cast<long>(peer.pid));
    reply(conn, refusal(fmt::format("permission denied: {} is root only (you are uid {})", path(),
                                    static_cast<long>(peer.uid))));
    return;
  }
  if (!frame) {
    counters_.malformed++;
    log::warn(kLog, "bad request: {}", frame.error().str());
    return;
  }
  if (frame->fd >= 0) ::close(frame->fd);
  admin::AdminRequest req;
  if (!req.ParseFromString(frame->payload) ||
      req.request_case() == admin::AdminRequest::REQUEST_NOT_SET) {
    counters_.malformed++;
    log::warn(kLog, "malformed AdminRequest ({} bytes)", frame->payload.size());
    reply(conn, refusal("malformed request (tollgatectl and agent versions differ?)"));
    return;
  }
  counters_.ok++;
  if (req.request_case() == admin::AdminRequest::kVerify) {
    serveLong(conn, std::move(req));
    return;
  }
  reply(conn, handler_(req));
}

std::string AdminServer::collectMetrics() const {
  std::string out =
      "# HELP tollgate_admin_requests_total Requests on the admin socket by result.\n"
      "# TYPE tollgate_admin_requests_total counter\n";
  out += proxy::formatSample("tollgate_admin_requests_total", {{"result", "ok"}},
                             static_cast<double>(counters_.ok.load()));
  out += proxy::formatSample("tollgate_admin_requests_total", {{"result", "refused"}},
                             static_cast<double>(counters_.refused.load()));
  out += proxy::formatSample("tollgate_admin_requests_total", {{"result", "malformed"}},
                             static_cast<double>(counters_.malformed.load()));
  return out;
}

}  // namespace tollgate::agent
