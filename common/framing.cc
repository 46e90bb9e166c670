#include "common/framing.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace tollgate {
namespace {

Status writeAll(int sock, const char* data, size_t len, int fd) {
  bool fdPending = fd >= 0;
  while (len > 0) {
    iovec iov{const_cast<char*>(data), len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (fdPending) {
      std::memset(control, 0, sizeof control);
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failErrno("send frame");
    }
    fdPending = false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Status readAll(int sock, char* data, size_t len, int* fdOut) {
  while (len > 0) {
    iovec iov{data, len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failErrno("receive frame");
    }
    if (n == 0) return fail("receive frame: peer closed the connection");
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        // Keep the first fd; an unexpected extra one is closed, never leaked.
        if (fdOut != nullptr && *fdOut < 0) {
          *fdOut = fd;
        } else {
          ::close(fd);
        }
      }
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Status sendFrame(int sock, const std::string& payload, int fdToSend) {
  if (payload.size() > kMaxFrameBytes) return fail("send frame: message too large");
  uint32_t len = htonl(static_cast<uint32_t>(payload.size()));
  std::string buf(reinterpret_cast<const char*>(&len), 4);
  buf += payload;
  return writeAll(sock, buf.data(), buf.size(), fdToSend);
}

Result<Frame> recvFrame(int sock) {
  Frame frame;
  uint32_t len = 0;
  if (auto s = readAll(sock, reinterpret_cast<char*>(&len), 4, &frame.fd); !s) {
    if (frame.fd >= 0) ::close(frame.fd);
    return std::unexpected(s.error());
  }
  len = ntohl(len);
  if (len > kMaxFrameBytes) {
    if (frame.fd >= 0) ::close(frame.fd);
    return fail("receive frame: length " + std::to_string(len) + " exceeds limit");
  }
  frame.payload.resize(len);
  if (auto s = readAll(sock, frame.payload.data(), len, &frame.fd); !s) {
    if (frame.fd >= 0) ::close(frame.fd);
    return std::unexpected(s.error());
  }
  return frame;
}

namespace {
Result<sockaddr_un> unixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return fail("unix socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}
}  // namespace

Result<int> connectUnix(const std::string& path, int timeoutMs) {
  auto addr = unixAddress(path);
  if (!addr) return std::unexpected(addr.error());
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return failErrno("socket(AF_UNIX)");
  timeval tv{timeoutMs / 1000, (timeoutMs % 1000) * 1000};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(s, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) < 0) {
    int err = errno;
    ::close(s);
    return failErrno("connect " + path, err);
  }
  return s;
}

Result<int> listenUnix(const std::string& path, int mode) {
  auto addr = unixAddress(path);
  if (!addr) return std::unexpected(addr.error());
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return failErrno("socket(AF_UNIX)");
  ::unlink(path.c_str());
  if (::bind(s, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) < 0) {
    int err = errno;
    ::close(s);
    return failErrno("bind " + path, err);
  }
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
  if (::listen(s, 128) < 0) {
    int err = errno;
    ::close(s);
    return failErrno("listen " + path, err);
  }
  return s;
}

}  // namespace tollgate
