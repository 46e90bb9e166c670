#include "bpf/peer_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  // Linux 5.14; older libc headers lack it
#endif

namespace tollgate::bpf {

Result<uint64_t> netnsCookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
    return failErrno("SO_NETNS_COOKIE");
  }
  return cookie;
}

Result<tg_peer_key> peerKey(uint64_t netnsCookie, const sockaddr_storage& peer) {
  tg_peer_key key{};
  key.netns_cookie = netnsCookie;
  if (peer.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(peer);
    key.addr[0] = a.sin_addr.s_addr;
    key.port = ntohs(a.sin_port);
    key.family = 4;
  } else if (peer.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(peer);
    key.port = ntohs(a.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
      std::memcpy(&key.addr[0], &a.sin6_addr.s6_addr[12], 4);
      key.family = 4;
    } else {
      std::memcpy(key.addr, &a.sin6_addr, sizeof key.addr);
      key.family = 6;
    }
  } else {
    return fail(fmt::format("peer of address family {}, not IP", peer.ss_family), EAFNOSUPPORT);
  }
  return key;
}

std::string describe(const tg_peer_key& key) {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(key.family == 4 ? AF_INET : AF_INET6, key.addr, text, sizeof text);
  return fmt::format("peer {} port {}, netns cookie {}", text, key.port, key.netns_cookie);
}

}  // namespace tollgate::bpf
