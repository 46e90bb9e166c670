// The eBPF mode's redirect hooks (bpf/sock_redirect.bpf.c), attached to a cgroup this test
// creates, with a real process in it and in a pod netns that has no route anywhere: its TCP lands
// on the "agent's" listeners on the pod's loopback and the proxy learns the original destination
// from its accepted socket (IPv4, IPv6, IPv4-mapped), once, and never for a connection the pod
// made to the proxy's port itself; UDP to 53 and 443 lands on the DNS and QUIC sockets, other
// UDP is refused, the DNS proxy's replies come from where the query was sent, and getpeername
// gives a redirected socket its original destination. Root only.
#include "bpf/sock_redirect.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "bpf_fixture.h"

namespace tollgate::bpf {
namespace {

// A process in the test's cgroup and pod netns (SockRedirectTest::pod). It sends text to the
// test: what its function passes to pause() (then it waits for resume()) and what the function
// returns; it exits, closing its sockets, when this goes.
class PodProcess {
 public:
  using Pause = std::function<void(const std::string&)>;

  PodProcess(pid_t pid, int from, int to) : pid_(pid), from_(from), to_(to) {}
  PodProcess(const PodProcess&) = delete;
  PodProcess& operator=(const PodProcess&) = delete;
  ~PodProcess() {
    ::close(to_);
    ::close(from_);
    int status = 0;
    if (pid_ > 0) ::waitpid(pid_, &status, 0);
  }

  // The next text the process sent; "(gone)" when it exited before sending one.
  std::string next() {
    std::string s;
    char c = 0;
    while (::read(from_, &c, 1) == 1) {
      if (c == '\0') return s;
      s += c;
    }
    return "(gone)";
  }
  void resume() { (void)!::write(to_, "g", 1); }

  // In the child.
  static void send(int fd, const std::string& s) { (void)!::write(fd, s.c_str(), s.size() + 1); }

 private:
  pid_t pid_;
  int from_, to_;
};

class SockRedirectTest : public testing::BpfNetnsTest {
 protected:
  void SetUp() override {
    BpfNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto r = SockRedirect::load(testing::labConfig());
    ASSERT_TRUE(r) << r.error().str();
    redirect_.emplace(std::move(*r));
    int cg = makeCgroup();
    ASSERT_GE(cg, 0);
    auto links = redirect_->attach(cg, cgroup_);
    ::close(cg);
    ASSERT_TRUE(links) << links.error().str();
    links_ = std::move(*links);
  }

  void TearDown() override {
    for (int fd : {tcp4_, tcp6_, dns4_, dns6_, quic_, quic6_}) {
      if (fd >= 0) ::close(fd);
    }
    backstopLinks_.reset();  // detach before the cgroup is removed
    links_.reset();
    redirect_.reset();
    backstop_.reset();
    BpfNetnsTest::TearDown();
  }

  // Loads a backstop and, sharing its maps as the agent does, a redirect that replaces this
  // test's on the cgroup. `attachBackstop`: the backstop's programs go on the cgroup too.
  void loadShared(bool attachBackstop) {
    auto b = SkbBackstop::load(testing::labConfig());
    ASSERT_TRUE(b) << b.error().str();
    backstop_.emplace(std::move(*b));
    auto r = SockRedirect::load(testing::labConfig(), "", backstop_->sharedMaps());
    ASSERT_TRUE(r) << r.error().str();
    links_.reset();
    redirect_.emplace(std::move(*r));
    int cg = ::open(cgroup_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(cg, 0);
    if (attachBackstop) {
      auto links = backstop_->attach(cg, cgroup_);
      ASSERT_TRUE(links) << links.error().str();
      backstopLinks_ = std::move(*links);
    }
    auto links = redirect_->attach(cg, cgroup_);
    ::close(cg);
    ASSERT_TRUE(links) << links.error().str();
    links_ = std::move(*links);
  }

  // Starts `fn(pause)` in a forked process in the cgroup and the pod netns.
  template <typename F>
  std::unique_ptr<PodProcess> pod(F fn) {
    int from[2], to[2];
    if (::pipe2(from, O_CLOEXEC) != 0 || ::pipe2(to, O_CLOEXEC) != 0) return nullptr;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(from[0]);
      ::close(to[1]);
      PodProcess::Pause pause = [&](const std::string& s) {
        PodProcess::send(from[1], s);
        char c;
        if (::read(to[0], &c, 1) != 1) ::_exit(0);
      };
      PodProcess::send(from[1], enterPod() ? fn(pause) : std::string("could not enter the pod"));
      char c;
      (void)!::read(to[0], &c, 1);  // until the test lets go
      ::_exit(0);
    }
    ::close(from[1]);
    ::close(to[0]);
    return std::make_unique<PodProcess>(pid, from[0], to[1]);
  }

  // The agent's sockets in the pod netns, made outside the cgroup.
  void agentSockets() {
    in(ns_, [&] {
      tcp4_ = bound(AF_INET, SOCK_STREAM, "127.0.0.1", 15001);
      tcp6_ = bound(AF_INET6, SOCK_STREAM, "::1", 15001);
      dns4_ = bound(AF_INET, SOCK_DGRAM, "127.0.0.1", 15053);
      dns6_ = bound(AF_INET6, SOCK_DGRAM, "::1", 15053);
      quic_ = bound(AF_INET, SOCK_DGRAM, "127.0.0.1", 15443);
      quic6_ = bound(AF_INET6, SOCK_DGRAM, "::1", 15443);
    });
    for (int fd : {tcp4_, tcp6_, dns4_, dns6_, quic_, quic6_}) ASSERT_GE(fd, 0);
  }

  // What takeOriginalDst says about an accepted socket: "4 192.0.2.1 80", "(none)" or the error.
  std::string take(int acceptedFd) const { return show(redirect_->takeOriginalDst(acceptedFd)); }

  // An original destination as "4 192.0.2.1 80", "(none)" or the error.
  static std::string show(const Result<std::optional<tg_orig_dst>>& o) {
    if (!o) return o.error().str();
    if (!*o) return "(none)";
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop((*o)->family == 4 ? AF_INET : AF_INET6, (*o)->addr, text, sizeof text);
    return fmt::format("{} {} {}", (*o)->family, text, (*o)->port);
  }

  static socklen_t sockaddrOf(int family, const char* addr, uint16_t port, sockaddr_storage& ss) {
    ss = {};
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(port);
      ::inet_pton(AF_INET, addr, &a->sin_addr);
      return sizeof *a;
    }
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    ::inet_pton(AF_INET6, addr, &a->sin6_addr);
    return sizeof *a;
  }

  static std::string errText() { return std::strerror(errno); }

  // "addr port" of a socket address.
  static std::string text(const sockaddr_storage& ss) {
    char t[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
      const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
      ::inet_ntop(AF_INET, &a.sin_addr, t, sizeof t);
      return fmt::format("{} {}", t, ntohs(a.sin_port));
    }
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    ::inet_ntop(AF_INET6, &a.sin6_addr, t, sizeof t);
    return fmt::format("{} {}", t, ntohs(a.sin6_port));
  }

  // A socket bound to addr:port in the calling thread's netns (listening for TCP).
  static int bound(int family, int type, const char* addr, uint16_t port) {
    int s = ::socket(family, type | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len = sockaddrOf(family, addr, port, ss);
    if (family == AF_INET6) {
      int one = 1;
      ::setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (::bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
    if (type == SOCK_STREAM) ::listen(s, 8);
    return s;
  }

  // ::bind or ::connect of `s` to addr:port; "" or what failed.
  static std::string call(int (*op)(int, const sockaddr*, socklen_t), int s, int family,
                          const char* addr, uint16_t port) {
    sockaddr_storage ss{};
    socklen_t len = sockaddrOf(family, addr, port, ss);
    if (op(s, reinterpret_cast<sockaddr*>(&ss), len) == 0) return "";
    return fmt::format("{} {} {}: {}", op == ::bind ? "bind" : "connect", addr, port,
                       std::strerror(errno));
  }

  // A socket connected to addr:port, or -errno.
  static int connected(int family, int type, const char* addr, uint16_t port) {
    int s = ::socket(family, type, 0);
    sockaddr_storage ss{};
    socklen_t len = sockaddrOf(family, addr, port, ss);
    if (::connect(s, reinterpret_cast<sockaddr*>(&ss), len) == 0) return s;
    int err = errno;
    ::close(s);
    return -err;
  }

  // The next connection on `listener`, waiting up to 2 s; -1 when none came.
  static int accepted(int listener) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return -1;
    return ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  }

  std::optional<SkbBackstop> backstop_;  // loadShared()
  std::optional<SockRedirect> redirect_;
  CgroupLinks links_, backstopLinks_;
  int tcp4_ = -1, tcp6_ = -1, dns4_ = -1, dns6_ = -1, quic_ = -1, quic6_ = -1;
};

TEST_F(SockRedirectTest, PodTrafficLandsOnTheAgentsSocketsAndTheProxyTakesItsOriginalDestination) {
  EXPECT_EQ(links_.size(), 9u);
  agentSockets();
  if (HasFatalFailure()) return;

  auto p = pod([&](const PodProcess::Pause&) {
    std::string failed;
    for (auto [family, addr, port] : {std::tuple{AF_INET, "192.0.2.1", 80},
                                      std::tuple{AF_INET6, "2001:db8::1", 443},
                                      std::tuple{AF_INET6, "::ffff:192.0.2.1", 8080}}) {
      if (int s = connected(family, SOCK_STREAM, addr, port); s < 0) {
        failed += fmt::format("tcp {} {}: {}; ", addr, port, std::strerror(-s));
      }  // the socket stays open until the process exits
    }
    auto udp = [&](int family, const char* addr, uint16_t port) {
      int s = ::socket(family, SOCK_DGRAM, 0);
      sockaddr_storage ss{};
      socklen_t len = sockaddrOf(family, addr, port, ss);
      int err = ::sendto(s, "q", 1, 0, reinterpret_cast<sockaddr*>(&ss), len) == 1 ? 0 : errno;
      ::close(s);
      return err;
    };
    for (uint16_t port : {53, 443}) {
      if (int e = udp(AF_INET, "192.0.2.1", port)) {
        failed += fmt::format("udp {}: {}; ", port, std::strerror(e));
      }
    }
    if (udp(AF_INET, "192.0.2.1", 9999) != EPERM) failed += "udp v4 9999 not refused; ";
    if (udp(AF_INET6, "2001:db8::1", 9999) != EPERM) failed += "udp v6 9999 not refused; ";
    return failed;
  });
  ASSERT_TRUE(p);
  EXPECT_EQ(p->next(), "");

  // The proxy's path: accept, then ask by the accepted socket. The IPv4-mapped connect is IPv4 on
  // the wire and lands on the IPv4 listener.
  std::vector<std::string> v4;
  for (int i = 0; i < 2; ++i) {
    int a = accepted(tcp4_);
    ASSERT_GE(a, 0) << "connection " << i << " on the IPv4 listener";
    v4.push_back(take(a));
    EXPECT_EQ(take(a), "(none)") << "a second take";
    ::close(a);
  }
  std::sort(v4.begin(), v4.end());
  EXPECT_EQ(v4, (std::vector<std::string>{"4 192.0.2.1 80", "4 192.0.2.1 8080"}));
  int a6 = accepted(tcp6_);
  ASSERT_GE(a6, 0);
  EXPECT_EQ(take(a6), "6 2001:db8::1 443");
  EXPECT_EQ(take(a6), "(none)");
  ::close(a6);

  auto pending = [](int fd) {
    pollfd q{fd, POLLIN, 0};
    return ::poll(&q, 1, 0) == 1;
  };
  EXPECT_TRUE(pending(dns4_));
  EXPECT_TRUE(pending(quic_));

  // Not a socket: an error that says what was asked.
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  auto bad = redirect_->takeOriginalDst(pipefd[0]);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("SO_NETNS_COOKIE"), std::string::npos) << bad.error().str();
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}

// A stale entry is never served: the pod reuses a local port that carried a redirected connection
// (SO_REUSEADDR) for a connection straight to the proxy's port, and a redirected socket connects
// again, straight to the proxy's port, after undoing its connect (AF_UNSPEC).
TEST_F(SockRedirectTest, AConnectStraightToTheProxyPortHasNoOriginalDestination) {
  agentSockets();
  if (HasFatalFailure()) return;
  auto reusable = [](int family) {
    int s = ::socket(family, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    return s;
  };
  auto peerPort = [](int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
  };

  uint16_t port = 0;
  {
    // The redirected connection, whose answer the proxy never takes (it shed the connection).
    auto p = pod([&](const PodProcess::Pause&) -> std::string {
      int s = reusable(AF_INET);
      if (auto e = call(::bind, s, AF_INET, "0.0.0.0", 0); !e.empty()) return e;
      if (auto e = call(::connect, s, AF_INET, "192.0.2.1", 80); !e.empty()) return e;
      linger reset{1, 0};  // closed by RST: no TIME_WAIT on either side holds the port
      ::setsockopt(s, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      return "ok";
    });
    ASSERT_TRUE(p);
    ASSERT_EQ(p->next(), "ok");
    int a = accepted(tcp4_);
    ASSERT_GE(a, 0);
    port = peerPort(a);
    ::close(a);
  }
  {
    auto p = pod([&](const PodProcess::Pause&) -> std::string {
      int s = reusable(AF_INET);
      if (auto e = call(::bind, s, AF_INET, "0.0.0.0", port); !e.empty()) return e;
      if (auto e = call(::connect, s, AF_INET, "127.0.0.1", 15001); !e.empty()) return e;
      return "ok";
    });
    ASSERT_TRUE(p);
    ASSERT_EQ(p->next(), "ok");
    int a = accepted(tcp4_);
    ASSERT_GE(a, 0);
    EXPECT_EQ(peerPort(a), port) << "the same local port";
    EXPECT_EQ(take(a), "(none)");
    ::close(a);
  }
  {
    auto p = pod([&](const PodProcess::Pause& pause) -> std::string {
      int s = connected(AF_INET, SOCK_STREAM, "192.0.2.1", 80);
      if (s < 0) return fmt::format("connect: {}", std::strerror(-s));
      pause("redirected");
      sockaddr unspec{};
      unspec.sa_family = AF_UNSPEC;
      if (::connect(s, &unspec, sizeof unspec) != 0) return "AF_UNSPEC: " + errText();
      if (auto e = call(::connect, s, AF_INET, "127.0.0.1", 15001); !e.empty()) return e;
      return "ok";
    });
    ASSERT_TRUE(p);
    ASSERT_EQ(p->next(), "redirected");
    int a = accepted(tcp4_);
    ASSERT_GE(a, 0);
    ::close(a);  // not taken
    p->resume();
    ASSERT_EQ(p->next(), "ok");
    a = accepted(tcp4_);
    ASSERT_GE(a, 0);
    EXPECT_EQ(take(a), "(none)");
    ::close(a);
  }
}

// Unconnected sendto, as a resolver may: the DNS proxy answers from its loopback port, the pod
// sees the answer come from the server it asked (IPv4, IPv6, IPv4-mapped).
TEST_F(SockRedirectTest, DnsRepliesComeFromWhereTheQueryWasSent) {
  agentSockets();
  if (HasFatalFailure()) return;
  auto p = pod([&](const PodProcess::Pause&) {
    std::string seen;
    for (auto [family, addr] : {std::pair{AF_INET, "192.0.2.53"},
                                std::pair{AF_INET6, "2001:db8::53"},
                                std::pair{AF_INET6, "::ffff:192.0.2.53"}}) {
      int s = ::socket(family, SOCK_DGRAM, 0);
      timeval wait{2, 0};
      ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
      sockaddr_storage to{};
      socklen_t len = sockaddrOf(family, addr, 53, to);
      char answer[8];
      sockaddr_storage from{};
      socklen_t fromLen = sizeof from;
      if (::sendto(s, "q", 1, 0, reinterpret_cast<sockaddr*>(&to), len) != 1) {
        seen += fmt::format("sendto {}: {}; ", addr, errText());
      } else if (::recvfrom(s, answer, sizeof answer, 0, reinterpret_cast<sockaddr*>(&from),
                            &fromLen) != 1) {
        seen += fmt::format("recvfrom after {}: {}; ", addr, errText());
      } else {
        seen += text(from) + "; ";
      }
      ::close(s);
    }
    return seen;
  });
  ASSERT_TRUE(p);
  // The DNS proxy: each query lands on the loopback socket of its family and is answered.
  for (int i = 0; i < 3; ++i) {
    pollfd q[2] = {{dns4_, POLLIN, 0}, {dns6_, POLLIN, 0}};
    ASSERT_GT(::poll(q, 2, 2000), 0) << "query " << i;
    int fd = (q[0].revents & POLLIN) ? dns4_ : dns6_;
    char query[8];
    sockaddr_storage client{};
    socklen_t len = sizeof client;
    auto* from = reinterpret_cast<sockaddr*>(&client);
    ASSERT_EQ(::recvfrom(fd, query, sizeof query, 0, from, &len), 1);
    ASSERT_EQ(::sendto(fd, "a", 1, 0, from, len), 1);
  }
  EXPECT_EQ(p->next(), "192.0.2.53 53; 2001:db8::53 53; ::ffff:192.0.2.53 53; ");
}

// getpeername of a redirected TCP socket and of a UDP socket connected to port 53 gives where it
// was going; a pod's connection straight to the proxy's port keeps its loopback peer.
TEST_F(SockRedirectTest, ARedirectedSocketsPeerIsItsOriginalDestination) {
  agentSockets();
  if (HasFatalFailure()) return;
  auto p = pod([&](const PodProcess::Pause&) {
    std::string peers;
    for (auto [type, family, addr, port] : {
             std::tuple{SOCK_STREAM, AF_INET, "192.0.2.1", 80},
             std::tuple{SOCK_STREAM, AF_INET6, "2001:db8::1", 443},
             std::tuple{SOCK_STREAM, AF_INET6, "::ffff:192.0.2.1", 8080},
             std::tuple{SOCK_DGRAM, AF_INET, "192.0.2.53", 53},
             std::tuple{SOCK_DGRAM, AF_INET6, "2001:db8::53", 53},
             std::tuple{SOCK_DGRAM, AF_INET6, "::ffff:192.0.2.53", 53},
             std::tuple{SOCK_STREAM, AF_INET, "127.0.0.1", 15001},
             std::tuple{SOCK_STREAM, AF_INET6, "::1", 15001},
         }) {
      int s = connected(family, type, addr, port);
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      if (s < 0) {
        peers += fmt::format("connect {} {}: {}; ", addr, port, std::strerror(-s));
      } else if (::getpeername(s, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
        peers += fmt::format("getpeername after {}: {}; ", addr, errText());
      } else {
        peers += text(peer) + "; ";
      }
    }
    return peers;
  });
  ASSERT_TRUE(p);
  EXPECT_EQ(p->next(),
            "192.0.2.1 80; 2001:db8::1 443; ::ffff:192.0.2.1 8080; "
            "192.0.2.53 53; 2001:db8::53 53; ::ffff:192.0.2.53 53; "
            "127.0.0.1 15001; ::1 15001; ");
}

// What the redirect refuses is counted for the pod, in the backstop's map (the agent shares it),
// by class: UDP and DoT sendmsg, a DoT connect, a ping socket's connect; DNS sent to the DNS
// proxy is counted too. A UDP connect off 53/443 sends nothing and is left to the kernel (its
// sends meet the backstop).
TEST_F(SockRedirectTest, RefusalsAreCountedForThePodInTheBackstopsCounters) {
  loadShared(false);
  if (HasFatalFailure()) return;
  auto id = cgroupId(cgroup_);
  ASSERT_TRUE(id);
  ASSERT_TRUE(backstop_->track(*id));
  agentSockets();
  auto p = pod([&](const PodProcess::Pause&) -> std::string {
    std::string out;
    auto sendto = [&](int family, const char* addr, uint16_t port) {
      int s = ::socket(family, SOCK_DGRAM, 0);
      sockaddr_storage ss{};
      socklen_t len = sockaddrOf(family, addr, port, ss);
      bool sent = ::sendto(s, "q", 1, 0, reinterpret_cast<sockaddr*>(&ss), len) == 1;
      out += fmt::format("udp {} {}: {};", addr, port, sent ? "sent" : errText());
      ::close(s);
    };
    sendto(AF_INET, "192.0.2.1", 9999);
    sendto(AF_INET6, "2001:db8::1", 9999);
    sendto(AF_INET, "192.0.2.1", 853);
    sendto(AF_INET, "192.0.2.53", 53);
    int dot = connected(AF_INET, SOCK_STREAM, "192.0.2.1", 853);
    out += fmt::format("tcp 853: {};", dot >= 0 ? "connected" : std::strerror(-dot));
    int udp = connected(AF_INET, SOCK_DGRAM, "192.0.2.1", 1025);
    out += fmt::format("udp connect 1025: {};", udp >= 0 ? "connected" : std::strerror(-udp));
    // Ping sockets for every group of this (pod) netns, as the lab and container runtimes set it.
    int range = ::open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY);
    (void)!::write(range, "0 2147483647", 12);
    ::close(range);
    int ping = ::socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (ping < 0) out += fmt::format("ping socket: {};", errText());
    if (ping >= 0) {
      int rc = call(::connect, ping, AF_INET, "192.0.2.1", 0).empty() ? 0 : errno;
      out += fmt::format("ping connect: {};", rc == 0 ? "connected" : std::strerror(rc));
    }
    return out;
  });
  ASSERT_TRUE(p);
  std::string got = p->next();
  EXPECT_NE(got.find("udp 192.0.2.1 9999: Operation not permitted"), std::string::npos) << got;
  EXPECT_NE(got.find("udp 2001:db8::1 9999: Operation not permitted"), std::string::npos) << got;
  EXPECT_NE(got.find("udp 192.0.2.1 853: Operation not permitted"), std::string::npos) << got;
  EXPECT_NE(got.find("udp 192.0.2.53 53: sent"), std::string::npos) << got;
  EXPECT_NE(got.find("tcp 853: Operation not permitted"), std::string::npos) << got;
  // Not refused by the hook: the kernel decides (the pod netns has no route).
  EXPECT_NE(got.find("udp connect 1025: Network is unreachable"), std::string::npos) << got;
  EXPECT_NE(got.find("ping connect: Operation not permitted"), std::string::npos) << got;
  p.reset();
  auto c = backstop_->counters(*id);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->packets[TG_DROP_UDP], 2u);
  EXPECT_EQ(c->packets[TG_DROP_DOT], 2u);
  EXPECT_EQ(c->packets[TG_COUNT_DNS], 1u);
  EXPECT_EQ(c->packets[TG_DROP_ICMP], 1u);
  auto none = backstop_->counters(0);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->packets[TG_DROP_UDP], 0u) << "counted outside the pod's bucket";
}

// The eBPF mode's QUIC destinations, with both objects loaded as the agent loads them (the
// backstop's maps shared): a datagram to udp/443 lands on the telemetry socket of its family, and
// what the backstop filed as it left on lo is found by the lookup the telemetry makes, from the
// telemetry socket's netns and the datagram's source. An unconnected sendto has its source port
// before the sendmsg hook runs; a connect()ed socket gets its port after its connect hook, and its
// send()s meet no hook: both are found (IPv4, IPv6, IPv4-mapped). A socket that sends straight to
// the telemetry socket's port afterwards is not given its earlier destination.
TEST_F(SockRedirectTest, TheQuicSocketFindsWhereEachDatagramWasGoingByItsSource) {
  loadShared(true);
  if (HasFatalFailure()) return;
  agentSockets();
  if (HasFatalFailure()) return;

  // Each datagram says how it was sent; the sockets stay open, so no port is reused.
  auto p = pod([&](const PodProcess::Pause& pause) -> std::string {
    std::string failed;
    for (auto [how, family, addr] : {std::tuple{"sendto", AF_INET, "192.0.2.1"},
                                     std::tuple{"connect", AF_INET, "198.51.100.7"},
                                     std::tuple{"sendto", AF_INET6, "2001:db8::5"},
                                     std::tuple{"connect", AF_INET6, "2001:db8::6"},
                                     std::tuple{"connect", AF_INET6, "::ffff:192.0.2.9"}}) {
      const std::string what = fmt::format("{} {}", how, addr);
      int s = ::socket(family, SOCK_DGRAM, 0);
      sockaddr_storage ss{};
      socklen_t len = sockaddrOf(family, addr, 443, ss);
      const auto* to = reinterpret_cast<sockaddr*>(&ss);
      bool sent = std::string(how) == "connect"
                      ? ::connect(s, to, len) == 0 && ::send(s, what.data(), what.size(), 0) > 0
                      : ::sendto(s, what.data(), what.size(), 0, to, len) > 0;
      if (!sent) failed += fmt::format("{}: {}; ", what, errText());
    }
    int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage quic{}, self{};
    socklen_t quicLen = sockaddrOf(AF_INET, "192.0.2.77", 443, quic);
    socklen_t selfLen = sockaddrOf(AF_INET, "127.0.0.1", 15443, self);
    if (::sendto(s, "earlier", 7, 0, reinterpret_cast<sockaddr*>(&quic), quicLen) != 7) {
      failed += "earlier: " + errText();
    }
    pause(failed);
    if (::sendto(s, "direct", 6, 0, reinterpret_cast<sockaddr*>(&self), selfLen) != 6) {
      return "direct: " + errText();
    }
    return "";
  });
  ASSERT_TRUE(p);
  ASSERT_EQ(p->next(), "");

  // What the telemetry socket does with each datagram: recvfrom, then the lookup by its source.
  auto receive = [&]() -> std::pair<std::string, std::string> {
    pollfd q[2] = {{quic_, POLLIN, 0}, {quic6_, POLLIN, 0}};
    if (::poll(q, 2, 2000) <= 0) return {"(nothing)", ""};
    int fd = (q[0].revents & POLLIN) ? quic_ : quic6_;
    char text[64] = {};
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(fd, text, sizeof text - 1, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0) return {"recvfrom: " + errText(), ""};
    return {fmt::format("{} on {}", text, fd == quic_ ? "v4" : "v6"),
            show(backstop_->quicOriginalDst(fd, from))};
  };
  std::map<std::string, std::string> got;
  for (int i = 0; i < 6; ++i) got.insert(receive());
  EXPECT_EQ(got, (std::map<std::string, std::string>{
                     {"sendto 192.0.2.1 on v4", "4 192.0.2.1 443"},
                     {"connect 198.51.100.7 on v4", "4 198.51.100.7 443"},
                     {"sendto 2001:db8::5 on v6", "6 2001:db8::5 443"},
                     {"connect 2001:db8::6 on v6", "6 2001:db8::6 443"},
                     {"connect ::ffff:192.0.2.9 on v4", "4 192.0.2.9 443"},
                     {"earlier on v4", "4 192.0.2.77 443"},
                 }));
  p->resume();
  EXPECT_EQ(p->next(), "");
  EXPECT_EQ(receive(), (std::pair<std::string, std::string>{"direct on v4", "(none)"}));

  // Not a socket: an error that says what was asked.
  sockaddr_storage from{};
  sockaddrOf(AF_INET, "127.0.0.1", 40000, from);
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  auto bad = backstop_->quicOriginalDst(pipefd[0], from);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("SO_NETNS_COOKIE"), std::string::npos) << bad.error().str();
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}

}  // namespace
}  // namespace tollgate::bpf
