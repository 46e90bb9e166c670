// tollgate-agent with the built-in CA (--ca-cert/--ca-key): enrolled pods' service accounts get
// SVIDs, and a pod's flow on a gateway route reaches the gateway through an mTLS tunnel that
// presents the pod's identity. The gateway is the in-test HTTP/2 CONNECT server on the node
// netns' loopback.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "agent/agent.h"
#include "agent/netns.h"
#include "tests/netns/agent/agent_fixture.h"
#include "tests/netns/proxy/tunnel_gateway_fixture.h"

namespace tollgate::agent {
namespace {

namespace fs = std::filesystem;
using tollgate::testing::TestGateway;

using testing::sh;

class AgentIdentityTest : public testing::AgentNetnsTest {
 protected:
  AgentIdentityTest() : AgentNetnsTest("id") {}

  void SetUp() override {
    AgentNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::string in = "ip -n " + pod_ + " ";
    // A route for the app's connect(); the redirect takes the flow before it would leave.
    ASSERT_EQ(sh(in + "link add d0 type veth peer name d1"), 0);
    ASSERT_EQ(sh(in + "link set d0 up"), 0);
    ASSERT_EQ(sh(in + "link set d1 up"), 0);
    ASSERT_EQ(sh(in + fmt::format("addr add 10.253.{}.1/24 dev d0", r_)), 0);
    ASSERT_EQ(sh(in + "route add 198.18.0.0/24 dev d0"), 0);
    std::string cmd = std::string(TOLLGATE_SOURCE_DIR "/scripts/gen-ca ") + (dir_ / "ca").string() +
                      " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  void TearDown() override {
    agent_.reset();
    gateway_.reset();
    AgentNetnsTest::TearDown();
  }

  void writeConfig(uint16_t gatewayPort) {
    AgentNetnsTest::writeConfig(fmt::format(R"(
apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  gateways:
  - {{name: egress, address: 127.0.0.1, port: {}, default: true}}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: allowed
  namespace: default
spec:
  hosts: [allowed.test]
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  resolution: DNS
)",
                                            gatewayPort));
  }

  Status startAgent(bool withCa, std::string caCert = {}) {
    AgentOptions o = agentOptions();
    if (withCa) {
      o.caCert = caCert.empty() ? (dir_ / "ca" / "ca-cert.pem").string() : caCert;
      o.caKey = (dir_ / "ca" / "ca-key.pem").string();
      o.caChain = (dir_ / "ca" / "cert-chain.pem").string();
    }
    return AgentNetnsTest::startAgent(o);
  }

  enroll::EnrollReply send(enroll::EnrollRequest::Op op) {
    enroll::EnrollRequest req = request(op);
    req.set_service_account("client");
    return AgentNetnsTest::send(std::move(req), true);
  }

  // An HTTP request from the pod to 198.18.0.10:80; returns what came back until EOF.
  std::string podRequest(const std::string& req) {
    auto podNs = Netns::open(netnsPath(pod_));
    if (!podNs) return "no netns";
    auto fd = connectIn(*podNs, "198.18.0.10", 80);
    return fd ? exchange(*fd, req, true) : fd.error().str();
  }

  std::unique_ptr<TestGateway> gateway_;
};

TEST_F(AgentIdentityTest, EnrolledPodGetsAnSvidAndItsFlowsUseTheTunnel) {
  auto ca = identity::CertificateAuthority::fromFiles((dir_ / "ca" / "ca-cert.pem").string(),
                                            (dir_ / "ca" / "ca-key.pem").string(),
                                            (dir_ / "ca" / "cert-chain.pem").string());
  ASSERT_TRUE(ca) << ca.error().str();
  // The gateway listens on the node netns' loopback, where the agent makes its tunnels.
  inNode([&] { gateway_ = std::make_unique<TestGateway>(*ca, TestGateway::Options{}); });
  ASSERT_TRUE(gateway_->ok());
  writeConfig(gateway_->port());
  auto st = startAgent(true);
  ASSERT_TRUE(st) << st.error().str();
  ASSERT_NE(agent_->svids(), nullptr);
  ASSERT_NE(agent_->tunnels(), nullptr);

  auto reply = send(enroll::EnrollRequest::ADD);
  ASSERT_EQ(reply.code(), 0u) << reply.msg();
  EXPECT_EQ(agent_->svids()->serviceAccounts(), std::vector<std::string>{"default/client"});

  std::string req = "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n";
  EXPECT_EQ(podRequest(req), req);  // the test gateway echoes
  EXPECT_EQ(gateway_->peerIds(),
            std::vector<std::string>{"spiffe://cluster.local/ns/default/sa/client"});
  EXPECT_EQ(gateway_->authorities(), std::vector<std::string>{"allowed.test:80"});
  EXPECT_EQ(agent_->metrics().tunnelStreams.load(), 1u);

  reply = send(enroll::EnrollRequest::DEL);
  ASSERT_EQ(reply.code(), 0u) << reply.msg();
  EXPECT_TRUE(agent_->svids()->serviceAccounts().empty());
}

TEST_F(AgentIdentityTest, WithoutCaGatewayRoutesFailClosed) {
  writeConfig(15008);
  auto st = startAgent(false);
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(agent_->svids(), nullptr);
  EXPECT_EQ(agent_->tunnels(), nullptr);
  auto reply = send(enroll::EnrollRequest::ADD);
  ASSERT_EQ(reply.code(), 0u) << reply.msg();
  std::string resp = podRequest("GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
  EXPECT_TRUE(resp.starts_with("HTTP/1.1 503")) << resp;
  EXPECT_NE(resp.find("x-tollgate-denied: gateway_unavailable"), std::string::npos) << resp;
  send(enroll::EnrollRequest::DEL);
}

TEST_F(AgentIdentityTest, UnreadableCaIsFatalAndNamesTheFile) {
  writeConfig(15008);
  auto st = startAgent(true, (dir_ / "ca" / "missing.pem").string());
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().str().find("missing.pem"), std::string::npos) << st.error().str();
}

}  // namespace
}  // namespace tollgate::agent
