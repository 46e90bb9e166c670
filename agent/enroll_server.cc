#include "agent/enroll_server.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/framing.h"
#include "common/log.h"

namespace tollgate::agent {
namespace {
constexpr std::string_view kLog = "enroll";
// A plugin that connects and then stalls must not hold up every other pod.
constexpr int kIoTimeoutSec = 10;
}  // namespace

EnrollServer::EnrollServer(std::string socketPath, Handler handler)
    : path_(std::move(socketPath)), handler_(std::move(handler)) {}

EnrollServer::~EnrollServer() { stop(); }

Status EnrollServer::start() {
  auto fd = listenUnix(path_, 0600);
  if (!fd) return std::unexpected(fd.error().wrap("enrollment socket"));
  listenFd_ = *fd;
  up_ = true;
  thread_ = std::thread([this] { loop(); });
  log::info(kLog, "listening on {}", path_);
  return {};
}

void EnrollServer::stop() {
  stopping_ = true;
  up_ = false;
  if (listenFd_ >= 0) ::shutdown(listenFd_, SHUT_RDWR);  // wakes accept()
  if (thread_.joinable()) thread_.join();
  if (listenFd_ >= 0) {
    ::close(listenFd_);
    listenFd_ = -1;
  }
}

void EnrollServer::loop() {
  while (!stopping_) {
    int conn = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (!stopping_) log::error(kLog, "accept: {}", std::strerror(errno));
      up_ = false;
      return;
    }
    serve(conn);
    ::close(conn);
  }
}

void EnrollServer::serve(int conn) {
  timeval tv{kIoTimeoutSec, 0};
  ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  auto frame = recvFrame(conn);
  if (!frame) {
    log::warn(kLog, "bad request: {}", frame.error().str());
    return;
  }
  enroll::EnrollRequest req;
  enroll::EnrollReply reply;
  if (!req.ParseFromString(frame->payload)) {
    if (frame->fd >= 0) ::close(frame->fd);
    reply.set_ok(false);
    reply.set_code(100);
    reply.set_msg("malformed EnrollRequest");
    log::warn(kLog, "malformed EnrollRequest ({} bytes)", frame->payload.size());
  } else {
    int fd = frame->fd;
    if (!req.netns_fd_attached() && fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    reply = handler_(req, fd);
  }
  std::string out;
  reply.SerializeToString(&out);
  if (auto st = sendFrame(conn, out); !st) log::warn(kLog, "reply: {}", st.error().str());
}

}  // namespace tollgate::agent
