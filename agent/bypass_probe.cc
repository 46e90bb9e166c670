#include "agent/bypass_probe.h"

#include <arpa/inet.h>
#include <linux/capability.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "policy/ip.h"
#include "proxy/dns_message.h"
#include "proxy/socket_util.h"

namespace tollgate::agent {
namespace {

constexpr uint32_t kProxyUid = 1337;
constexpr int kRawProtocol = 253;  // RFC 3692: for experimentation, never a real service

// Closes the fd on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Raw and ping sockets take no port.
void clearPort(sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&ss)->sin_port = 0;
  else reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = 0;
}

ProbeOutcome stopped(ProbeOutcome::Stage stage, int err) {
  ProbeOutcome o;
  o.stage = stage;
  o.err = err;
  return o;
}

// Waits for a non-blocking connect to finish; fills connected / err.
void awaitConnect(int fd, int waitMs, ProbeOutcome& o) {
  pollfd p{fd, POLLOUT, 0};
  int n = ::poll(&p, 1, waitMs);
  if (n <= 0) return;  // still pending: the SYN went out and nothing answered
  int soErr = 0;
  socklen_t len = sizeof soErr;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len);
  if (soErr == 0) {
    o.connected = true;
  } else {
    o.stage = ProbeOutcome::Stage::Send;
    o.err = soErr;
    o.synchronous = false;
  }
}

uint16_t inetChecksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (len % 2) sum += static_cast<uint32_t>(data[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

int capset(uint32_t caps) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  data[0].effective = data[0].permitted = caps;
  return static_cast<int>(::syscall(SYS_capset, &header, data));
}

int becomeUid(uint32_t uid) {
  // Raw system calls: glibc's setresuid() would change every thread of the agent.
  if (::syscall(SYS_setgroups, 0, nullptr) != 0) return -1;
  if (::syscall(SYS_setresgid, uid, uid, uid) != 0) return -1;
  // Leaving uid 0 clears the permitted and effective capabilities (no SECBIT_KEEP_CAPS).
  if (::syscall(SYS_setresuid, uid, uid, uid) != 0) return -1;
  return 0;
}

}  // namespace

std::string toString(ProbeUser u) {
  switch (u) {
    case ProbeUser::Pod: return "pod-uid";
    case ProbeUser::ProxyUid: return "uid-1337";
    case ProbeUser::RootNoCaps: return "root";
    case ProbeUser::RootNetAdmin: return "root+net_admin";
  }
  return "?";
}

std::string describe(const ProbeOutcome& o) {
  using S = ProbeOutcome::Stage;
  auto err = [&] { return std::string(std::strerror(o.err)); };
  switch (o.stage) {
    case S::Credentials: return "could not take the identity: " + err();
    case S::Socket: return "socket(): " + err();
    case S::Option: return "SO_MARK: " + err();
    case S::Send:
      return fmt::format("{}{}", o.synchronous ? "send: " : "after sending: ", err());
    case S::Done: break;
  }
  if (o.connected) return "connected";
  if (o.answered) return "answered";
  return o.sent ? "sent, no answer" : "nothing sent";
}

Status becomeUser(ProbeUser user, uint32_t podUid) {
  int rc = 0;
  switch (user) {
    case ProbeUser::Pod: rc = becomeUid(podUid); break;
    case ProbeUser::ProxyUid: rc = becomeUid(kProxyUid); break;
    case ProbeUser::RootNoCaps: rc = capset(0); break;
    case ProbeUser::RootNetAdmin:
      rc = capset((1u << CAP_NET_ADMIN) | (1u << CAP_NET_RAW));
      break;
  }
  if (rc != 0) return failErrno("probe identity " + toString(user));
  return {};
}

ProbeOutcome runProbe(const Probe& p, int waitMs) {
  using S = ProbeOutcome::Stage;
  auto ip = policy::IpAddress::parse(p.address);
  if (!ip) return stopped(S::Socket, EINVAL);
  sockaddr_storage ss{};
  // A v4-mapped address stays IPv6 here: the socket is AF_INET6, as the vector wants.
  socklen_t len = proxy::toSockaddr(proxy::Endpoint{*ip, p.port}, &ss);
  const int family = ss.ss_family;
  bool root = p.user == ProbeUser::RootNetAdmin || p.user == ProbeUser::RootNoCaps;
  Fd s;
  switch (p.kind) {
    case ProbeKind::Tcp:
    case ProbeKind::TcpFastOpen:
      s.fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      break;
    case ProbeKind::Udp:
    case ProbeKind::Dns:
      s.fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      break;
    case ProbeKind::IcmpEcho:
      // Root uses a raw socket; everyone else the ping socket (net.ipv4.ping_group_range).
      s.fd = ::socket(family, (root ? SOCK_RAW : SOCK_DGRAM) | SOCK_CLOEXEC,
                      family == AF_INET ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6});
      break;
    case ProbeKind::RawIp: s.fd = ::socket(family, SOCK_RAW | SOCK_CLOEXEC, kRawProtocol); break;
  }
  if (s.fd < 0) return stopped(S::Socket, errno);
  if (p.mark != 0 && ::setsockopt(s.fd, SOL_SOCKET, SO_MARK, &p.mark, sizeof p.mark) != 0) {
    return stopped(S::Option, errno);
  }
  auto* sa = reinterpret_cast<const sockaddr*>(&ss);
  ProbeOutcome o;
  auto sendFailed = [&](int err) {
    o.stage = S::Send;
    o.err = err;
    return o;
  };
  switch (p.kind) {
    case ProbeKind::Tcp: {
      if (::connect(s.fd, sa, len) == 0) {
        o.sent = o.connected = true;
      } else if (errno == EINPROGRESS) {
        o.sent = true;
        awaitConnect(s.fd, waitMs, o);
      } else {
        return sendFailed(errno);
      }
      break;
    }
    case ProbeKind::TcpFastOpen: {
      // One byte of a TLS record header: the proxy's sniffer waits for more and decides nothing.
      const char byte = 0x16;
      if (::sendto(s.fd, &byte, 1, MSG_FASTOPEN | MSG_NOSIGNAL, sa, len) >= 0) {
        o.sent = true;
      } else if (errno == EINPROGRESS) {
        o.sent = true;
      } else {
        return sendFailed(errno);
      }
      awaitConnect(s.fd, waitMs, o);
      break;
    }
    case ProbeKind::Udp: {
      static constexpr char kPayload[] = "tollgate verify probe";
      if (::sendto(s.fd, kPayload, sizeof kPayload - 1, 0, sa, len) < 0) return sendFailed(errno);
      o.sent = true;
      break;
    }
    case ProbeKind::Dns: {
      uint16_t id = static_cast<uint16_t>(std::random_device{}());
      auto q = proxy::buildDnsQuery(id, "verify.tollgate.invalid", 1 /* A */);
      if (!q) return stopped(S::Socket, EINVAL);
      if (::sendto(s.fd, q->data(), q->size(), 0, sa, len) < 0) return sendFailed(errno);
      o.sent = true;
      pollfd pf{s.fd, POLLIN, 0};
      if (::poll(&pf, 1, waitMs) > 0) {
        uint8_t buf[512];
        ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
        o.answered = n >= 2 && (buf[0] << 8 | buf[1]) == id;
      }
      break;
    }
    case ProbeKind::IcmpEcho: {
      uint8_t pkt[16]{};
      pkt[0] = family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
      pkt[4] = 0x74;  // id "tg"; a ping socket replaces it with its own
      pkt[5] = 0x67;
      pkt[7] = 1;  // sequence 1
      std::memcpy(pkt + 8, "tollgate", 8);
      // ICMPv6 and ping sockets have their checksum filled in by the kernel.
      if (family == AF_INET && root) {
        uint16_t c = inetChecksum(pkt, sizeof pkt);
        std::memcpy(pkt + 2, &c, 2);
      }
      clearPort(ss);
      if (::sendto(s.fd, pkt, sizeof pkt, 0, sa, len) < 0) return sendFailed(errno);
      o.sent = true;
      break;
    }
    case ProbeKind::RawIp: {
      static constexpr char kPayload[] = "tollgate verify probe";
      clearPort(ss);
      if (::sendto(s.fd, kPayload, sizeof kPayload - 1, 0, sa, len) < 0) return sendFailed(errno);
      o.sent = true;
      break;
    }
  }
  return o;
}

namespace {

uint64_t delta(const Counters& before, const Counters& after, const std::string& name) {
  auto a = after.find(name);
  if (a == after.end()) return 0;
  auto b = before.find(name);
  uint64_t was = b == before.end() ? 0 : b->second.packets;
  return a->second.packets > was ? a->second.packets - was : 0;
}

// "drop_udp +1, drop_tcp +2" for the counters of `after` whose name starts with `prefix` and
// that grew; empty when none did.
std::string grown(const Counters& before, const Counters& after, std::string_view prefix) {
  std::string out;
  for (const auto& [name, v] : after) {
    if (!name.starts_with(prefix)) continue;
    if (uint64_t n = delta(before, after, name)) {
      if (!out.empty()) out += ", ";
      out += fmt::format("{} +{}", name, n);
    }
  }
  return out;
}

ProbeVerdict pass(std::string how) { return {true, std::move(how)}; }

}  // namespace

ProbeVerdict judge(const Probe& p, const ProbeOutcome& o, const ProbeEvidence& e) {
  using S = ProbeOutcome::Stage;
  if (o.stage == S::Credentials) return {false, "not run: " + describe(o)};
  if (e.proxySaw) {
    std::string what = fmt::format("{} {}", e.proxyDecision, e.proxyReason);
    if (p.proxyMustRefuse && e.proxyDecision != "deny") {
      return {false, "LEAK: the proxy let a connection to its own port through (" + what + ")"};
    }
    return pass((p.proxyMustRefuse ? "refused by the proxy itself (" : "redirected to the proxy (") +
                what + ")");
  }
  if ((o.stage == S::Socket || o.stage == S::Option) && (o.err == EPERM || o.err == EACCES)) {
    return pass(fmt::format("refused by the kernel: {} (this user lacks the capability)",
                            describe(o)));
  }
  if (o.stage == S::Socket || o.stage == S::Option) return pass("not sent: " + describe(o));
  std::string pod = grown(e.podBefore, e.podAfter, "drop");
  // fence_gateway and fence_dns count what the fence lets through: only its drops refuse.
  std::string fenceDrops;
  for (const char* name : {"fence_drop", "fence_node_drop"}) {
    if (uint64_t n = delta(e.fenceBefore, e.fenceAfter, name)) {
      if (!fenceDrops.empty()) fenceDrops += ", ";
      fenceDrops += fmt::format("{} +{}", name, n);
    }
  }
  if (p.kind == ProbeKind::Dns && delta(e.podBefore, e.podAfter, "dns") > 0) {
    return pass(o.answered ? "redirected to the DNS proxy, which answered"
                           : "redirected to the DNS proxy (no answer yet)");
  }
  if (o.stage == S::Send && o.synchronous && o.err == EPERM) {
    if (!pod.empty()) return pass("dropped by the pod's rules (" + pod + ")");
    return pass("refused in the pod (EPERM), but no drop counter grew");
  }
  // A TCP SYN the filter drops leaves connect() in progress (the kernel would retransmit), and a
  // datagram udp/443 is redirected to the QUIC socket is accepted: only the counter tells.
  if (!pod.empty()) {
    if (p.kind == ProbeKind::Udp && o.err == 0) {
      return pass("taken by the pod's read-only QUIC socket (" + pod + ")");
    }
    return pass("dropped by the pod's rules (" + pod + ")");
  }
  if (!fenceDrops.empty()) return pass("dropped by the host fence (" + fenceDrops + ")");
  if (o.stage == S::Send && o.synchronous && (o.err == ENETUNREACH || o.err == EHOSTUNREACH)) {
    return pass("not sent: the pod has no route (" + describe(o) + ")");
  }
  if (p.loopback && !p.proxyMustRefuse) {
    return pass("stayed on the pod's loopback (" + describe(o) + ")");
  }
  if (p.proxyMustRefuse && o.stage == S::Send && o.err == ECONNREFUSED) {
    return pass("stayed on the pod's loopback (nothing listens there)");
  }
  return {false, fmt::format("LEAK: {}; neither the proxy, the pod's rules nor the host fence "
                             "accounted for it",
                             describe(o))};
}

std::vector<Probe> verifyPlan(const VerifyPlanParams& params) {
  std::vector<Probe> plan;
  uint16_t next = 33001;
  auto add = [&](std::string vector, ProbeUser user, ProbeKind kind, std::string address,
                 std::string description, uint32_t mark = 0, uint16_t port = 0) {
    Probe p;
    p.vector = std::move(vector);
    p.user = user;
    p.kind = kind;
    p.address = std::move(address);
    p.port = port != 0 ? port : next++;
    p.mark = mark;
    p.description = std::move(description);
    plan.push_back(std::move(p));
    return &plan.back();
  };
  using U = ProbeUser;
  using K = ProbeKind;
  const std::string& t4 = params.target4;
  const std::string& t6 = params.target6;
  auto parsed4 = policy::IpAddress::parse(t4);
  bool v4 = parsed4 && parsed4->isV4();
  add("tcp", U::Pod, K::Tcp, t4, "direct TCP");
  add("tcp", U::ProxyUid, K::Tcp, t4, "direct TCP as the uid sidecars exempt");
  add("tcp", U::RootNoCaps, K::Tcp, t4, "direct TCP as root");
  add("tcp-fastopen", U::Pod, K::TcpFastOpen, t4, "TCP Fast Open (data in the SYN)");
  add("tcp6", U::Pod, K::Tcp, t6, "direct TCP over IPv6");
  if (v4) add("tcp-v4mapped", U::Pod, K::Tcp, "::ffff:" + t4, "TCP to an IPv4-mapped IPv6 address");
  add("udp", U::Pod, K::Udp, t4, "UDP datagram");
  add("udp", U::ProxyUid, K::Udp, t4, "UDP datagram as the uid sidecars exempt");
  add("udp", U::RootNetAdmin, K::Udp, t4, "UDP datagram as root with NET_ADMIN");
  add("udp6", U::Pod, K::Udp, t6, "UDP datagram over IPv6");
  add("icmp", U::Pod, K::IcmpEcho, t4, "ping (ping socket)");
  add("icmp", U::RootNetAdmin, K::IcmpEcho, t4, "ping (raw socket)");
  add("icmp6", U::RootNetAdmin, K::IcmpEcho, t6, "ICMPv6 echo (raw socket)");
  add("raw", U::Pod, K::RawIp, t4, "raw IP socket");
  add("raw", U::RootNetAdmin, K::RawIp, t4, "raw IP (protocol 253)");
  add("so-mark", U::Pod, K::Tcp, t4, "TCP with the proxy's packet mark", params.mark);
  add("so-mark", U::RootNetAdmin, K::Tcp, t4, "TCP with the proxy's packet mark", params.mark);
  add("so-mark-udp", U::RootNetAdmin, K::Udp, t4, "UDP with the proxy's packet mark", params.mark);
  add("so-mark-raw", U::RootNetAdmin, K::RawIp, t4, "raw IP with the proxy's packet mark",
      params.mark);
  add("loopback-alias", U::Pod, K::Tcp, "127.0.0.2", "TCP to another loopback address")
      ->loopback = true;
  Probe* own = add("proxy-port", U::Pod, K::Tcp, "127.0.0.1", "TCP straight to the proxy's port",
                   0, params.proxyPort);
  own->loopback = own->proxyMustRefuse = true;
  add("dns", U::Pod, K::Dns, t4, "DNS to a resolver of its own", 0, 53);
  add("dot", U::Pod, K::Tcp, t4, "DNS over TLS", 0, 853);
  add("quic", U::Pod, K::Udp, t4, "QUIC (udp/443)", 0, 443);
  for (auto& p : plan) {
    if (p.user == U::Pod) p.description += " as the pod's uid";
  }
  return plan;
}

}  // namespace tollgate::agent
