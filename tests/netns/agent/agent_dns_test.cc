// The agent creates one DNS proxy and one QUIC telemetry socket per enrolled pod: a pod's DNS
// query to ANY address is answered by the agent (forwarded from the node netns to a stub resolver
// there), strict mode NXDOMAINs names outside the registry without asking upstream, answers that
// point at link-local addresses are stripped, QUIC to udp/443 is counted, the counts reach the
// metrics collector, and after DEL the pod's DNS/QUIC sockets are gone.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "proxy/dns_message.h"
#include "tests/common/command.h"
#include "tests/netns/agent/agent_fixture.h"

namespace tollgate::agent {
namespace {

using testing::sh;

// Output of a shell command (stdout only).
std::string capture(const std::string& cmd) { return tests::runCommand(cmd + " 2>/dev/null").output; }

// A UDP DNS server on 127.0.0.1 (port 0) of the netns it is created in, answering A queries from
// a table (TTL 60) and NXDOMAIN otherwise; counts the queries per name it receives.
class StubResolver {
 public:
  StubResolver(int fd, std::map<std::string, std::vector<std::string>> a)
      : fd_(fd), a_(std::move(a)) {
    sockaddr_in sin{};
    socklen_t len = sizeof sin;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
    ::pipe(stop_);
    thread_ = std::thread([this] { loop(); });
  }
  ~StubResolver() {
    ::write(stop_[1], "x", 1);
    thread_.join();
    ::close(fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  // The socket, bound in the calling thread's netns.
  static int makeSocket() {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s >= 0 && ::bind(s, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      ::close(s);
      return -1;
    }
    return s;
  }
  uint16_t port() const { return port_; }
  int queries(const std::string& name) {
    std::lock_guard l(mu_);
    return seen_[name];
  }

 private:
  void loop() {
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents) return;
      uint8_t buf[4096];
      sockaddr_storage from{};
      socklen_t fl = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n <= 0) continue;
      auto m = proxy::parseDnsMessage({buf, static_cast<size_t>(n)});
      if (!m || m->questions.empty()) continue;
      const std::string name = m->questions[0].name;
      {
        std::lock_guard l(mu_);
        seen_[name]++;
      }
      proxy::DnsMessage r = *m;
      r.header.flags |= proxy::DnsHeader::kQr | proxy::DnsHeader::kRa;
      r.additional.clear();
      auto it = a_.find(name);
      if (it == a_.end()) {
        r.header.setRcode(proxy::DnsRcode::NxDomain);
      } else if (m->questions[0].qtype == proxy::dnstype::kA) {
        for (const auto& ip : it->second) {
          proxy::DnsRecord rec;
          rec.name = name;
          rec.originalName = m->questions[0].originalName;
          rec.type = proxy::dnstype::kA;
          rec.ttl = 60;
          in_addr a{};
          ::inet_pton(AF_INET, ip.c_str(), &a);
          rec.rdata.assign(reinterpret_cast<uint8_t*>(&a), reinterpret_cast<uint8_t*>(&a) + 4);
          r.answers.push_back(std::move(rec));
        }
      }
      if (auto w = proxy::serializeDnsMessage(r)) {
        ::sendto(fd_, w->data(), w->size(), 0, reinterpret_cast<sockaddr*>(&from), fl);
      }
    }
  }

  int fd_;
  std::map<std::string, std::vector<std::string>> a_;
  uint16_t port_ = 0;
  int stop_[2] = {-1, -1};
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, int> seen_;
};

constexpr char kAnyResolver[] = "192.0.2.53";  // not a resolver: nothing listens there

struct Answer {
  int rcode = -1;  // -1: no answer (timeout or error)
  std::vector<std::string> addresses;
};

class AgentDnsTest : public testing::AgentNetnsTest {
 protected:
  AgentDnsTest() : AgentNetnsTest("d") {}

  void SetUp() override {
    AgentNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // A veth pair inside the pod netns and a default route through it: any address is routable
    // and what is sent there vanishes, so an answer can only come from the agent's proxy.
    std::string in = "ip -n " + pod_ + " ";
    sh(fmt::format("ip netns exec {} sysctl -qw net.ipv6.conf.all.disable_ipv6=1", pod_));
    ASSERT_EQ(sh(in + "link add tgdpodsink type veth peer name tgdpodout"), 0);
    ASSERT_EQ(sh(in + fmt::format("addr add 10.244.{}.2/24 dev tgdpodout", r_)), 0);
    ASSERT_EQ(sh(in + "link set tgdpodsink up"), 0);
    ASSERT_EQ(sh(in + "link set tgdpodout up"), 0);
    ASSERT_EQ(sh(in + "route add default dev tgdpodout"), 0);
    // An address of the node (the agent's netns): answers pointing at it must be stripped.
    ASSERT_EQ(sh("ip -n " + node_ + " addr add 198.51.100.200/32 dev lo"), 0);
    inNode([this] {
      int fd = StubResolver::makeSocket();
      ASSERT_GE(fd, 0);
      stub_ = std::make_unique<StubResolver>(
          fd, std::map<std::string, std::vector<std::string>>{
                  {"allowed.test", {"198.51.100.7"}},
                  {"blocked.test", {"198.51.100.8"}},
                  {"meta.allowed.test", {"169.254.169.254", "198.51.100.9"}},
                  {"node.allowed.test", {"198.51.100.200", "198.51.100.10"}},
              });
    });
  }

  void TearDown() override {
    AgentNetnsTest::TearDown();
    stub_.reset();
  }

  void writeMesh(const std::string& dnsMode) {
    writeConfig(fmt::format(R"(
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
  dns:
{}    upstreams: ["127.0.0.1:{}"]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: allowed
  namespace: default
spec:
  hosts: [allowed.test, meta.allowed.test, node.allowed.test]
  ports:
  - {{number: 443, name: tls, protocol: TLS}}
  resolution: DNS
)",
                            dnsMode.empty() ? "" : "    mode: " + dnsMode + "\n", stub_->port()));
  }

  void startAndAdd() {
    auto st = startAgent(agentOptions());
    ASSERT_TRUE(st) << st.error().str();
    auto add = send(request(enroll::EnrollRequest::ADD), true);
    ASSERT_TRUE(add.ok()) << add.msg();
  }

  // One A query for `name` from the pod to ip:53 over UDP or TCP.
  Answer query(const std::string& name, bool tcp = false, const char* ip = kAnyResolver) {
    Answer a;
    auto podNs = Netns::open(netnsPath(pod_));
    if (!podNs) return a;
    auto fd = podNs->runFd([tcp]() -> Result<int> {
      int s = ::socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
      if (s < 0) return failErrno("socket");
      return s;
    });
    if (!fd) return a;
    timeval tv{3, 0};
    ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(53);
    ::inet_pton(AF_INET, ip, &sin.sin_addr);
    auto q = proxy::buildDnsQuery(static_cast<uint16_t>(0x1234 + queries_++), name,
                                  proxy::dnstype::kA);
    std::vector<uint8_t> resp(65535);
    ssize_t n = -1;
    if (::connect(*fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0 && q) {
      if (tcp) {
        auto framed = proxy::frameDnsTcp(*q);
        if (framed && ::send(*fd, framed->data(), framed->size(), MSG_NOSIGNAL) > 0) {
          std::vector<uint8_t> stream;
          uint8_t buf[4096];
          ssize_t r;
          while ((r = ::recv(*fd, buf, sizeof buf, 0)) > 0) {
            stream.insert(stream.end(), buf, buf + r);
            auto f = proxy::nextDnsTcpFrame(stream);
            if (f.consumed > 0) {
              resp.assign(f.message.begin(), f.message.end());
              n = static_cast<ssize_t>(resp.size());
              break;
            }
          }
        }
      } else if (::send(*fd, q->data(), q->size(), 0) > 0) {
        n = ::recv(*fd, resp.data(), resp.size(), 0);
      }
    }
    ::close(*fd);
    if (n <= 0) return a;
    auto m = proxy::parseDnsMessage({resp.data(), static_cast<size_t>(n)});
    if (!m) return a;
    a.rcode = m->header.rcode();
    for (const auto& r : m->answers) {
      if (auto ip = r.address()) a.addresses.push_back(ip->str());
    }
    return a;
  }

  // A QUIC long-header datagram from the pod to ip:443 (sendto errors are ignored: the rules
  // decide what happens to it).
  void sendQuic(const char* ip) {
    auto podNs = Netns::open(netnsPath(pod_));
    ASSERT_TRUE(podNs);
    auto fd = podNs->runFd([]() -> Result<int> {
      int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (s < 0) return failErrno("socket");
      return s;
    });
    ASSERT_TRUE(fd);
    std::vector<uint8_t> d = {0xc3, 0x00, 0x00, 0x00, 0x01, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x00};
    d.resize(1200, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(443);
    ::inet_pton(AF_INET, ip, &sin.sin_addr);
    ::sendto(*fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    ::close(*fd);
  }

  // The value of `series{pod="default/client"}` in the agent's Prometheus text; -1 when absent.
  double metric(const std::string& series) {
    std::string text = agent_->metrics().render();
    std::regex re(series + R"(\{pod="default/client"\} ([0-9.e+]+))");
    std::smatch m;
    if (!std::regex_search(text, m, re)) return -1;
    return std::stod(m[1]);
  }

  // Waits (up to 3 s) until `series` reaches `want`; returns the last value seen.
  double awaitMetric(const std::string& series, double want) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    double v = metric(series);
    while (v < want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      v = metric(series);
    }
    return v;
  }

  // Sockets bound to `port` (UDP and TCP listeners) inside the pod netns, as `ss` lists them.
  std::string podSockets(uint16_t port) {
    return capture(fmt::format("ip netns exec {} ss -Hnua 'sport = :{}'", pod_, port)) +
           capture(fmt::format("ip netns exec {} ss -Hlnt 'sport = :{}'", pod_, port));
  }

  std::unique_ptr<StubResolver> stub_;
  int queries_ = 0;
};

TEST_F(AgentDnsTest, PodQueryToAnyAddressIsAnsweredByTheAgentsProxy) {
  writeMesh("");  // no dns.mode: strict, because the mode is REGISTRY_ONLY
  startAndAdd();
  // The pod's rules are the DNS-proxy variant.
  std::string rules = capture("ip netns exec " + pod_ + " nft list table inet tollgate");
  EXPECT_NE(rules.find("redirect to :15053"), std::string::npos) << rules;
  EXPECT_NE(rules.find("redirect to :15443"), std::string::npos) << rules;

  Answer a = query("allowed.test");
  EXPECT_EQ(a.rcode, 0);
  EXPECT_EQ(a.addresses, std::vector<std::string>{"198.51.100.7"});
  EXPECT_EQ(stub_->queries("allowed.test"), 1);  // forwarded from the node netns

  // Over TCP too (dig +tcp), to another address: the cache answers, upstream is not asked again.
  Answer t = query("allowed.test", true, "203.0.113.9");
  EXPECT_EQ(t.rcode, 0);
  EXPECT_EQ(t.addresses, std::vector<std::string>{"198.51.100.7"});
  EXPECT_EQ(stub_->queries("allowed.test"), 1);

  // The pod's resolver would be this one; the answer comes from the proxy all the same.
  EXPECT_EQ(query("allowed.test", false, "127.0.0.53").rcode, 0);
}

TEST_F(AgentDnsTest, StrictModeNxdomainsUnlistedNamesWithoutAskingUpstream) {
  writeMesh("");
  startAndAdd();
  Answer b = query("blocked.test");
  EXPECT_EQ(b.rcode, 3);  // NXDOMAIN
  EXPECT_TRUE(b.addresses.empty());
  Answer x = query("x7f3a.exfil.attacker.test");
  EXPECT_EQ(x.rcode, 3);
  EXPECT_EQ(stub_->queries("blocked.test"), 0);
  EXPECT_EQ(stub_->queries("x7f3a.exfil.attacker.test"), 0);

  // The link-local answer is removed, the other one kept.
  Answer m = query("meta.allowed.test");
  EXPECT_EQ(m.rcode, 0);
  EXPECT_EQ(m.addresses, std::vector<std::string>{"198.51.100.9"});
  // So is the one pointing at the node's own address (read from the agent's netns).
  Answer n = query("node.allowed.test");
  EXPECT_EQ(n.rcode, 0);
  EXPECT_EQ(n.addresses, std::vector<std::string>{"198.51.100.10"});

  sendQuic("198.51.100.7");

  EXPECT_EQ(awaitMetric("tollgate_dns_queries_total", 4), 4);
  EXPECT_EQ(metric("tollgate_dns_blocked_total"), 2);
  EXPECT_EQ(metric("tollgate_dns_forwarded_total"), 2);
  EXPECT_EQ(metric("tollgate_dns_stripped_total"), 2);
  EXPECT_EQ(metric("tollgate_dns_servfail_total"), 0);
  EXPECT_EQ(metric("tollgate_dns_malformed_total"), 0);
  EXPECT_EQ(awaitMetric("tollgate_quic_attempts_total", 1), 1);
  // name_addr_mismatch has its own (node-wide) series.
  EXPECT_NE(agent_->metrics().render().find("tollgate_name_addr_mismatch_total"),
            std::string::npos);
}

TEST_F(AgentDnsTest, PassthroughModeForwardsEveryName) {
  writeMesh("passthrough");
  startAndAdd();
  Answer b = query("blocked.test");
  EXPECT_EQ(b.rcode, 0);
  EXPECT_EQ(b.addresses, std::vector<std::string>{"198.51.100.8"});
  EXPECT_EQ(stub_->queries("blocked.test"), 1);
  EXPECT_EQ(awaitMetric("tollgate_dns_blocked_total", 0), 0);
}

TEST_F(AgentDnsTest, FenceKeepsPodsAwayFromTheResolvers) {
  writeMesh("");
  startAndAdd();
  // The agent reaches the resolver (above tests); pods' DNS is never allowed through the fence.
  std::string fence = capture("ip netns exec " + node_ + " nft list table inet tollgate_fence");
  ASSERT_NE(fence.find("chain pod_forward"), std::string::npos) << fence;
  EXPECT_EQ(fence.find("counter name \"fence_dns\" accept"), std::string::npos) << fence;
  EXPECT_EQ(query("allowed.test").rcode, 0);
}

TEST_F(AgentDnsTest, DelClosesTheSocketsAndRestartRecreatesThem) {
  writeMesh("");
  startAndAdd();
  ASSERT_EQ(query("allowed.test").rcode, 0);
  EXPECT_NE(podSockets(15053), "");
  EXPECT_NE(podSockets(15443), "");

  // Agent restart: the pod is re-adopted with a new DNS proxy (the cache is gone with the old
  // agent, so upstream is asked again).
  agent_->stop();
  agent_.reset();
  auto st = startAgent(agentOptions());
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(query("allowed.test").rcode, 0);
  EXPECT_EQ(stub_->queries("allowed.test"), 2);
  EXPECT_TRUE(send(request(enroll::EnrollRequest::CHECK), true).ok());

  auto del = send(request(enroll::EnrollRequest::DEL), false);
  ASSERT_TRUE(del.ok()) << del.msg();
  // The sockets close on their strands: wait for them to disappear.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((podSockets(15053) != "" || podSockets(15443) != "") &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(podSockets(15053), "");
  EXPECT_EQ(podSockets(15443), "");
  EXPECT_EQ(query("allowed.test", false, "127.0.0.1").rcode, -1);  // nothing answers any more
  EXPECT_EQ(metric("tollgate_dns_queries_total"), -1);  // the pod's series are gone
}

}  // namespace
}  // namespace tollgate::agent
