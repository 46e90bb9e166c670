// The nftables redirect in a real pod-like netns, with real traffic to a peer netns over a veth.

#include "agent/redirect.h"

#include <gtest/gtest.h>

#include "tests/netns/agent/nft_fixture.h"

namespace tollgate::agent {
namespace {

using namespace nft_testing;

constexpr const char* kPodV4 = "198.18.0.210";
constexpr const char* kPeerV4 = "198.18.0.211";   // also the configured resolver
constexpr const char* kOtherV4 = "198.18.0.212";  // on the peer, not a resolver
constexpr const char* kPodV6 = "fd00:7467::10";
constexpr const char* kPeerV6 = "fd00:7467::11";  // also the configured resolver
constexpr uint32_t kMark = 0x7467;
constexpr uint16_t kProxyPort = 15001;

TEST(NftRedirectParams, RejectsUnsafeOrMalformedParams) {
  RedirectParams p;
  p.mark = 0;
  EXPECT_FALSE(NftRedirect::create(p).has_value()) << "mark 0 would accept every packet";
  p = {};
  p.resolversV4 = {"10.0.0.1; flush ruleset"};
  auto bad = NftRedirect::create(p);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("resolversV4"), std::string::npos) << bad.error().message;
  p = {};
  p.resolversV4 = {"fd00::1"};
  EXPECT_FALSE(NftRedirect::create(p).has_value()) << "IPv6 address in the IPv4 list";
  p = {};
  p.proxyPort = 0;
  EXPECT_FALSE(NftRedirect::create(p).has_value());
}

TEST(NftRedirectParams, RulesetHasMarkFirstInEveryChainAndCanonicalAddresses) {
  RedirectParams p;
  p.resolversV6 = {"fd00:0:0::0:53"};
  auto r = NftRedirect::create(p);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto table = parseNftListing(r->ruleset());
  ASSERT_TRUE(table.has_value()) << table.error().message;
  ASSERT_EQ(table->chains.size(), 2u);
  for (const auto& chain : table->chains) {
    ASSERT_FALSE(chain.rules.empty());
    EXPECT_EQ(chain.rules.front(), "meta mark 0x00007467 accept") << chain.name;
  }
  EXPECT_NE(r->ruleset().find("ip6 daddr fd00::53 meta l4proto { tcp, udp } th dport 53"),
            std::string::npos)
      << r->ruleset();
}

class NftRedirectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!isRoot()) GTEST_SKIP() << "needs root (network namespaces, nftables)";
    auto pod = ScratchNetns::create("pod");
    ASSERT_TRUE(pod.has_value()) << pod.error().message;
    pod_.emplace(std::move(*pod));
    auto peer = ScratchNetns::create("peer");
    ASSERT_TRUE(peer.has_value()) << peer.error().message;
    peer_.emplace(std::move(*peer));

    const std::string sfx = randomSuffix();
    podIf_ = "tgt" + sfx + "p";
    const std::string& podIf = podIf_;
    const std::string peerIf = "tgt" + sfx + "q";
    ASSERT_TRUE(addVeth(*pod_, podIf, *peer_, peerIf).has_value());
    for (auto st :
         {pod_->ip({"addr", "add", std::string(kPodV4) + "/24", "dev", podIf}),
          pod_->ip({"addr", "add", std::string(kPodV6) + "/64", "dev", podIf, "nodad"}),
          peer_->ip({"addr", "add", std::string(kPeerV4) + "/24", "dev", peerIf}),
          peer_->ip({"addr", "add", std::string(kOtherV4) + "/24", "dev", peerIf}),
          peer_->ip({"addr", "add", std::string(kPeerV6) + "/64", "dev", peerIf, "nodad"})}) {
      ASSERT_TRUE(st.has_value()) << st.error().message;
    }

    RedirectParams params;
    params.proxyPort = kProxyPort;
    params.mark = kMark;
    params.resolversV4 = {kPeerV4};
    params.resolversV6 = {kPeerV6};
    auto redirect = NftRedirect::create(params);
    ASSERT_TRUE(redirect.has_value()) << redirect.error().message;
    redirect_.emplace(std::move(*redirect));
  }

  const Netns& pod() const { return pod_->netns(); }
  const Netns& peer() const { return peer_->netns(); }

  void install() {
    auto st = redirect_->install(pod());
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }

  uint64_t counter(const std::string& name, uint64_t min) {
    return waitCounter([&] { return redirect_->counters(pod()); }, name, min);
  }

  std::optional<ScratchNetns> pod_, peer_;
  std::string podIf_;
  std::optional<NftRedirect> redirect_;
};

TEST_F(NftRedirectTest, TcpIsRedirectedToProxyListenerWithOriginalDestination) {
  auto proxy = tcpListen(pod(), "127.0.0.1", kProxyPort);
  ASSERT_TRUE(proxy.has_value()) << proxy.error().message;
  auto server = tcpListen(peer(), kPeerV4, 8080);
  ASSERT_TRUE(server.has_value()) << server.error().message;

  // Without rules the connection reaches the peer: the topology is real.
  {
    auto c = tcpConnectStart(pod(), kPeerV4, 8080);
    ASSERT_TRUE(c.has_value());
    ASSERT_EQ(waitConnected(c->get(), kHangMs), 0);
    ASSERT_TRUE(acceptWithin(server->get(), kHangMs).has_value());
  }

  install();
  auto c = tcpConnectStart(pod(), kPeerV4, 8080);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(waitConnected(c->get(), kHangMs), 0);
  auto accepted = acceptWithin(proxy->get(), kHangMs);
  ASSERT_TRUE(accepted.has_value()) << "the proxy listener did not get the redirected connection";
  auto dst = originalDst(accepted->get(), AF_INET);
  ASSERT_TRUE(dst.has_value()) << dst.error().message;
  EXPECT_EQ(*dst, "198.18.0.211:8080");
  EXPECT_FALSE(readableWithin(server->get(), 0)) << "the peer saw a redirected connection";
}

TEST_F(NftRedirectTest, MarkedSocketBypassesRedirectAndFilter) {
  auto proxy = tcpListen(pod(), "127.0.0.1", kProxyPort);
  ASSERT_TRUE(proxy.has_value());
  auto server = tcpListen(peer(), kPeerV4, 8080);
  ASSERT_TRUE(server.has_value());
  install();

  auto c = tcpConnectStart(pod(), kPeerV4, 8080, kMark);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(waitConnected(c->get(), kHangMs), 0);
  EXPECT_TRUE(acceptWithin(server->get(), kHangMs).has_value())
      << "marked socket did not reach peer";
  EXPECT_FALSE(readableWithin(proxy->get(), 0)) << "marked socket was redirected";

  // A marked UDP socket passes the drop-everything-else filter too.
  auto sink = udpSocket(peer(), AF_INET, kPeerV4, 9999);
  ASSERT_TRUE(sink.has_value());
  auto u = inNetns(pod(), [&]() -> Result<int> {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ::setsockopt(fd, SOL_SOCKET, SO_MARK, &kMark, sizeof kMark);
    return fd;
  });
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(sendTo(u->get(), kPeerV4, 9999, "marked"), 0);
  EXPECT_EQ(recvWithin(sink->get(), kHangMs).value_or(""), "marked");
}

TEST_F(NftRedirectTest, LoopbackIsNotRedirected) {
  auto proxy = tcpListen(pod(), "127.0.0.1", kProxyPort);
  ASSERT_TRUE(proxy.has_value());
  auto local = tcpListen(pod(), "127.0.0.1", 0);
  ASSERT_TRUE(local.has_value());
  install();

  auto c = tcpConnectStart(pod(), "127.0.0.1", localPort(local->get()));
  ASSERT_TRUE(c.has_value());
  ASSERT_EQ(waitConnected(c->get(), kHangMs), 0);
  EXPECT_TRUE(acceptWithin(local->get(), kHangMs).has_value()) << "localhost service unreachable";
  EXPECT_FALSE(readableWithin(proxy->get(), 0));

  // Connecting to the proxy port directly is not rewritten by us: the proxy sees its own port as
  // the original destination and refuses the flow itself (no loops), instead of the rules doing it.
  auto direct = tcpConnectStart(pod(), "127.0.0.1", kProxyPort);
  ASSERT_TRUE(direct.has_value());
  ASSERT_EQ(waitConnected(direct->get(), kHangMs), 0);
  auto accepted = acceptWithin(proxy->get(), kHangMs);
  ASSERT_TRUE(accepted.has_value());
  auto dst = originalDst(accepted->get(), AF_INET);
  ASSERT_TRUE(dst.has_value()) << dst.error().message;
  EXPECT_EQ(*dst, "127.0.0.1:15001");
}

TEST_F(NftRedirectTest, OwnAddressBypassesOnlyInAllLocalMode) {
  auto proxy = tcpListen(pod(), "127.0.0.1", kProxyPort);
  ASSERT_TRUE(proxy.has_value());
  auto self = tcpListen(pod(), kPodV4, 0);
  ASSERT_TRUE(self.has_value());
  const uint16_t port = localPort(self->get());

  install();  // AllLocal (the default)
  auto c = tcpConnectStart(pod(), kPodV4, port);
  ASSERT_TRUE(c.has_value());
  ASSERT_EQ(waitConnected(c->get(), kHangMs), 0);
  EXPECT_TRUE(acceptWithin(self->get(), kHangMs).has_value());
  EXPECT_FALSE(readableWithin(proxy->get(), 0));

  RedirectParams params = redirect_->params();
  params.loopback = LoopbackMode::LoopbackOnly;
  auto loopbackOnly = NftRedirect::create(params);
  ASSERT_TRUE(loopbackOnly.has_value());
  ASSERT_TRUE(loopbackOnly->install(pod()).has_value());
  auto drift = loopbackOnly->verify(pod());
  ASSERT_TRUE(drift.has_value());
  EXPECT_TRUE(drift->ok()) << drift->summary();
  // The same table in the other mode is drift.
  drift = redirect_->verify(pod());
  ASSERT_TRUE(drift.has_value());
  EXPECT_FALSE(drift->ok());

  auto viaProxy = tcpConnectStart(pod(), kPodV4, port);
  ASSERT_TRUE(viaProxy.has_value());
  ASSERT_EQ(waitConnected(viaProxy->get(), kHangMs), 0);
  auto accepted = acceptWithin(proxy->get(), kHangMs);
  ASSERT_TRUE(accepted.has_value()) << "own address not redirected in LoopbackOnly mode";
  EXPECT_EQ(originalDst(accepted->get(), AF_INET).value_or(""), fmt::format("{}:{}", kPodV4, port));
  // 127.0.0.0/8 still bypasses.
  auto local = tcpListen(pod(), "127.0.0.2", 0);
  ASSERT_TRUE(local.has_value());
  auto l = tcpConnectStart(pod(), "127.0.0.2", localPort(local->get()));
  ASSERT_TRUE(l.has_value());
  ASSERT_EQ(waitConnected(l->get(), kHangMs), 0);
  EXPECT_TRUE(acceptWithin(local->get(), kHangMs).has_value());
}

TEST_F(NftRedirectTest, UdpIsDroppedAndCounted) {
  auto sink = udpSocket(peer(), AF_INET, kPeerV4, 9999);
  ASSERT_TRUE(sink.has_value());
  auto u = udpSocket(pod(), AF_INET);
  ASSERT_TRUE(u.has_value());
  ASSERT_EQ(sendTo(u->get(), kPeerV4, 9999, "before"), 0);
  ASSERT_EQ(recvWithin(sink->get(), kHangMs).value_or(""), "before") << "topology broken";

  install();
  // The OUTPUT hook drops locally generated packets synchronously: sendto fails with EPERM.
  EXPECT_EQ(sendTo(u->get(), kPeerV4, 9999, "after"), EPERM);
  EXPECT_FALSE(recvWithin(sink->get(), 200).has_value()) << "UDP left the pod";
  EXPECT_GE(counter(kCounterDropUdp, 1), 1u);
}

TEST_F(NftRedirectTest, PingIsDroppedAndCounted) {
  auto ping4 = icmpSocket(pod(), AF_INET);
  ASSERT_TRUE(ping4.has_value()) << ping4.error().message;
  auto ping6 = icmpSocket(pod(), AF_INET6);
  ASSERT_TRUE(ping6.has_value()) << ping6.error().message;
  ASSERT_EQ(sendEcho(ping4->get(), kPeerV4), 0);
  ASSERT_TRUE(readableWithin(ping4->get(), kHangMs)) << "no echo reply before install";

  install();
  EXPECT_EQ(sendEcho(ping4->get(), kPeerV4), EPERM);
  EXPECT_GE(counter(kCounterDropIcmp, 1), 1u);
  EXPECT_EQ(sendEcho(ping6->get(), kPeerV6), EPERM);
  EXPECT_GE(counter(kCounterDropIcmp, 2), 2u);
}

TEST_F(NftRedirectTest, DnsOnlyToConfiguredResolvers) {
  auto resolver = udpSocket(peer(), AF_INET, kPeerV4, 53);
  ASSERT_TRUE(resolver.has_value()) << resolver.error().message;
  auto other = udpSocket(peer(), AF_INET, kOtherV4, 53);
  ASSERT_TRUE(other.has_value());
  auto resolverTcp = tcpListen(peer(), kPeerV4, 53);
  ASSERT_TRUE(resolverTcp.has_value());
  auto proxy = tcpListen(pod(), "127.0.0.1", kProxyPort);
  ASSERT_TRUE(proxy.has_value());
  install();

  // UDP query to the resolver and its answer (a one-shot echo).
  auto client = udpSocket(pod(), AF_INET);
  ASSERT_TRUE(client.has_value());
  ASSERT_EQ(sendTo(client->get(), kPeerV4, 53, "query"), 0);
  sockaddr_storage from{};
  ASSERT_EQ(recvWithin(resolver->get(), kHangMs, &from).value_or(""), "query");
  ASSERT_GE(::sendto(resolver->get(), "answer", 6, 0, reinterpret_cast<sockaddr*>(&from),
                     sizeof(sockaddr_in)),
            0);
  EXPECT_EQ(recvWithin(client->get(), kHangMs).value_or(""), "answer");
  EXPECT_GE(counter(kCounterDns, 1), 1u);

  // Port 53 anywhere else is plain UDP: dropped.
  const uint64_t udpBefore = counter(kCounterDropUdp, 0);
  EXPECT_EQ(sendTo(client->get(), kOtherV4, 53, "query"), EPERM);
  EXPECT_FALSE(recvWithin(other->get(), 200).has_value());
  EXPECT_GE(counter(kCounterDropUdp, udpBefore + 1), udpBefore + 1);

  // TCP DNS to the resolver goes out directly; TCP port 53 elsewhere meets the proxy.
  auto tcp = tcpConnectStart(pod(), kPeerV4, 53);
  ASSERT_TRUE(tcp.has_value());
  ASSERT_EQ(waitConnected(tcp->get(), kHangMs), 0);
  EXPECT_TRUE(acceptWithin(resolverTcp->get(), kHangMs).has_value());
  auto tcpOther = tcpConnectStart(pod(), kOtherV4, 53);
  ASSERT_TRUE(tcpOther.has_value());
  ASSERT_EQ(waitConnected(tcpOther->get(), kHangMs), 0);
  EXPECT_TRUE(acceptWithin(proxy->get(), kHangMs).has_value());
}

TEST_F(NftRedirectTest, Ipv6TcpIsRedirectedAndNeighbourDiscoveryWorks) {
  auto proxy6 = tcpListen(pod(), "::1", kProxyPort);
  ASSERT_TRUE(proxy6.has_value()) << proxy6.error().message;
  auto server6 = tcpListen(peer(), kPeerV6, 8080);
  ASSERT_TRUE(server6.has_value()) << server6.error().message;
  install();

  auto c = tcpConnectStart(pod(), kPeerV6, 8080);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(waitConnected(c->get(), kHangMs), 0);
  auto accepted = acceptWithin(proxy6->get(), kHangMs);
  ASSERT_TRUE(accepted.has_value()) << "IPv6 connection not redirected to [::1]:15001";
  auto dst = originalDst(accepted->get(), AF_INET6);
  ASSERT_TRUE(dst.has_value()) << dst.error().message;
  EXPECT_EQ(*dst, "[fd00:7467::11]:8080");

  // The marked connection needs neighbour discovery, which the filter chain must let out (the
  // neighbour cache of this fresh netns is empty).
  auto marked = tcpConnectStart(pod(), kPeerV6, 8080, kMark);
  ASSERT_TRUE(marked.has_value());
  ASSERT_EQ(waitConnected(marked->get(), kHangMs), 0)
      << "IPv6 on-link broken (neighbour discovery?)";
  EXPECT_TRUE(acceptWithin(server6->get(), kHangMs).has_value());
}

TEST_F(NftRedirectTest, Ipv6TcpFromLinkLocalSourceIsDroppedAndCounted) {
  auto proxy6 = tcpListen(pod(), "::1", kProxyPort);
  ASSERT_TRUE(proxy6.has_value()) << proxy6.error().message;
  auto server6 = tcpListen(peer(), kPeerV6, 8080);
  ASSERT_TRUE(server6.has_value()) << server6.error().message;
  // The pod keeps only a link-local address and a route to the peer's prefix: connections to
  // the peer's routable address now have a link-local source.
  for (auto st : {pod_->ip({"addr", "add", "fe80::7467:10/64", "dev", podIf_, "nodad"}),
                  pod_->ip({"addr", "del", std::string(kPodV6) + "/64", "dev", podIf_}),
                  pod_->ip({"route", "add", "fd00:7467::/64", "dev", podIf_})}) {
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }
  install();
  auto c = tcpConnectStart(pod(), kPeerV6, 8080);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_NE(waitConnected(c->get(), 300), 0) << "a link-local-sourced connection got through";
  EXPECT_GE(counter(kCounterDropTcp, 1), 1u);
  EXPECT_FALSE(acceptWithin(proxy6->get(), 0).has_value());
  EXPECT_FALSE(acceptWithin(server6->get(), 0).has_value()) << "the peer saw the connection";
}

TEST_F(NftRedirectTest, InstallIsIdempotentAndVerifies) {
  install();
  auto drift = redirect_->verify(pod());
  ASSERT_TRUE(drift.has_value()) << drift.error().message;
  EXPECT_TRUE(drift->ok()) << drift->summary();
  install();
  drift = redirect_->verify(pod());
  ASSERT_TRUE(drift.has_value());
  EXPECT_TRUE(drift->ok()) << drift->summary();

  std::string tables;
  ASSERT_EQ(pod_->exec({"nft", "list", "tables"}, &tables), 0);
  EXPECT_EQ(tables, "table inet tollgate\n");

  auto counters = redirect_->counters(pod());
  ASSERT_TRUE(counters.has_value()) << counters.error().message;
  for (const char* name :
       {kCounterDns, kCounterDropUdp, kCounterDropIcmp, kCounterDropTcp, kCounterDropOther}) {
    EXPECT_EQ(counters->count(name), 1u) << name;
  }
}

TEST_F(NftRedirectTest, VerifyDetectsDeletedTableAndInstallRepairs) {
  install();
  ASSERT_EQ(pod_->exec({"nft", "delete", "table", "inet", "tollgate"}), 0);
  auto drift = redirect_->verify(pod());
  ASSERT_TRUE(drift.has_value()) << drift.error().message;
  ASSERT_EQ(drift->differences.size(), 1u) << drift->summary();
  EXPECT_EQ(drift->differences[0], "table inet tollgate missing");

  install();
  drift = redirect_->verify(pod());
  ASSERT_TRUE(drift.has_value());
  EXPECT_TRUE(drift->ok()) << drift->summary();
}

TEST_F(NftRedirectTest, VerifyDetectsChangedPolicyAndInsertedRule) {
  install();
  ASSERT_EQ(pod_->exec({"nft", "chain", "inet", "tollgate", "output", "{ policy accept; }"}), 0);
  auto drift = redirect_->verify(pod());
  ASSERT_TRUE(drift.has_value()) << drift.error().message;
  ASSERT_EQ(drift->differences.size(), 1u) << drift->summary();
  EXPECT_EQ(drift->differences[0], "chain output policy accept, expected drop");

  install();
  ASSERT_EQ(pod_->exec({"nft", "insert", "rule", "inet", "tollgate", "output", "udp", "dport",
                        "9999", "accept"}),
            0);
  drift = redirect_->verify(pod());
  ASSERT_TRUE(drift.has_value());
  ASSERT_EQ(drift->differences.size(), 1u) << drift->summary();
  EXPECT_EQ(drift->differences[0], "chain output has unexpected rule 1 `udp dport 9999 accept`");
}

TEST_F(NftRedirectTest, RemoveLeavesNoTableAndIsIdempotent) {
  install();
  auto st = redirect_->remove(pod());
  ASSERT_TRUE(st.has_value()) << st.error().message;
  std::string tables;
  ASSERT_EQ(pod_->exec({"nft", "list", "tables"}, &tables), 0);
  EXPECT_EQ(tables, "");
  st = redirect_->remove(pod());
  EXPECT_TRUE(st.has_value()) << "removing a missing table must succeed";

  auto counters = redirect_->counters(pod());
  EXPECT_FALSE(counters.has_value()) << "counters of a removed table";
}

TEST_F(NftRedirectTest, ErrorsCarryNetnsAndLibnftablesMessage) {
  auto out = pod().run([]() -> Status {
    auto r = runNft("add rule inet no_such_table c accept");
    if (r) return {};
    return std::unexpected(r.error());
  });
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().message.find("Error:"), std::string::npos) << out.error().message;
  EXPECT_NE(out.error().message.find("No such file or directory"), std::string::npos)
      << out.error().message;

  // A handle that is not a netns: the install error names the operation and the netns.
  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto bogus = Netns::fromFd(::dup(devnull.get()), "pod default/bogus");
  ASSERT_TRUE(bogus.has_value());
  auto st = redirect_->install(*bogus);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().message.rfind("nft: install inet tollgate in netns pod default/bogus: ", 0),
            0u)
      << st.error().message;
}

}  // namespace
}  // namespace tollgate::agent
