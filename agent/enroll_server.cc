#include "agent/enroll_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

#include "agent/memory.h"
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

Status EnrollServer::start(int listenFd) {
  if (listenFd < 0) {
    auto fd = listenUnix(path_, 0600);
    if (!fd) return std::unexpected(fd.error().wrap("enrollment socket"));
    listenFd = *fd;
  }
  listenFd_ = listenFd;
  ::fcntl(listenFd_, F_SETFL, ::fcntl(listenFd_, F_GETFL) | O_NONBLOCK);
  wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) return failErrno("enrollment socket: eventfd");
  stopping_ = false;
  up_ = true;
  thread_ = std::thread([this] { loop(); });
  log::info(kLog, "listening on {}", path_);
  return {};
}

void EnrollServer::pause() {
  stopping_ = true;
  if (wakeFd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wakeFd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  if (wakeFd_ >= 0) {
    uint64_t v;
    (void)!::read(wakeFd_, &v, sizeof v);
  }
}

void EnrollServer::resume() {
  if (listenFd_ < 0 || thread_.joinable()) return;
  stopping_ = false;
  up_ = true;
  thread_ = std::thread([this] { loop(); });
}

void EnrollServer::stop() {
  pause();
  up_ = false;
  if (listenFd_ >= 0) {
    ::close(listenFd_);
    listenFd_ = -1;
  }
  if (wakeFd_ >= 0) {
    ::close(wakeFd_);
    wakeFd_ = -1;
  }
}

void EnrollServer::loop() {
  while (!stopping_) {
    pollfd fds[2] = {{listenFd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::error(kLog, "poll: {}", std::strerror(errno));
      up_ = false;
      return;
    }
    if (stopping_ || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    // The listening socket is non-blocking: during a handoff the other agent may take the
    // connection first.
    int conn = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
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
  // After the reply, so the runtime never waits for it: an ADD's netns helper threads and
  // libnftables runs leave freed arena pages behind (agent/memory.h).
  releaseFreedMemory();
}

}  // namespace tollgate::agent
