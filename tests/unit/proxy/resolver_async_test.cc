// The async stub resolver against a DNS stub on loopback (no root needed).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "proxy/resolver.h"

namespace tollgate::proxy {
namespace {

// Answers every A query with 198.18.0.201 and AAAA with no records, or stays silent.
class LoopbackDns {
 public:
  explicit LoopbackDns(bool answer) : answer_(answer) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    socklen_t len = sizeof sin;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~LoopbackDns() {
    ::shutdown(fd_, SHUT_RDWR);  // unblocks recvfrom on a UDP socket
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int queries() const { return queries_.load(); }

 private:
  void loop() {
    char buf[512];
    for (;;) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) return;
      queries_++;
      if (!answer_ || n < 17) continue;
      std::string resp(buf, static_cast<size_t>(n));
      resp[2] = static_cast<char>(0x81);
      resp[3] = static_cast<char>(0x80);
      bool isA = resp[resp.size() - 3] == 1;  // QTYPE low byte
      if (isA) {
        resp[7] = 1;
        resp += std::string("\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc6\x12\x00\xc9", 16);
      }
      ::sendto(fd_, resp.data(), resp.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  bool answer_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> queries_{0};
  std::thread thread_;
};

Result<std::vector<policy::IpAddress>> resolveNow(Resolver& r, asio::io_context& io,
                                                  const std::string& name) {
  Result<std::vector<policy::IpAddress>> out = fail("not run");
  asio::co_spawn(
      io, [&]() -> awaitable<void> { out = co_await r.resolve(name); }, asio::detached);
  io.restart();
  io.run();
  return out;
}

TEST(ResolverTest, ResolvesOverUdpAndCaches) {
  LoopbackDns dns(true);
  asio::io_context io;
  Resolver r(io);
  r.setUpstreams({dns.address()});
  auto a = resolveNow(r, io, "allowed.test");
  ASSERT_TRUE(a) << a.error().str();
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ((*a)[0].str(), "198.18.0.201");
  int after = dns.queries();
  EXPECT_EQ(after, 2);  // A and AAAA
  auto b = resolveNow(r, io, "allowed.test");
  ASSERT_TRUE(b);
  EXPECT_EQ(dns.queries(), after);  // served from the cache
}

TEST(ResolverTest, SilentUpstreamTimesOut) {
  LoopbackDns dns(false);
  asio::io_context io;
  Resolver r(io);
  r.setUpstreams({dns.address()});
  r.setTimeout(std::chrono::milliseconds(200));
  auto a = resolveNow(r, io, "allowed.test");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ETIMEDOUT) << a.error().str();
}

TEST(ResolverTest, IpLiteralNeedsNoLookup) {
  asio::io_context io;
  Resolver r(io);
  r.setUpstreams({"127.0.0.1:1"});
  auto a = resolveNow(r, io, "10.1.2.3");
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)[0].str(), "10.1.2.3");
}

}  // namespace
}  // namespace tollgate::proxy
