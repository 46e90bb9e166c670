// The eBPF mode's egress backstop (bpf/skb_backstop.bpf.c): its verdicts by BPF_PROG_TEST_RUN
// over crafted frames, then attached to a cgroup this test creates, with a real process in it
// sending from a real netns: what the pod starts is refused and counted, answers to connections
// made to it pass. Root only.
#include "bpf/skb_backstop.h"

#include "bpf_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace tollgate::bpf {
namespace {

// Ethernet + IPv4 header (+ 8 bytes of L4) to `dst`, protocol `proto`.
std::vector<uint8_t> frame4(const char* dst, uint8_t proto) {
  std::vector<uint8_t> f(14 + 20 + 8, 0);
  f[12] = 0x08;  // ETH_P_IP
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  ip[3] = 28;
  ip[8] = 64;
  ip[9] = proto;
  ::inet_pton(AF_INET, "10.253.0.2", ip + 12);
  ::inet_pton(AF_INET, dst, ip + 16);
  ip[20] = 0x9c;  // ports 40000 -> 53 for TCP/UDP
  ip[21] = 0x40;
  ip[23] = 53;
  if (proto == IPPROTO_TCP) f.resize(f.size() + 12, 0);  // the rest of a TCP header
  return f;
}

// Ethernet + IPv6 header + 8 bytes (an ICMPv6 type first) to `dst`.
std::vector<uint8_t> frame6(const char* dst, uint8_t nexthdr, uint8_t hopLimit = 64,
                            uint8_t icmpType = 0) {
  std::vector<uint8_t> f(14 + 40 + 8, 0);
  f[12] = 0x86;  // ETH_P_IPV6
  f[13] = 0xdd;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x60;
  ip[5] = 8;
  ip[6] = nexthdr;
  ip[7] = hopLimit;
  ::inet_pton(AF_INET6, "fd00:253::2", ip + 8);
  ::inet_pton(AF_INET6, dst, ip + 24);
  ip[40] = icmpType;
  return f;
}

class SkbBackstopTest : public testing::BpfNetnsTest {
 protected:
  void SetUp() override {
    BpfNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto b = SkbBackstop::load(tg_config{});
    ASSERT_TRUE(b) << b.error().str();
    backstop_.emplace(std::move(*b));
  }

  void TearDown() override {
    backstop_.reset();
    BpfNetnsTest::TearDown();
  }

  uint32_t verdict(const std::vector<uint8_t>& frame, bool onLoopback = false) {
    uint32_t out = 99;
    in(ns_, [&] {
      uint32_t ifindex = onLoopback ? 1 : ::if_nametoindex("eth0");
      auto v = backstop_->testRun(frame, ifindex);
      ASSERT_TRUE(v) << v.error().str();
      out = *v;
    });
    return out;
  }

  std::optional<SkbBackstop> backstop_;
};

TEST_F(SkbBackstopTest, VerdictsByClassAreCounted) {
  auto before = backstop_->counters(0);
  ASSERT_TRUE(before);
  EXPECT_EQ(verdict(frame4("192.0.2.1", IPPROTO_UDP)), 0u);
  EXPECT_EQ(verdict(frame4("192.0.2.1", IPPROTO_TCP)), 0u);  // no socket: not an answer
  EXPECT_EQ(verdict(frame4("192.0.2.1", IPPROTO_ICMP)), 0u);
  EXPECT_EQ(verdict(frame4("192.0.2.1", 253)), 0u);
  EXPECT_EQ(verdict(frame6("2001:db8::1", IPPROTO_UDP)), 0u);
  EXPECT_EQ(verdict(frame6("2001:db8::1", 58, 64, 128)), 0u);   // ICMPv6 echo
  EXPECT_EQ(verdict(frame6("fe80::1", 58, 64, 135)), 0u);       // NS with a forwardable hop limit
  auto after = backstop_->counters(0);
  ASSERT_TRUE(after);
  auto grew = [&](tg_drop_class c) { return after->packets[c] - before->packets[c]; };
  EXPECT_EQ(grew(TG_DROP_UDP), 1u);
  EXPECT_EQ(grew(TG_DROP_TCP), 1u);
  EXPECT_EQ(grew(TG_DROP_ICMP), 1u);
  EXPECT_EQ(grew(TG_DROP_OTHER), 1u);
  EXPECT_EQ(grew(TG_DROP_IPV6), 3u);
}

TEST_F(SkbBackstopTest, LoopbackAndNeighbourDiscoveryPass) {
  auto before = backstop_->counters(0);
  ASSERT_TRUE(before);
  EXPECT_EQ(verdict(frame4("127.0.0.1", IPPROTO_TCP)), 1u);
  EXPECT_EQ(verdict(frame4("127.9.9.9", IPPROTO_UDP)), 1u);
  EXPECT_EQ(verdict(frame6("::1", IPPROTO_UDP)), 1u);
  EXPECT_EQ(verdict(frame6("fe80::1", 58, 255, 135)), 1u);   // neighbour solicitation
  EXPECT_EQ(verdict(frame6("ff02::16", 58, 1, 143)), 1u);    // MLDv2 report
  // Anything sent over lo stays in the pod (the pod's own addresses included).
  EXPECT_EQ(verdict(frame4("192.0.2.1", IPPROTO_UDP), /*onLoopback=*/true), 1u);
  auto after = backstop_->counters(0);
  ASSERT_TRUE(after);
  for (int c = 0; c < TG_COUNTER_SLOTS; ++c) EXPECT_EQ(after->packets[c], before->packets[c]) << c;
}

TEST_F(SkbBackstopTest, AttachedToACgroupRefusesWhatThePodStartsAndLetsAnswersOut) {
  int cg = makeCgroup();
  ASSERT_GE(cg, 0);
  auto id = cgroupId(cgroup_);
  ASSERT_TRUE(id);
  ASSERT_TRUE(backstop_->track(*id));
  auto link = backstop_->attach(cg, cgroup_);
  ::close(cg);
  ASSERT_TRUE(link) << link.error().str();

  // The peer listens (outside the cgroup) for the pod's attempt to connect out.
  int peerListener = -1;
  in(peer_, [&] {
    peerListener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(8080);
    ::bind(peerListener, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(peerListener, 8);
  });
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const std::string peerAddr = fmt::format("10.253.{}.1", r_);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The "pod": joins the cgroup and the netns, then (exit code bits) 1: UDP was not refused,
    // 2: the outbound TCP connect completed, 4: its own server did not answer.
    int code = 0;
    if (!enterPod()) ::_exit(64);
    int srv = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(9090);
    if (::bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(srv, 8) != 0) ::_exit(66);
    int u = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in out{};
    out.sin_family = AF_INET;
    out.sin_port = htons(9);
    ::inet_pton(AF_INET, peerAddr.c_str(), &out.sin_addr);
    if (::sendto(u, "x", 1, 0, reinterpret_cast<sockaddr*>(&out), sizeof out) >= 0 || errno != EPERM) code |= 1;
    int t = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    out.sin_port = htons(8080);
    ::connect(t, reinterpret_cast<sockaddr*>(&out), sizeof out);
    pollfd p{t, POLLOUT, 0};
    if (::poll(&p, 1, 500) > 0) {
      int e = 0;
      socklen_t len = sizeof e;
      ::getsockopt(t, SOL_SOCKET, SO_ERROR, &e, &len);
      if (e == 0) code |= 2;
    }
    (void)!::write(ready[1], "r", 1);
    // Serve one connection made to the pod: answer "ok".
    pollfd ps{srv, POLLIN, 0};
    if (::poll(&ps, 1, 10000) <= 0) ::_exit(code | 4);
    int c = ::accept(srv, nullptr, nullptr);
    if (c < 0 || ::write(c, "ok", 2) != 2) code |= 4;
    ::close(c);
    ::_exit(code);
  }
  ::close(ready[1]);
  char b;
  ASSERT_EQ(::read(ready[0], &b, 1), 1);
  ::close(ready[0]);
  // A connection made TO the pod from outside: its SYN-ACK and data must get out.
  std::string got;
  in(peer_, [&] {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(9090);
    ::inet_pton(AF_INET, fmt::format("10.253.{}.2", r_).c_str(), &a.sin_addr);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      char buf[8];
      ssize_t n = ::recv(s, buf, sizeof buf, 0);
      if (n > 0) got.assign(buf, static_cast<size_t>(n));
    }
    ::close(s);
  });
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  int code = WEXITSTATUS(status);
  EXPECT_EQ(code & 1, 0) << "UDP from the pod was not refused with EPERM";
  EXPECT_EQ(code & 2, 0) << "the pod's own TCP connect out completed";
  EXPECT_EQ(code & 4, 0) << "the pod's server could not answer";
  EXPECT_LT(code, 64) << "child setup failed: " << code;
  EXPECT_EQ(got, "ok");
  ::close(peerListener);
  auto c = backstop_->counters(*id);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->packets[TG_DROP_UDP], 1u);
  EXPECT_GE(c->packets[TG_DROP_TCP], 1u);  // the SYN (and any retransmission)
  link->reset();  // detach before the cgroup is removed
}

}  // namespace
}  // namespace tollgate::bpf
