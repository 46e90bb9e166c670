// The handoff manifest encoding and the socket registry (obtain / export / inherit) on loopback
// sockets of the test's own netns. Reading a socket's netns (SIOCGSKNS) needs CAP_NET_ADMIN, so
// the registry tests skip without root; the manifest tests are pure.
#include "proxy/socket_registry.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "proxy/socket_util.h"

namespace tollgate::proxy {
namespace {

ManifestEntry entry(std::string owner, SocketTransport t, std::string local, uint64_t ino) {
  return ManifestEntry{SocketKey{std::move(owner), t, std::move(local)}, ino};
}

TEST(HandoffManifestTest, RoundTripsEveryKindOfSocket) {
  std::vector<ManifestEntry> in = {
      entry("default/client", SocketTransport::Tcp, "127.0.0.1:15001", 4026532281),
      entry("default/client", SocketTransport::Tcp, "[::1]:15001", 4026532281),
      entry("team-b/other.x", SocketTransport::Udp, "127.0.0.1:15053", 4026532999),
      entry("node", SocketTransport::Unix, "/run/tollgate dir/cni.sock", 4026531840),
      entry("node", SocketTransport::Tcp, "0.0.0.0:15020", 4026531840),
  };
  std::string text = encodeManifest(in);
  EXPECT_EQ(text.substr(0, text.find('\n')), "tollgate-handoff-manifest 1 5");
  EXPECT_NE(text.find("\nunix 4026531840 node /run/tollgate dir/cni.sock\n"), std::string::npos);
  auto out = decodeManifest(text);
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(*out, in);
}

TEST(HandoffManifestTest, EmptyManifest) {
  auto out = decodeManifest(encodeManifest({}));
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_TRUE(out->empty());
}

TEST(HandoffManifestTest, RejectsMalformedInput) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "no header"},
      {"something else 1 0\n", "not a handoff manifest"},
      {"tollgate-handoff-manifest 2 0\n", "unsupported version"},
      {"tollgate-handoff-manifest 1 x\n", "count"},
      {"tollgate-handoff-manifest 1 0 extra\n", "trailing"},
      {"tollgate-handoff-manifest 1 99999999\n", "exceed"},
      {"tollgate-handoff-manifest 1 2\ntcp 1 node 0.0.0.0:1\n", "header says 2 entries, found 1"},
      {"tollgate-handoff-manifest 1 0\ntcp 1 node 0.0.0.0:1\n", "header says 0 entries, found 1"},
      {"tollgate-handoff-manifest 1 1\nsctp 1 node 0.0.0.0:1\n", "unknown transport"},
      {"tollgate-handoff-manifest 1 1\ntcp -1 node 0.0.0.0:1\n", "netns inode"},
      {"tollgate-handoff-manifest 1 1\ntcp 1 Default/Client 127.0.0.1:1\n", "invalid owner"},
      {"tollgate-handoff-manifest 1 1\ntcp 1 ../x 127.0.0.1:1\n", "invalid owner"},
      {"tollgate-handoff-manifest 1 1\ntcp 1 default/ 127.0.0.1:1\n", "invalid owner"},
      {"tollgate-handoff-manifest 1 1\ntcp 1 node\n", "no local address"},
      {"tollgate-handoff-manifest 1 1\ntcp 1 node 0.0.0.0:1", "not terminated"},
  };
  for (const auto& [text, why] : cases) {
    auto out = decodeManifest(text);
    ASSERT_FALSE(out) << text;
    EXPECT_NE(out.error().str().find(why), std::string::npos) << text << " -> "
                                                              << out.error().str();
  }
}

TEST(HandoffManifestTest, TransportNames) {
  for (auto t : {SocketTransport::Tcp, SocketTransport::Udp, SocketTransport::Unix}) {
    EXPECT_EQ(parseSocketTransport(toString(t)), t);
  }
  EXPECT_FALSE(parseSocketTransport("TCP"));
}

class SocketRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (SIOCGSKNS needs CAP_NET_ADMIN)";
  }
  static Endpoint loopback() { return Endpoint{*policy::IpAddress::parse("127.0.0.1"), 0}; }
  static uint64_t cookie(int fd) {
    auto f = socketFacts(fd);
    return f ? f->cookie : 0;
  }
};

TEST_F(SocketRegistryTest, ExportedSocketIsTakenOverInsteadOfCreated) {
  SocketRegistry old;
  auto fd = old.obtain(SocketKey{"node", SocketTransport::Tcp, "placeholder"},
                       [] { return makeListener(loopback()); });
  ASSERT_TRUE(fd) << fd.error().str();
  // Re-register under its real address (port 0 was chosen by the kernel).
  auto local = localEndpoint(*fd);
  ASSERT_TRUE(local);
  SocketKey key{"node", SocketTransport::Tcp, local->str()};
  auto same = old.obtain(key, [&] { return Result<int>(*fd); });
  ASSERT_TRUE(same);
  auto exported = old.exportLive();
  ASSERT_EQ(exported.size(), 2u);  // both keys name the same live socket

  SocketRegistry fresh;
  int inheritedFd = -1;
  for (auto& e : exported) {
    if (e.entry.key == key) {
      inheritedFd = e.fd;
      ASSERT_TRUE(fresh.addInherited(e.entry, e.fd));
    } else {
      ::close(e.fd);
    }
  }
  ASSERT_GE(inheritedFd, 0);
  EXPECT_EQ(fresh.inheritedCount(), 1u);
  bool made = false;
  auto taken = fresh.obtain(key, [&] {
    made = true;
    return makeListener(loopback());
  });
  ASSERT_TRUE(taken);
  EXPECT_FALSE(made);
  EXPECT_EQ(cookie(*taken), cookie(*fd));  // the very same kernel socket
  EXPECT_EQ(fresh.inheritedTaken(), 1u);
  EXPECT_EQ(fresh.inheritedCount(), 0u);
  EXPECT_EQ(fresh.liveCount(), 1u);
  ::close(*taken);
  ::close(*fd);
}

TEST_F(SocketRegistryTest, ClosedSocketsAreNotExported) {
  SocketRegistry reg;
  auto a = reg.obtain(SocketKey{"node", SocketTransport::Tcp, "a"},
                      [] { return makeListener(loopback()); });
  auto b = reg.obtain(SocketKey{"node", SocketTransport::Udp, "b"},
                      [] { return makeUdpSocket(loopback()); });
  ASSERT_TRUE(a && b);
  ::close(*a);
  // The fd number is reused by a socket the registry never handed out.
  int reuse = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto exported = reg.exportLive();
  ASSERT_EQ(exported.size(), 1u);
  EXPECT_EQ(exported[0].entry.key.local, "b");
  EXPECT_EQ(exported[0].entry.key.transport, SocketTransport::Udp);
  EXPECT_EQ(cookie(exported[0].fd), cookie(*b));
  EXPECT_EQ(reg.liveCount(), 1u);
  for (auto& e : exported) ::close(e.fd);
  ::close(reuse);
  ::close(*b);
}

TEST_F(SocketRegistryTest, InheritedSocketThatDoesNotMatchItsManifestLineIsRejected) {
  auto fd = makeListener(loopback());
  ASSERT_TRUE(fd);
  auto facts = socketFacts(*fd);
  ASSERT_TRUE(facts) << facts.error().str();
  EXPECT_TRUE(facts->listening);
  auto here = currentNetnsInode();
  ASSERT_TRUE(here);
  EXPECT_EQ(facts->netnsInode, *here);
  SocketRegistry reg;
  // Wrong address, wrong transport, wrong netns: each closed and counted.
  auto wrongAddr = entry("node", SocketTransport::Tcp, "127.0.0.1:1", *here);
  auto wrongType = entry("node", SocketTransport::Udp, facts->local, *here);
  auto wrongNs = entry("node", SocketTransport::Tcp, facts->local, *here + 1);
  for (const auto& e : {wrongAddr, wrongType, wrongNs}) {
    int d = ::dup(*fd);
    auto st = reg.addInherited(e, d);
    EXPECT_FALSE(st) << e.key.str();
  }
  EXPECT_EQ(reg.inheritedRejected(), 3u);
  EXPECT_EQ(reg.inheritedCount(), 0u);
  // A correct line is accepted; dropUnclaimed closes it and names it.
  ASSERT_TRUE(reg.addInherited(entry("node", SocketTransport::Tcp, facts->local, *here),
                               ::dup(*fd)));
  auto dropped = reg.dropUnclaimed();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].local, facts->local);
  ::close(*fd);
}

TEST_F(SocketRegistryTest, NullRegistryJustCreates) {
  bool made = false;
  auto fd = obtainSocket(nullptr, SocketKey{}, [&] {
    made = true;
    return makeUdpSocket(loopback());
  });
  ASSERT_TRUE(fd);
  EXPECT_TRUE(made);
  ::close(*fd);
}

}  // namespace
}  // namespace tollgate::proxy
