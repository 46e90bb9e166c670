// judge(): which records account for a bypass probe, and that nothing else passes it.
#include "agent/bypass_probe.h"

#include <cerrno>
#include <set>

#include <gtest/gtest.h>

namespace tollgate::agent {
namespace {

using Stage = ProbeOutcome::Stage;

Probe probe(ProbeKind kind, uint16_t port = 33001) {
  Probe p;
  p.vector = "test";
  p.kind = kind;
  p.address = "192.0.2.1";
  p.port = port;
  return p;
}

ProbeOutcome sent() {
  ProbeOutcome o;
  o.sent = true;
  return o;
}

ProbeOutcome failedAt(Stage stage, int err, bool synchronous = true) {
  ProbeOutcome o;
  o.stage = stage;
  o.err = err;
  o.synchronous = synchronous;
  return o;
}

Counters counters(std::initializer_list<std::pair<std::string, uint64_t>> v) {
  Counters c;
  for (const auto& [name, packets] : v) c[name] = {packets, packets * 60};
  return c;
}

TEST(JudgeTest, NothingAccountedForIsALeak) {
  ProbeEvidence e;
  e.podBefore = e.podAfter = counters({{"drop_udp", 4}, {"dns", 2}});
  e.fenceBefore = e.fenceAfter = counters({{"fence_drop", 9}});
  auto v = judge(probe(ProbeKind::Udp), sent(), e);
  EXPECT_FALSE(v.passed);
  EXPECT_TRUE(v.how.starts_with("LEAK: sent, no answer")) << v.how;
  // A handshake that completed with a peer outside is a leak too.
  ProbeOutcome connected = sent();
  connected.connected = true;
  EXPECT_FALSE(judge(probe(ProbeKind::Tcp), connected, e).passed);
  // So is an answer from outside (a reset) with no record of the proxy.
  EXPECT_FALSE(judge(probe(ProbeKind::Tcp), failedAt(Stage::Send, ECONNREFUSED, false), e).passed);
  // And an ICMP error from beyond the pod: the packet left it.
  EXPECT_FALSE(judge(probe(ProbeKind::Tcp), failedAt(Stage::Send, ENETUNREACH, false), e).passed);
}

TEST(JudgeTest, TheProxysRecordPasses) {
  ProbeEvidence e;
  e.proxySaw = true;
  e.proxyDecision = "deny";
  e.proxyReason = "client_closed";
  ProbeOutcome connected = sent();
  connected.connected = true;
  auto v = judge(probe(ProbeKind::Tcp), connected, e);
  EXPECT_TRUE(v.passed);
  EXPECT_EQ(v.how, "redirected to the proxy (deny client_closed)");
}

TEST(JudgeTest, TheProxysOwnPortMustBeRefusedByIt) {
  Probe own = probe(ProbeKind::Tcp, 15001);
  own.address = "127.0.0.1";
  own.loopback = own.proxyMustRefuse = true;
  ProbeOutcome connected = sent();
  connected.connected = true;
  ProbeEvidence e;
  e.proxySaw = true;
  e.proxyDecision = "deny";
  e.proxyReason = "loop";
  EXPECT_EQ(judge(own, connected, e).how, "refused by the proxy itself (deny loop)");
  e.proxyDecision = "allow";
  EXPECT_FALSE(judge(own, connected, e).passed);
  // Connected and never recorded: the loopback exemption does not cover the proxy's port.
  EXPECT_FALSE(judge(own, connected, ProbeEvidence{}).passed);
  EXPECT_TRUE(judge(own, failedAt(Stage::Send, ECONNREFUSED, false), ProbeEvidence{}).passed);
}

TEST(JudgeTest, EpermWithTheCounterOfItsClass) {
  ProbeEvidence e;
  e.podBefore = counters({{"drop_udp", 4}});
  e.podAfter = counters({{"drop_udp", 5}});
  auto v = judge(probe(ProbeKind::Udp), failedAt(Stage::Send, EPERM), e);
  EXPECT_TRUE(v.passed);
  EXPECT_EQ(v.how, "dropped by the pod's rules (drop_udp +1)");
  // EPERM alone still means the kernel refused it in the pod, and says that nothing counted it.
  EXPECT_EQ(judge(probe(ProbeKind::Udp), failedAt(Stage::Send, EPERM), ProbeEvidence{}).how,
            "refused in the pod (EPERM), but no drop counter grew");
}

TEST(JudgeTest, ADroppedSynIsSeenInTheCounterOnly) {
  // DoT: the filter drops the SYN, connect() stays in progress.
  ProbeEvidence e;
  e.podBefore = counters({{"drop_dot", 0}, {"drop_tcp", 3}});
  e.podAfter = counters({{"drop_dot", 1}, {"drop_tcp", 3}});
  e.fenceBefore = counters({{"fence_drop", 1}});
  e.fenceAfter = counters({{"fence_drop", 2}});  // someone else's, in the same instant
  auto v = judge(probe(ProbeKind::Tcp, 853), sent(), e);
  EXPECT_EQ(v.how, "dropped by the pod's rules (drop_dot +1)");
}

TEST(JudgeTest, TheFencesDropsPassButNotWhatItLetThrough) {
  ProbeEvidence e;
  e.fenceBefore = counters({{"fence_drop", 1}, {"fence_gateway", 7}, {"fence_node_drop", 0}});
  e.fenceAfter = counters({{"fence_drop", 3}, {"fence_gateway", 7}, {"fence_node_drop", 1}});
  EXPECT_EQ(judge(probe(ProbeKind::RawIp), sent(), e).how,
            "dropped by the host fence (fence_drop +2, fence_node_drop +1)");
  ProbeEvidence through;
  through.fenceBefore = counters({{"fence_gateway", 7}, {"fence_dns", 1}});
  through.fenceAfter = counters({{"fence_gateway", 8}, {"fence_dns", 2}});
  EXPECT_FALSE(judge(probe(ProbeKind::Tcp), sent(), through).passed);
}

TEST(JudgeTest, DnsAndQuicAreTakenInThePod) {
  ProbeEvidence e;
  e.podBefore = counters({{"dns", 10}});
  e.podAfter = counters({{"dns", 11}});
  ProbeOutcome answered = sent();
  answered.answered = true;
  EXPECT_EQ(judge(probe(ProbeKind::Dns, 53), answered, e).how,
            "redirected to the DNS proxy, which answered");
  // An answer without the redirect's counter came from outside.
  EXPECT_FALSE(judge(probe(ProbeKind::Dns, 53), answered, ProbeEvidence{}).passed);
  ProbeEvidence quic;
  quic.podBefore = counters({{"drop_udp", 0}});
  quic.podAfter = counters({{"drop_udp", 1}});
  EXPECT_EQ(judge(probe(ProbeKind::Udp, 443), sent(), quic).how,
            "taken by the pod's read-only QUIC socket (drop_udp +1)");
}

TEST(JudgeTest, KernelRefusalsAndMissingRoutes) {
  auto raw = judge(probe(ProbeKind::RawIp), failedAt(Stage::Socket, EPERM), ProbeEvidence{});
  EXPECT_TRUE(raw.passed);
  EXPECT_EQ(raw.how,
            "refused by the kernel: socket(): Operation not permitted (this user lacks the "
            "capability)");
  EXPECT_TRUE(judge(probe(ProbeKind::Tcp), failedAt(Stage::Option, EPERM), ProbeEvidence{}).passed);
  auto noRoute = judge(probe(ProbeKind::Tcp), failedAt(Stage::Send, ENETUNREACH), ProbeEvidence{});
  EXPECT_TRUE(noRoute.passed);
  EXPECT_EQ(noRoute.how, "not sent: the pod has no route (send: Network is unreachable)");
  // A probe that could not take its identity proves nothing.
  EXPECT_FALSE(judge(probe(ProbeKind::Tcp), failedAt(Stage::Credentials, EPERM), ProbeEvidence{}).passed);
}

TEST(JudgeTest, LoopbackStaysInThePod) {
  Probe alias = probe(ProbeKind::Tcp);
  alias.address = "127.0.0.2";
  alias.loopback = true;
  EXPECT_EQ(judge(alias, failedAt(Stage::Send, ECONNREFUSED, false), ProbeEvidence{}).how,
            "stayed on the pod's loopback (after sending: Connection refused)");
}

TEST(VerifyPlanTest, EveryVectorOfTheIssueWithUniquePorts) {
  VerifyPlanParams params;
  params.target4 = "198.18.0.250";
  params.target6 = "fd00:198:18::250";
  params.mark = 0x7467;
  params.proxyPort = 15001;
  auto plan = verifyPlan(params);
  std::set<std::string> vectors;
  std::set<uint16_t> ports;
  for (const auto& p : plan) {
    vectors.insert(p.vector);
    EXPECT_TRUE(ports.insert(p.port).second) << "port " << p.port << " used twice";
    if (p.vector.starts_with("so-mark")) {
      EXPECT_EQ(p.mark, 0x7467u) << p.vector;
    }
    if (!p.loopback) {
      EXPECT_TRUE(p.address.find("198.18.0.250") != std::string::npos ||
                  p.address == "fd00:198:18::250")
          << p.vector << " goes to " << p.address;
    }
  }
  for (const char* v : {"tcp", "tcp-fastopen", "tcp6", "tcp-v4mapped", "udp", "udp6", "icmp",
                        "icmp6", "raw", "so-mark", "so-mark-udp", "so-mark-raw", "loopback-alias",
                        "proxy-port", "dns", "dot", "quic"}) {
    EXPECT_TRUE(vectors.count(v)) << v;
  }
  std::set<ProbeUser> users;
  for (const auto& p : plan) users.insert(p.user);
  EXPECT_EQ(users.size(), 4u);  // the pod's uid, 1337, root without and with NET_ADMIN
}

}  // namespace
}  // namespace tollgate::agent
