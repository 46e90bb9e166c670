#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "common/error.h"
#include "policy/ip.h"

namespace tollgate::proxy {

// An IP endpoint as the proxy sees it on the wire (address + port).
struct Endpoint {
  policy::IpAddress ip;
  uint16_t port = 0;

  std::string str() const;  // "1.2.3.4:80", "[::1]:15001"
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// sockaddr_storage <-> Endpoint. v4-mapped v6 addresses are folded to v4.
Endpoint fromSockaddr(const sockaddr_storage& ss);
socklen_t toSockaddr(const Endpoint& ep, sockaddr_storage* ss);

Result<Endpoint> localEndpoint(int fd);
Result<Endpoint> peerEndpoint(int fd);

// The destination the pod originally asked for before nftables REDIRECT rewrote it
// (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST, read from conntrack).
Result<Endpoint> originalDestination(int fd, int family);

// A non-blocking TCP listening socket bound to ip:port (v6: IPV6_V6ONLY). Call inside the netns
// where it must live.
Result<int> makeListener(const Endpoint& bind, int backlog = 1024);

// A non-blocking UDP socket bound to ip:port (v6: IPV6_V6ONLY). Call inside the netns where it
// must live (the DNS proxy's and the QUIC telemetry's sockets in a pod netns).
Result<int> makeUdpSocket(const Endpoint& bind);

// A non-blocking TCP socket carrying SO_MARK `mark` (0: none), so the pod's redirect rules skip
// the proxy's own upstream connections. Call inside the pod's netns.
Result<int> makeMarkedSocket(int family, uint32_t mark);

void setNoDelay(int fd);
// Makes the next close() send a TCP RST instead of a FIN (SO_LINGER {1, 0}).
void armReset(int fd);

}  // namespace tollgate::proxy
