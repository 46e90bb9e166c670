#include "agent/unix_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "common/framing.h"
#include "common/log.h"

namespace tollgate::agent {

UnixServer::UnixServer(std::string socketPath, std::string logComponent, Serve serve,
                       int ioTimeoutSec)
    : path_(std::move(socketPath)),
      log_(std::move(logComponent)),
      serve_(std::move(serve)),
      ioTimeoutSec_(ioTimeoutSec) {}

UnixServer::~UnixServer() { stop(); }

Status UnixServer::start(int listenFd) {
  if (listenFd < 0) {
    auto fd = listenUnix(path_, 0600);
    if (!fd) return std::unexpected(fd.error().wrap(fmt::format("{} socket", log_)));
    listenFd = *fd;
  }
  listenFd_ = listenFd;
  ::fcntl(listenFd_, F_SETFL, ::fcntl(listenFd_, F_GETFL) | O_NONBLOCK);
  wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) return failErrno(fmt::format("{} socket: eventfd", log_));
  stopping_ = false;
  up_ = true;
  thread_ = std::thread([this] { loop(); });
  log::info(log_, "listening on {}", path_);
  return {};
}

void UnixServer::pause() {
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

void UnixServer::resume() {
  if (listenFd_ < 0 || thread_.joinable()) return;
  stopping_ = false;
  up_ = true;
  thread_ = std::thread([this] { loop(); });
}

void UnixServer::stop() {
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

void UnixServer::loop() {
  while (!stopping_) {
    pollfd fds[2] = {{listenFd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::error(log_, "poll: {}", std::strerror(errno));
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
      if (!stopping_) log::error(log_, "accept: {}", std::strerror(errno));
      up_ = false;
      return;
    }
    timeval tv{ioTimeoutSec_, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    serve_(conn);
    ::close(conn);
  }
}

}  // namespace tollgate::agent
