// The eBPF mode's redirect hooks (bpf/sock_redirect.bpf.c), attached to a cgroup this test
// creates, with a real process in it and in a pod netns that has no route anywhere: its TCP lands
// on the "agent's" listeners on the pod's loopback with the original destination kept by socket
// cookie (IPv4, IPv6, IPv4-mapped), UDP to 53 and 443 lands on the DNS and QUIC sockets, other
// UDP is refused. Root only.
#include "bpf/sock_redirect.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <array>

#include "bpf_fixture.h"

namespace tollgate::bpf {
namespace {

class SockRedirectTest : public testing::BpfNetnsTest {
 protected:
  void SetUp() override {
    BpfNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto r = SockRedirect::load(testing::labConfig());
    ASSERT_TRUE(r) << r.error().str();
    redirect_.emplace(std::move(*r));
  }

  void TearDown() override {
    redirect_.reset();
    BpfNetnsTest::TearDown();
  }

  std::optional<SockRedirect> redirect_;
};

// Fills `ss` with addr:port of `family`; returns its length.
socklen_t sockaddrOf(int family, const char* addr, uint16_t port, sockaddr_storage& ss) {
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

// A socket bound to addr:port in the calling thread's netns (listening for TCP).
int bound(int family, int type, const char* addr, uint16_t port) {
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

TEST_F(SockRedirectTest, PodTrafficLandsOnTheAgentsSocketsWithItsOriginalDestination) {
  int cg = makeCgroup();
  ASSERT_GE(cg, 0);
  auto links = redirect_->attach(cg, cgroup_);
  ::close(cg);
  ASSERT_TRUE(links) << links.error().str();
  ASSERT_EQ(links->size(), 4u);

  // The agent's sockets in the pod netns, made outside the cgroup.
  int tcp4 = -1, tcp6 = -1, dns = -1, quic = -1;
  in(ns_, [&] {
    tcp4 = bound(AF_INET, SOCK_STREAM, "127.0.0.1", 15001);
    tcp6 = bound(AF_INET6, SOCK_STREAM, "::1", 15001);
    dns = bound(AF_INET, SOCK_DGRAM, "127.0.0.1", 15053);
    quic = bound(AF_INET, SOCK_DGRAM, "127.0.0.1", 15443);
  });
  ASSERT_GE(tcp4, 0);
  ASSERT_GE(tcp6, 0);
  ASSERT_GE(dns, 0);
  ASSERT_GE(quic, 0);

  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The pod. Writes the cookies of its three TCP sockets, then exits with bits set for what
    // went wrong: 1/2/4 a TCP connect failed, 8/16 a UDP send to 53/443 failed, 32/64 UDP to
    // another port was not refused with EPERM (v4/v6).
    if (!enterPod()) ::_exit(128);
    int code = 0;
    auto tcp = [&](int family, const char* addr, uint16_t port, int bit) -> uint64_t {
      int s = ::socket(family, SOCK_STREAM, 0);
      sockaddr_storage ss{};
      socklen_t len = sockaddrOf(family, addr, port, ss);
      if (::connect(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) code |= bit;
      uint64_t cookie = 0;
      socklen_t cl = sizeof cookie;
      ::getsockopt(s, SOL_SOCKET, SO_COOKIE, &cookie, &cl);
      return cookie;  // the socket stays open until exit
    };
    std::array<uint64_t, 3> cookies = {tcp(AF_INET, "192.0.2.1", 80, 1),
                                       tcp(AF_INET6, "2001:db8::1", 443, 2),
                                       tcp(AF_INET6, "::ffff:192.0.2.1", 8080, 4)};
    auto udp = [&](int family, const char* addr, uint16_t port) {
      int s = ::socket(family, SOCK_DGRAM, 0);
      sockaddr_storage ss{};
      socklen_t len = sockaddrOf(family, addr, port, ss);
      return ::sendto(s, "q", 1, 0, reinterpret_cast<sockaddr*>(&ss), len) == 1 ? 0 : errno;
    };
    if (udp(AF_INET, "192.0.2.53", 53) != 0) code |= 8;
    if (udp(AF_INET, "192.0.2.1", 443) != 0) code |= 16;
    if (udp(AF_INET, "192.0.2.1", 9999) != EPERM) code |= 32;
    if (udp(AF_INET6, "2001:db8::1", 9999) != EPERM) code |= 64;
    (void)!::write(pipefd[1], cookies.data(), sizeof cookies);
    char wait;
    (void)!::read(pipefd[1], &wait, 0);
    ::_exit(code);
  }
  ::close(pipefd[1]);
  std::array<uint64_t, 3> cookies{};
  ASSERT_EQ(::read(pipefd[0], cookies.data(), sizeof cookies), static_cast<ssize_t>(sizeof cookies));
  ::close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  int code = WEXITSTATUS(status);
  EXPECT_EQ(code, 0) << "bits: 1/2/4 tcp v4/v6/mapped, 8/16 udp 53/443, 32/64 udp refused v4/v6";

  // Each connection is queued on the listener of its family; each datagram on its socket.
  auto pending = [](int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  };
  EXPECT_TRUE(pending(tcp4));
  EXPECT_TRUE(pending(tcp6));
  EXPECT_TRUE(pending(dns));
  EXPECT_TRUE(pending(quic));
  for (int fd : {tcp4, tcp6, dns, quic}) ::close(fd);

  auto dst = [&](uint64_t cookie) -> std::string {
    auto o = redirect_->originalDst(cookie);
    if (!o) return o.error().str();
    if (!*o) return "(none)";
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop((*o)->family == 4 ? AF_INET : AF_INET6, (*o)->addr, text, sizeof text);
    return fmt::format("{} {} {}", (*o)->family, text, (*o)->port);
  };
  EXPECT_EQ(dst(cookies[0]), "4 192.0.2.1 80");
  EXPECT_EQ(dst(cookies[1]), "6 2001:db8::1 443");
  EXPECT_EQ(dst(cookies[2]), "4 192.0.2.1 8080");  // IPv4-mapped is IPv4
  EXPECT_EQ(dst(12345), "(none)");
  links->reset();  // detach before the cgroup is removed
}

}  // namespace
}  // namespace tollgate::bpf
