#include "proxy/socket_util.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "common/high_fd.h"

namespace tollgate::proxy {
namespace {

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>; those headers clash
// with glibc's netinet ones, so the two constants are spelled out here.
constexpr int kSoOriginalDst = 80;
constexpr int kIp6tSoOriginalDst = 80;

}  // namespace

std::string Endpoint::str() const {
  if (ip.isV4()) return fmt::format("{}:{}", ip.str(), port);
  return fmt::format("[{}]:{}", ip.str(), port);
}

Endpoint fromSockaddr(const sockaddr_storage& ss) {
  Endpoint ep;
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    ep.ip = policy::IpAddress::v4(ntohl(sin->sin_addr.s_addr));
    ep.port = ntohs(sin->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ep.ip.family = policy::IpAddress::Family::V6;
    std::memcpy(ep.ip.bytes.data(), &sin6->sin6_addr, 16);
    ep.ip = ep.ip.unmapped();
    ep.port = ntohs(sin6->sin6_port);
  }
  return ep;
}

socklen_t toSockaddr(const Endpoint& ep, sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof *ss);
  if (ep.ip.isV4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, ep.ip.bytes.data(), 4);
    sin->sin_port = htons(ep.port);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  std::memcpy(&sin6->sin6_addr, ep.ip.bytes.data(), 16);
  sin6->sin6_port = htons(ep.port);
  return sizeof(sockaddr_in6);
}

Result<Endpoint> localEndpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return failErrno("getsockname");
  }
  return fromSockaddr(ss);
}

Result<Endpoint> peerEndpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return failErrno("getpeername");
  }
  return fromSockaddr(ss);
}

Result<Endpoint> originalDestination(int fd, int family) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int rc = family == AF_INET6
               ? ::getsockopt(fd, SOL_IPV6, kIp6tSoOriginalDst, &ss, &len)
               : ::getsockopt(fd, SOL_IP, kSoOriginalDst, &ss, &len);
  if (rc != 0) return failErrno("original destination (conntrack)");
  return fromSockaddr(ss);
}

Result<int> makeUdpSocket(const Endpoint& bind) {
  int fd = ::socket(bind.ip.isV4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
  if (fd < 0) return failErrno("socket(udp)");
  if (!bind.ip.isV4()) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  sockaddr_storage ss{};
  socklen_t len = toSockaddr(bind, &ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    auto e = failErrno(fmt::format("bind udp {}", bind.str()));
    ::close(fd);
    return e;
  }
  return moveFdHigh(fd);  // long-lived (per-pod DNS/QUIC sockets): common/high_fd.h
}

Result<int> makeListener(const Endpoint& bind, int backlog) {
  int family = bind.ip.isV4() ? AF_INET : AF_INET6;
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return failErrno("socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6 && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    int err = errno;
    ::close(fd);
    return failErrno("setsockopt IPV6_V6ONLY", err);
  }
  sockaddr_storage ss{};
  socklen_t len = toSockaddr(bind, &ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    return failErrno("bind " + bind.str(), err);
  }
  if (::listen(fd, backlog) != 0) {
    int err = errno;
    ::close(fd);
    return failErrno("listen " + bind.str(), err);
  }
  return moveFdHigh(fd);  // long-lived (per-pod listeners): common/high_fd.h
}

Result<int> makeMarkedSocket(int family, uint32_t mark) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return failErrno("socket");
  if (mark != 0 && ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    int err = errno;
    ::close(fd);
    return failErrno(fmt::format("setsockopt SO_MARK {:#x}", mark), err);
  }
  setNoDelay(fd);
  return fd;
}

void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void armReset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace tollgate::proxy
