// The host fence in a real "node" netns that routes between a "pod" netns and a "net" netns.
//
//   pod 10.255.1.2 --veth-- 10.255.1.1 node 198.18.0.200/10.255.2.1 --veth-- net
//                           (pod side: tgt<sfx>p)                         198.18.0.201 gateway
//                           :15008
//                                                                         198.18.0.202
//                                                                         10.255.2.2 (in the
//                                                                         cluster)

#include "agent/fence.h"

#include <gtest/gtest.h>

#include "tests/netns/agent/nft_fixture.h"

namespace tollgate::agent {
namespace {

using namespace nft_testing;

constexpr const char* kPod = "10.255.1.2";
constexpr const char* kNodePodSide = "10.255.1.1";  // also the node-local resolver
constexpr const char* kGateway = "198.18.0.201";
constexpr const char* kExternal = "198.18.0.202";
constexpr const char* kClusterPeer = "10.255.2.2";
constexpr uint16_t kGatewayPort = 15008;

TEST(HostFenceParams, RejectsParamsThatWouldOpenOrBreakTheFence) {
  FenceParams p;
  p.podCidrs = {"10.244.0.0/16"};
  EXPECT_FALSE(HostFence::create(p).has_value()) << "no pod interfaces";
  p.podInterfaces = {"*"};
  EXPECT_FALSE(HostFence::create(p).has_value()) << "a lone * fences the uplink too";
  p.podInterfaces = {"veth\"; flush ruleset"};
  EXPECT_FALSE(HostFence::create(p).has_value());
  p.podInterfaces = {"veth*"};
  p.podCidrs = {"0.0.0.0/0"};
  EXPECT_FALSE(HostFence::create(p).has_value()) << "a /0 cluster CIDR allows everything";
  p.podCidrs = {"10.244.7.9/16"};
  p.gateways = {{"gateway.example", 15008}};
  EXPECT_FALSE(HostFence::create(p).has_value());
  p.gateways = {{"198.18.0.1", 15008}};
  auto ok = HostFence::create(p);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  // Host bits are masked the way nft prints them, or verify() would report drift forever.
  EXPECT_NE(ok->ruleset().find("ip daddr 10.244.0.0/16 accept"), std::string::npos)
      << ok->ruleset();
}

class HostFenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!isRoot()) GTEST_SKIP() << "needs root (network namespaces, nftables)";
    for (auto [slot, role] : {std::pair{&pod_, "fpod"}, {&node_, "fnode"}, {&net_, "fnet"}}) {
      auto ns = ScratchNetns::create(role);
      ASSERT_TRUE(ns.has_value()) << ns.error().message;
      slot->emplace(std::move(*ns));
    }
    const std::string sfx = randomSuffix();
    podIf_ = "tgt" + sfx + "p";
    ASSERT_TRUE(addVeth(*pod_, "tgt" + sfx + "a", *node_, podIf_).has_value());
    ASSERT_TRUE(addVeth(*node_, "tgt" + sfx + "n", *net_, "tgt" + sfx + "b").has_value());
    for (auto st :
         {pod_->ip({"addr", "add", std::string(kPod) + "/24", "dev", "tgt" + sfx + "a"}),
          pod_->ip({"route", "add", "default", "via", kNodePodSide}),
          node_->ip({"addr", "add", std::string(kNodePodSide) + "/24", "dev", podIf_}),
          node_->ip({"addr", "add", "198.18.0.200/24", "dev", "tgt" + sfx + "n"}),
          node_->ip({"addr", "add", "10.255.2.1/24", "dev", "tgt" + sfx + "n"}),
          net_->ip({"addr", "add", std::string(kGateway) + "/24", "dev", "tgt" + sfx + "b"}),
          net_->ip({"addr", "add", std::string(kExternal) + "/24", "dev", "tgt" + sfx + "b"}),
          net_->ip({"addr", "add", std::string(kClusterPeer) + "/24", "dev", "tgt" + sfx + "b"}),
          net_->ip({"route", "add", "10.255.1.0/24", "via", "198.18.0.200", "src", kExternal})}) {
      ASSERT_TRUE(st.has_value()) << st.error().message;
    }
    ASSERT_EQ(node_->exec({"sysctl", "-qw", "net.ipv4.ip_forward=1"}), 0);

    FenceParams params;
    params.podInterfaces = {"tgt" + sfx + "p*"};  // a prefix pattern, like "veth*"
    params.podCidrs = {"10.255.0.0/17"};
    params.serviceCidrs = {"10.255.128.0/17"};
    params.gateways = {{kGateway, kGatewayPort}};
    params.resolvers = {kNodePodSide};
    auto fence = HostFence::create(params);
    ASSERT_TRUE(fence.has_value()) << fence.error().message;
    fence_.emplace(std::move(*fence));
  }

  const Netns& pod() const { return pod_->netns(); }
  const Netns& node() const { return node_->netns(); }
  const Netns& net() const { return net_->netns(); }

  void install() {
    auto st = fence_->install(node());
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }
  uint64_t counter(const std::string& name, uint64_t min) {
    return waitCounter([&] { return fence_->counters(node()); }, name, min);
  }
  // Connects from the pod; true when the TCP handshake completes within the timeout.
  bool podConnects(const std::string& ip, uint16_t port, int timeoutMs = kHangMs) {
    auto c = tcpConnectStart(pod(), ip, port);
    return c.has_value() && waitConnected(c->get(), timeoutMs) == 0;
  }

  std::string podIf_;
  std::optional<ScratchNetns> pod_, node_, net_;
  std::optional<HostFence> fence_;
};

TEST_F(HostFenceTest, DropsAndCountsPodTrafficLeavingTheCluster) {
  auto server = tcpListen(net(), kExternal, 8080);
  ASSERT_TRUE(server.has_value()) << server.error().message;
  ASSERT_TRUE(podConnects(kExternal, 8080)) << "topology broken: no route before the fence";
  ASSERT_TRUE(acceptWithin(server->get(), kHangMs).has_value());

  install();
  auto c = tcpConnectStart(pod(), kExternal, 8080);
  ASSERT_TRUE(c.has_value());
  EXPECT_GE(counter(kCounterFenceDrop, 1), 1u);
  EXPECT_EQ(waitConnected(c->get(), 300), ETIMEDOUT) << "TCP left the cluster past the fence";
  EXPECT_FALSE(readableWithin(server->get(), 0));

  // UDP too (the pod netns has no redirect here: this is the fence alone).
  auto sink = udpSocket(net(), AF_INET, kExternal, 9999);
  ASSERT_TRUE(sink.has_value());
  auto u = udpSocket(pod(), AF_INET);
  ASSERT_TRUE(u.has_value());
  const uint64_t before = counter(kCounterFenceDrop, 0);
  ASSERT_EQ(sendTo(u->get(), kExternal, 9999, "leak"), 0);
  EXPECT_GE(counter(kCounterFenceDrop, before + 1), before + 1);
  EXPECT_FALSE(recvWithin(sink->get(), 200).has_value()) << "UDP left the cluster";
}

TEST_F(HostFenceTest, GatewayPortAndClusterDestinationsPass) {
  auto gateway = tcpListen(net(), kGateway, kGatewayPort);
  ASSERT_TRUE(gateway.has_value());
  auto wrongAddress = tcpListen(net(), kExternal, kGatewayPort);
  ASSERT_TRUE(wrongAddress.has_value());
  auto cluster = tcpListen(net(), kClusterPeer, 8080);
  ASSERT_TRUE(cluster.has_value());
  install();

  EXPECT_TRUE(podConnects(kGateway, kGatewayPort)) << "gateway tunnel port blocked";
  EXPECT_TRUE(acceptWithin(gateway->get(), kHangMs).has_value());
  EXPECT_GE(counter(kCounterFenceGateway, 1), 1u);

  EXPECT_TRUE(podConnects(kClusterPeer, 8080)) << "in-cluster destination blocked";
  EXPECT_TRUE(acceptWithin(cluster->get(), kHangMs).has_value());

  // The gateway port on another external address is not the gateway.
  auto c = tcpConnectStart(pod(), kExternal, kGatewayPort);
  ASSERT_TRUE(c.has_value());
  EXPECT_GE(counter(kCounterFenceDrop, 1), 1u);
  EXPECT_EQ(waitConnected(c->get(), 300), ETIMEDOUT);
}

TEST_F(HostFenceTest, NodeItselfOnlyForDnsAndReplies) {
  auto resolver = udpSocket(node(), AF_INET, kNodePodSide, 53);
  ASSERT_TRUE(resolver.has_value()) << resolver.error().message;
  auto sshd = tcpListen(node(), kNodePodSide, 2222);
  ASSERT_TRUE(sshd.has_value());
  auto podService = tcpListen(pod(), kPod, 7000);
  ASSERT_TRUE(podService.has_value());
  install();

  // DNS to the node-local resolver and its answer.
  auto client = udpSocket(pod(), AF_INET);
  ASSERT_TRUE(client.has_value());
  ASSERT_EQ(sendTo(client->get(), kNodePodSide, 53, "query"), 0);
  sockaddr_storage from{};
  ASSERT_EQ(recvWithin(resolver->get(), kHangMs, &from).value_or(""), "query");
  ASSERT_GE(::sendto(resolver->get(), "answer", 6, 0, reinterpret_cast<sockaddr*>(&from),
                     sizeof(sockaddr_in)),
            0);
  EXPECT_EQ(recvWithin(client->get(), kHangMs).value_or(""), "answer");
  EXPECT_GE(counter(kCounterFenceDns, 1), 1u);

  // Any other node service is out of reach.
  auto c = tcpConnectStart(pod(), kNodePodSide, 2222);
  ASSERT_TRUE(c.has_value());
  EXPECT_GE(counter(kCounterFenceNodeDrop, 1), 1u);
  EXPECT_EQ(waitConnected(c->get(), 300), ETIMEDOUT);

  // The node can still connect into the pod (kubelet probes): the pod's replies come back.
  auto probe = tcpConnectStart(node(), kPod, 7000);
  ASSERT_TRUE(probe.has_value());
  EXPECT_EQ(waitConnected(probe->get(), kHangMs), 0) << "replies to node-initiated flows dropped";
}

TEST_F(HostFenceTest, PodAnswersConnectionsFromOutside) {
  auto podService = tcpListen(pod(), kPod, 7000);
  ASSERT_TRUE(podService.has_value());
  install();

  auto c = tcpConnectStart(net(), kPod, 7000);
  ASSERT_TRUE(c.has_value());
  ASSERT_EQ(waitConnected(c->get(), kHangMs), 0) << "the pod's SYN-ACK did not pass the fence";
  auto accepted = acceptWithin(podService->get(), kHangMs);
  ASSERT_TRUE(accepted.has_value());
  ASSERT_EQ(::send(accepted->get(), "hello", 5, 0), 5);
  ASSERT_TRUE(readableWithin(c->get(), kHangMs));
  char buf[8] = {};
  EXPECT_EQ(::recv(c->get(), buf, sizeof buf, 0), 5);
  EXPECT_EQ(counter(kCounterFenceDrop, 0), 0u);
}

TEST_F(HostFenceTest, IdempotentInstallVerifyAndRemove) {
  install();
  install();
  auto drift = fence_->verify(node());
  ASSERT_TRUE(drift.has_value()) << drift.error().message;
  EXPECT_TRUE(drift->ok()) << drift->summary();
  std::string tables;
  ASSERT_EQ(node_->exec({"nft", "list", "tables"}, &tables), 0);
  EXPECT_EQ(tables, "table inet tollgate_fence\n");

  ASSERT_EQ(node_->exec({"nft", "flush", "chain", "inet", "tollgate_fence", "pod_forward"}), 0);
  drift = fence_->verify(node());
  ASSERT_TRUE(drift.has_value());
  ASSERT_FALSE(drift->ok());
  EXPECT_NE(drift->summary().find("chain pod_forward is missing rule"), std::string::npos)
      << drift->summary();

  ASSERT_EQ(node_->exec({"nft", "delete", "table", "inet", "tollgate_fence"}), 0);
  drift = fence_->verify(node());
  ASSERT_TRUE(drift.has_value());
  EXPECT_EQ(drift->summary(), "table inet tollgate_fence missing");

  install();
  auto st = fence_->remove(node());
  ASSERT_TRUE(st.has_value()) << st.error().message;
  ASSERT_EQ(node_->exec({"nft", "list", "tables"}, &tables), 0);
  EXPECT_EQ(tables, "");
  EXPECT_TRUE(fence_->remove(node()).has_value());
}

// Two pods on one bridge in the node, IPv6 only, with br_netfilter passing bridged IPv6 through
// the fence's forward hook (what kube-proxy sets up): the pods must still resolve each other
// (neighbour solicitations go to a multicast group outside every cluster CIDR) and talk.
TEST(HostFenceBridgeTest, BridgedPodsResolveNeighboursOverIpv6) {
  if (!isRoot()) GTEST_SKIP() << "needs root (network namespaces, nftables)";
  std::optional<ScratchNetns> node, a, b;
  for (auto [slot, role] : {std::pair{&node, "fbnode"}, {&a, "fbpoda"}, {&b, "fbpodb"}}) {
    auto ns = ScratchNetns::create(role);
    ASSERT_TRUE(ns.has_value()) << ns.error().message;
    slot->emplace(std::move(*ns));
  }
  if (node->exec({"test", "-e", "/proc/sys/net/bridge/bridge-nf-call-ip6tables"}) != 0) {
    GTEST_SKIP() << "br_netfilter not loaded: bridged packets never meet the fence";
  }
  const std::string sfx = randomSuffix();
  const std::string br = "tgt" + sfx + "br";
  ASSERT_TRUE(addVeth(*a, "eth0", *node, "tgt" + sfx + "va").has_value());
  ASSERT_TRUE(addVeth(*b, "eth0", *node, "tgt" + sfx + "vb").has_value());
  for (const auto* ns : {&*a, &*b}) {
    ASSERT_EQ(ns->exec({"sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"}), 0);
  }
  for (auto st : {node->ip({"link", "add", br, "type", "bridge"}),
                  node->ip({"link", "set", "tgt" + sfx + "va", "master", br, "up"}),
                  node->ip({"link", "set", "tgt" + sfx + "vb", "master", br, "up"}),
                  node->ip({"link", "set", br, "up"}),
                  a->ip({"addr", "add", "fd00:255:0:1::2/64", "dev", "eth0", "nodad"}),
                  a->ip({"link", "set", "eth0", "up"}),
                  b->ip({"addr", "add", "fd00:255:0:1::3/64", "dev", "eth0", "nodad"}),
                  b->ip({"link", "set", "eth0", "up"})}) {
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }
  ASSERT_EQ(node->exec({"sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=1"}), 0);

  FenceParams params;
  params.podInterfaces = {br};  // as the lab and the bridge plugin have it
  params.podCidrs = {"fd00:255::/48"};
  auto fence = HostFence::create(params);
  ASSERT_TRUE(fence.has_value()) << fence.error().message;
  ASSERT_TRUE(fence->install(node->netns()).has_value());

  auto server = tcpListen(b->netns(), "fd00:255:0:1::3", 8080);
  ASSERT_TRUE(server.has_value()) << server.error().message;
  auto c = tcpConnectStart(a->netns(), "fd00:255:0:1::3", 8080);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(waitConnected(c->get(), kHangMs), 0) << "pod-to-pod IPv6 across the bridge broken";
  EXPECT_TRUE(acceptWithin(server->get(), kHangMs).has_value());
}

}  // namespace
}  // namespace tollgate::agent
