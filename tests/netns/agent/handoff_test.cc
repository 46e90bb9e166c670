// Listener handoff between two agent processes (two Agent instances here, in one test process,
// each with its own io threads, sharing a throwaway node netns and one pod netns): the new agent
// takes every listening socket over through <run-dir>/handoff.sock, connections opened through
// the old one keep relaying while it drains, new ones are served by the new one, the old one
// finishes after the drain, and a handoff that fails midway leaves the old agent serving.
#include "agent/handoff.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "agent/agent.h"
#include "agent/netns.h"
#include "proxy/socket_util.h"
#include "tests/netns/agent/agent_fixture.h"

namespace tollgate::agent {
namespace {

using namespace std::chrono_literals;
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
)";

constexpr uint16_t kEchoPort = 7007;

// A TCP echo server inside a netns (the socket lives there; the threads do not need to).
class EchoServer {
 public:
  explicit EchoServer(const Netns& ns, const std::string& ip) {
    auto fd = ns.runFd([ip]() {
      return proxy::makeListener(proxy::Endpoint{*policy::IpAddress::parse(ip), kEchoPort});
    });
    if (!fd) {
      ADD_FAILURE() << fd.error().str();
      return;
    }
    fd_ = *fd;
    int flags = 0;  // blocking accept in the server thread
    ::fcntl(fd_, F_SETFL, flags);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        conns_.emplace_back([c] {
          char buf[4096];
          ssize_t n;
          while ((n = ::recv(c, buf, sizeof buf, 0)) > 0) ::send(c, buf, n, MSG_NOSIGNAL);
          ::close(c);
        });
      }
    });
  }
  ~EchoServer() {
    stop_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    for (auto& t : conns_) t.join();
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

class HandoffTest : public testing::AgentNetnsTest {
 protected:
  HandoffTest() : AgentNetnsTest("h") {}

  void SetUp() override {
    AgentNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    writeConfig(kConfig);
    // pod 10.244.<r>.1 --veth-- 10.244.<r>.2 srv: an in-cluster destination the proxy relays to
    // from the pod netns.
    srv_ = fmt::format("tgh-{}-srv", r_);
    sh("ip netns del " + srv_);
    ASSERT_EQ(sh("ip netns add " + srv_), 0);
    std::string va = fmt::format("tgh{}a", r_), vb = fmt::format("tgh{}b", r_);
    ASSERT_EQ(sh(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", va, pod_,
                             vb, srv_)),
              0);
    ASSERT_EQ(sh(fmt::format("ip -n {} addr add 10.244.{}.1/30 dev {}", pod_, r_, va)), 0);
    ASSERT_EQ(sh(fmt::format("ip -n {} addr add 10.244.{}.2/30 dev {}", srv_, r_, vb)), 0);
    for (const auto& [ns, dev] : {std::pair{pod_, va}, std::pair{srv_, vb}}) {
      ASSERT_EQ(sh(fmt::format("ip -n {} link set {} up", ns, dev)), 0);
      ASSERT_EQ(sh(fmt::format("ip -n {} link set lo up", ns)), 0);
    }
    auto srvNs = Netns::open(netnsPath(srv_));
    ASSERT_TRUE(srvNs) << srvNs.error().str();
    echo_ = std::make_unique<EchoServer>(*srvNs, fmt::format("10.244.{}.2", r_));
    auto podNs = Netns::open(netnsPath(pod_));
    ASSERT_TRUE(podNs) << podNs.error().str();
    podNs_.emplace(std::move(*podNs));
  }

  void TearDown() override {
    // Agents first: their relays hold connections to the echo server open.
    if (old_) old_->stop();
    old_.reset();
    agent_.reset();
    echo_.reset();
    if (!srv_.empty()) sh("ip netns del " + srv_);
    AgentNetnsTest::TearDown();
  }

  AgentOptions options(std::chrono::milliseconds drain) const {
    AgentOptions o = agentOptions();
    o.metricsPort = AgentOptions{}.metricsPort;  // the node netns is the test's own
    o.healthPort = AgentOptions{}.healthPort;
    o.drainTime = drain;
    o.reconcileInterval = 0ms;
    return o;
  }

  // Starts agent A (agent_) and enrolls the pod through it.
  void startOldAgentWithPod(std::chrono::milliseconds drain) {
    auto st = startAgent(options(drain));
    ASSERT_TRUE(st) << st.error().str();
    auto reply = send(request(enroll::EnrollRequest::ADD), true);
    ASSERT_TRUE(reply.ok()) << reply.msg();
  }

  // Starts agent B in the node netns; agent_ becomes B and old_ the agent it took over from.
  Status startNewAgent(std::chrono::milliseconds drain) {
    auto b = std::make_unique<Agent>(options(drain));
    Status st = fail("not run");
    inNode([&] { st = b->start(); });
    if (!st) {
      b->stop();
      return st;
    }
    old_ = std::move(agent_);
    agent_ = std::move(b);
    return {};
  }

  // A connection from the pod to the echo server: redirected to the pod's capture listener,
  // relayed in-cluster by whichever agent accepted it. -1 on failure.
  int connectThroughProxy() {
    auto fd = podNs_->runFd([]() -> Result<int> {
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (s < 0) return failErrno("socket");
      return s;
    });
    if (!fd) return -1;
    timeval tv{5, 0};
    ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(kEchoPort);
    sin.sin_addr.s_addr = htonl((10u << 24) | (244u << 16) | (static_cast<uint32_t>(r_) << 8) | 2);
    if (::connect(*fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      ::close(*fd);
      return -1;
    }
    return *fd;
  }

  // Sends `msg` and reads the echo; "" when the connection failed.
  static std::string roundTrip(int fd, const std::string& msg) {
    if (::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
      return "";
    }
    std::string got;
    char buf[256];
    while (got.size() < msg.size()) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return "";
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

  // GET path on 127.0.0.1:port inside the node netns.
  std::string httpGet(uint16_t port, const std::string& path) {
    auto fd = nodeNs_->runFd([]() -> Result<int> {
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (s < 0) return failErrno("socket");
      return s;
    });
    if (!fd) return "";
    timeval tv{5, 0};
    ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (::connect(*fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0) {
      std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
      ::send(*fd, req.data(), req.size(), MSG_NOSIGNAL);
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(*fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    }
    ::close(*fd);
    return out;
  }

  std::string srv_;
  std::optional<Netns> podNs_;
  std::unique_ptr<EchoServer> echo_;
  std::unique_ptr<Agent> old_;
};

TEST_F(HandoffTest, OpenConnectionKeepsRelayingThroughTheOldAgentNewOnesGoToTheNewOne) {
  startOldAgentWithPod(20s);
  int before = connectThroughProxy();
  ASSERT_GE(before, 0);
  EXPECT_EQ(roundTrip(before, "before"), "before");
  EXPECT_EQ(agent_->pods().activeConnections(), 1);

  // B binds nothing the old agent holds: 15001 in the pod netns, cni.sock, 15020/15021 would all
  // fail with EADDRINUSE / replace A's socket if they were not taken over.
  auto st = startNewAgent(20s);
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(agent_->handoffCounters().received.load(), 1u);
  // 15001, DNS udp+tcp 15053, QUIC 15443 (v4 and v6), cni.sock, metrics, health: 11.
  EXPECT_GE(agent_->handoffCounters().socketsReceived.load(), 5u);
  EXPECT_EQ(old_->handoffCounters().sent.load(), 1u);
  EXPECT_TRUE(agent_->pods().enrolled("default", "client"));
  // Every socket A had was taken over, none created afresh beside it.
  EXPECT_EQ(agent_->sockets().inheritedTaken(), agent_->handoffCounters().socketsReceived.load());
  EXPECT_EQ(agent_->sockets().inheritedCount(), 0u);

  // The connection opened through A still relays; A keeps it while it drains.
  EXPECT_EQ(roundTrip(before, "across the handoff"), "across the handoff");
  EXPECT_EQ(old_->pods().activeConnections(), 1);
  EXPECT_FALSE(old_->retired());

  // New connections are B's.
  int after = connectThroughProxy();
  ASSERT_GE(after, 0);
  EXPECT_EQ(roundTrip(after, "new"), "new");
  EXPECT_EQ(agent_->pods().activeConnections(), 1);
  EXPECT_EQ(old_->pods().activeConnections(), 1);
  // Enrollment, metrics and health are B's too.
  auto check = send(request(enroll::EnrollRequest::CHECK), false);
  EXPECT_TRUE(check.ok()) << check.msg();
  EXPECT_NE(httpGet(AgentOptions{}.metricsPort, "/metrics")
                .find("tollgate_handoff_received_total 1"),
            std::string::npos);
  EXPECT_NE(httpGet(AgentOptions{}.healthPort, "/healthz/ready").find("200 OK"),
            std::string::npos);

  // The last connection through A ends: A's drain is over long before its 20 s drain time.
  ::close(before);
  EXPECT_TRUE(old_->waitRetired(5s));
  EXPECT_EQ(old_->handoffCounters().drained.load(), 1u);
  EXPECT_EQ(old_->handoffCounters().cut.load(), 0u);
  old_->stop();
  old_.reset();

  EXPECT_EQ(roundTrip(after, "still"), "still");
  ::close(after);
  int third = connectThroughProxy();
  ASSERT_GE(third, 0);
  EXPECT_EQ(roundTrip(third, "third"), "third");
  ::close(third);
  EXPECT_TRUE(send(request(enroll::EnrollRequest::DEL), false).ok());
}

TEST_F(HandoffTest, DrainTimeClosesConnectionsStillOpen) {
  startOldAgentWithPod(300ms);
  int before = connectThroughProxy();
  ASSERT_GE(before, 0);
  EXPECT_EQ(roundTrip(before, "x"), "x");
  auto st = startNewAgent(300ms);
  ASSERT_TRUE(st) << st.error().str();
  ASSERT_TRUE(old_->waitRetired(5s));
  EXPECT_EQ(old_->handoffCounters().cut.load(), 1u);
  old_->stop();  // what run() does once retired, then the process exits
  old_.reset();
  EXPECT_EQ(roundTrip(before, "y"), "");
  ::close(before);
  // The pod is served by B.
  int fresh = connectThroughProxy();
  ASSERT_GE(fresh, 0);
  EXPECT_EQ(roundTrip(fresh, "z"), "z");
  ::close(fresh);
}

TEST_F(HandoffTest, FailedHandoffLeavesTheOldAgentServing) {
  startOldAgentWithPod(20s);
  {
    // A new agent that receives the sockets and dies before "done".
    proxy::SocketRegistry registry;
    HandoffCounters counters;
    auto client = HandoffClient::takeover(agent_->handoffPath(), registry, counters);
    ASSERT_TRUE(client) << client.error().str();
    ASSERT_NE(*client, nullptr);
    EXPECT_GE(registry.inheritedCount(), 5u);
  }  // connection closed without "done": abort
  // The old agent noticed, counted it and resumed enrollment (CHECK is answered).
  auto check = send(request(enroll::EnrollRequest::CHECK), false);
  EXPECT_TRUE(check.ok()) << check.msg();
  EXPECT_EQ(agent_->handoffCounters().failed.load(), 1u);
  EXPECT_EQ(agent_->handoffCounters().sent.load(), 0u);
  EXPECT_FALSE(agent_->retired());
  int fd = connectThroughProxy();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(roundTrip(fd, "served by A"), "served by A");
  EXPECT_EQ(agent_->pods().activeConnections(), 1);
  ::close(fd);
  EXPECT_TRUE(podTableExists());

  // And a real handoff afterwards still works.
  auto st = startNewAgent(20s);
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_TRUE(old_->waitRetired(5s));
  int again = connectThroughProxy();
  ASSERT_GE(again, 0);
  EXPECT_EQ(roundTrip(again, "B"), "B");
  ::close(again);
}

TEST_F(HandoffTest, NoRunningAgentIsAFreshStartAndAStaleSocketFileIsIgnored) {
  // A stopped agent leaves handoff.sock behind with nobody listening on it.
  startOldAgentWithPod(20s);
  agent_->stop();
  agent_.reset();
  ASSERT_TRUE(std::filesystem::exists(dir_ / "run" / "handoff.sock"));
  auto st = startAgent(options(20s));
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(agent_->handoffCounters().received.load(), 0u);
  EXPECT_TRUE(agent_->pods().enrolled("default", "client"));  // re-adopted, new sockets
  int fd = connectThroughProxy();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(roundTrip(fd, "readopted"), "readopted");
  ::close(fd);
}

}  // namespace
}  // namespace tollgate::agent
