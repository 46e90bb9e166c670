// tollgate-agent in standalone mode inside a test "node" netns: enrollment over cni.sock,
// state persistence and re-adoption, config reloads, health and metrics endpoints.
#include "agent/agent.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "agent/netns.h"
#include "tests/netns/agent/agent_fixture.h"

namespace tollgate::agent {
namespace {

namespace fs = std::filesystem;

using testing::sh;

constexpr char kConfig[] = R"(
apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  clusterCIDRs:
    pods: [10.244.0.0/16]
    services: [10.96.0.0/12]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: allowed
  namespace: default
spec:
  hosts: [allowed.test]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  resolution: DNS
)";

class AgentTest : public testing::AgentNetnsTest {
 protected:
  AgentTest() : AgentNetnsTest("t") {}

  void SetUp() override {
    AgentNetnsTest::SetUp();
    if (!IsSkipped() && !HasFatalFailure()) writeConfig(kConfig);
  }

  // Starts an agent with the default metrics and health ports (the endpoints are under test).
  void startAgent() {
    AgentOptions o = agentOptions();
    o.metricsPort = AgentOptions{}.metricsPort;
    o.healthPort = AgentOptions{}.healthPort;
    auto st = AgentNetnsTest::startAgent(o);
    ASSERT_TRUE(st) << st.error().str();
  }

  enroll::EnrollReply send(enroll::EnrollRequest::Op op, bool withFd = true) {
    return AgentNetnsTest::send(request(op), withFd);
  }

  // GET path on 127.0.0.1:port inside the node netns; returns the whole response.
  std::string httpGet(uint16_t port, const std::string& path) {
    auto fd = connectIn(*nodeNs_, "127.0.0.1", port);
    return fd ? exchange(*fd, "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n", false) : "";
  }

  // Connects to 127.0.0.1:15001 inside the pod netns. Returns "refused" (no listener), "reset"
  // (the proxy refused the flow: a direct connection is a loop) or what else happened.
  std::string probeListener() {
    auto podNs = Netns::open(netnsPath(pod_));
    if (!podNs) return "no netns";
    auto fd = connectIn(*podNs, "127.0.0.1", 15001);
    if (!fd) return fd.error().str();
    char c;
    ssize_t n = ::recv(*fd, &c, 1, 0);
    std::string result = n < 0 && errno == ECONNRESET ? "reset" : "other";
    ::close(*fd);
    return result;
  }
};

TEST_F(AgentTest, AddInstallsRulesListenersAndStateThenDelRemovesThem) {
  startAgent();
  ASSERT_TRUE(agent_->ready());
  auto add = send(enroll::EnrollRequest::ADD);
  ASSERT_TRUE(add.ok()) << add.msg();
  EXPECT_TRUE(podTableExists());
  EXPECT_TRUE(fs::exists(dir_ / "run" / "pods" / "default_client.pb"));
  EXPECT_TRUE(fs::exists(dir_ / "run" / "netns" / "default_client"));
  EXPECT_TRUE(send(enroll::EnrollRequest::CHECK).ok());
  EXPECT_EQ(probeListener(), "reset");  // the listener is up inside the pod netns
  // Idempotent.
  EXPECT_TRUE(send(enroll::EnrollRequest::ADD).ok());
  EXPECT_EQ(agent_->pods().size(), 1u);

  auto del = send(enroll::EnrollRequest::DEL, false);
  ASSERT_TRUE(del.ok()) << del.msg();
  EXPECT_FALSE(podTableExists());
  EXPECT_FALSE(fs::exists(dir_ / "run" / "pods" / "default_client.pb"));
  EXPECT_FALSE(send(enroll::EnrollRequest::CHECK).ok());
  EXPECT_EQ(probeListener(), "refused");
  EXPECT_TRUE(send(enroll::EnrollRequest::DEL, false).ok());  // unknown pod: ok
}

TEST_F(AgentTest, CheckReportsDriftedRules) {
  startAgent();
  ASSERT_TRUE(send(enroll::EnrollRequest::ADD).ok());
  ASSERT_EQ(sh("ip netns exec " + pod_ + " nft delete table inet tollgate"), 0);
  auto check = send(enroll::EnrollRequest::CHECK);
  EXPECT_FALSE(check.ok());
  EXPECT_EQ(check.code(), kCodeCheckFailed);
  EXPECT_TRUE(send(enroll::EnrollRequest::DEL, false).ok());
}

TEST_F(AgentTest, RestartReadoptsEnrolledPods) {
  startAgent();
  ASSERT_TRUE(send(enroll::EnrollRequest::ADD).ok());
  agent_->stop();
  agent_.reset();
  EXPECT_TRUE(podTableExists());  // rules stay while the agent is down
  EXPECT_EQ(probeListener(), "refused");
  startAgent();
  EXPECT_TRUE(agent_->pods().enrolled("default", "client"));
  EXPECT_EQ(probeListener(), "reset");  // listeners re-created
  auto check = send(enroll::EnrollRequest::CHECK);
  EXPECT_TRUE(check.ok()) << check.msg();
  EXPECT_TRUE(send(enroll::EnrollRequest::DEL, false).ok());
}

TEST_F(AgentTest, AddFailsWhenNoConfigIsLoaded) {
  writeConfig("kind: ServiceEntry\napiVersion: networking.istio.io/v1beta1\nmetadata: {name: x}\n"
              "spec: {hosts: [a.test], ports: [{number: 99999, name: p, protocol: TCP}]}\n");
  startAgent();
  EXPECT_FALSE(agent_->ready());
  auto add = send(enroll::EnrollRequest::ADD);
  EXPECT_FALSE(add.ok());
  EXPECT_EQ(add.code(), kCodeNotReady);
  EXPECT_FALSE(podTableExists());
  EXPECT_NE(httpGet(15021, "/healthz/ready").find("503"), std::string::npos);
  EXPECT_NE(httpGet(15021, "/healthz/live").find("200 "), std::string::npos);  // waiting, not wedged
}

// An eBPF mode whose programs cannot be loaded (here: the pin dir is not on a bpffs) leaves the
// agent without a redirect: it says so (status "none", the load-failure counter) and refuses ADDs
// rather than enrolling a pod it cannot enforce.
TEST_F(AgentTest, AnEbpfModeThatCannotLoadSaysNoneAndRefusesAdds) {
  AgentOptions o = agentOptions();
  o.redirectMode = "ebpf";
  o.bpfPinDir = (dir_ / "not-bpffs").string();
  o.healthPort = AgentOptions{}.healthPort;
  (void)AgentNetnsTest::startAgent(o);
  EXPECT_EQ(agent_->redirectMode(), "none");
  EXPECT_EQ(agent_->metrics().redirectLoadFailures.load(), 1u);
  // Not ready either: a probe that said ready here would let the kubelet start pods the agent
  // then refuses (and the lab's scenarios run checks against an agent with no redirect).
  EXPECT_FALSE(agent_->ready());
  std::string ready = httpGet(15021, "/healthz/ready");
  EXPECT_NE(ready.find("503"), std::string::npos) << ready;
  EXPECT_NE(ready.find("no redirect could be loaded"), std::string::npos) << ready;
  auto add = send(enroll::EnrollRequest::ADD);
  EXPECT_FALSE(add.ok()) << add.msg();
  EXPECT_FALSE(podTableExists());
}

TEST_F(AgentTest, BadReloadKeepsTheSnapshotAndIsCounted) {
  startAgent();
  auto before = agent_->snapshot();
  ASSERT_NE(before, nullptr);
  writeConfig("kind: ServiceEntry\napiVersion: networking.istio.io/v1beta1\nmetadata: {name: x}\n"
              "spec: {hosts: [a.test], ports: [{number: 99999, name: p, protocol: TCP}]}\n");
  EXPECT_FALSE(agent_->reload());
  EXPECT_EQ(agent_->snapshot(), before);
  EXPECT_GE(agent_->metrics().reloadsFailed.load(), 1u);
  writeConfig(kConfig);
  EXPECT_TRUE(agent_->reload());
  EXPECT_NE(agent_->snapshot(), before);
}

TEST_F(AgentTest, WatcherReloadsWhenAFileChanges) {
  startAgent();
  auto before = agent_->snapshot();
  ASSERT_NE(before, nullptr);
  std::ofstream(dir_ / "config" / "extra.yaml") << R"(
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: extra
  namespace: default
spec:
  hosts: [extra.test]
  ports:
  - {number: 443, name: tls, protocol: TLS}
  resolution: DNS
)";
  // No hook to await: poll the snapshot pointer (inotify should make this ~100 ms).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (agent_->snapshot() == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto after = agent_->snapshot();
  ASSERT_NE(after, before);
  EXPECT_EQ(after->config().serviceEntries.size(), 2u);
}

TEST_F(AgentTest, HealthAndMetricsEndpoints) {
  startAgent();
  std::string ready = httpGet(15021, "/healthz/ready");
  EXPECT_TRUE(ready.starts_with("HTTP/1.1 200")) << ready;
  std::string metrics = httpGet(15020, "/metrics");
  EXPECT_TRUE(metrics.starts_with("HTTP/1.1 200")) << metrics;
  EXPECT_NE(metrics.find("tollgate_config_reloads_ok_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tollgate_fence_packets_total{counter=\"fence_drop\"}"), std::string::npos)
      << metrics;
  EXPECT_TRUE(httpGet(15020, "/nope").starts_with("HTTP/1.1 404"));
}

}  // namespace
}  // namespace tollgate::agent
