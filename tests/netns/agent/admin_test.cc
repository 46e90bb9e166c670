// tollgatectl against a running agent: the admin socket in the agent's run dir, the commands
// driven exactly as the binary runs them (runCli), and the binary itself run as another uid to
// show the socket is root only.
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include <sstream>

#include "agent_fixture.h"
#include "cli/commands.h"
#include "proto/admin.pb.h"
#include "tests/common/command.h"

namespace tollgate::agent::testing {
namespace {

constexpr char kConfig[] = R"(
apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata: {name: mesh}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  trustDomain: lab.test
)";

struct CtlRun {
  int rc;
  std::string out, err;
};

class AdminTest : public AgentNetnsTest {
 protected:
  AdminTest() : AgentNetnsTest("adm") {}

  void SetUp() override {
    AgentNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    writeConfig(kConfig);
    auto o = agentOptions();
    o.reconcileInterval = std::chrono::milliseconds(0);  // drift stays until the test repairs it
    ASSERT_TRUE(startAgent(o));
    auto reply = send(request(enroll::EnrollRequest::ADD), true);
    ASSERT_TRUE(reply.ok()) << reply.msg();
  }

  CtlRun ctl(std::vector<std::string> args) {
    args.push_back("--run-dir=" + (dir_ / "run").string());
    std::ostringstream out, err;
    int rc = cli::runCli(args, out, err);
    return {rc, out.str(), err.str()};
  }

  std::string adminSock() const { return (dir_ / "run" / "admin.sock").string(); }
};

TEST_F(AdminTest, StatusAsJsonDescribesTheAgent) {
  CtlRun r = ctl({"status", "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  admin::AgentStatus s;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &s).ok()) << r.out;
  EXPECT_FALSE(s.version().empty());
  EXPECT_EQ(s.redirect_mode(), "nftables");
  EXPECT_EQ(s.config_source(), "files:" + (dir_ / "config").string());
  EXPECT_GE(s.config_generation(), 1u);
  EXPECT_GT(s.config_loaded_unix(), 0);
  EXPECT_EQ(s.enrolled_pods(), 1u);
  EXPECT_FALSE(s.identity_enabled());
  CtlRun table = ctl({"status"});
  ASSERT_EQ(table.rc, 0) << table.err;
  EXPECT_NE(table.out.find("enrolled pods       1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("off (no --ca-cert)"), std::string::npos) << table.out;
}

TEST_F(AdminTest, PodsAndRulesShowDriftUntilRepaired) {
  CtlRun ok = ctl({"pods"});
  ASSERT_EQ(ok.rc, 0) << ok.err;
  EXPECT_NE(ok.out.find("default    client"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("spiffe://lab.test/ns/default/sa/default"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("  ok  "), std::string::npos) << ok.out;
  CtlRun rules = ctl({"rules", "default/client"});
  ASSERT_EQ(rules.rc, 0) << rules.err;
  EXPECT_NE(rules.out.find("rules OK"), std::string::npos) << rules.out;
  EXPECT_NE(rules.out.find("table inet tollgate"), std::string::npos) << rules.out;

  // What scenario 29 does: the pod's table is deleted behind the agent's back.
  ASSERT_EQ(sh("ip netns exec " + pod_ + " nft delete table inet tollgate"), 0);
  CtlRun drift = ctl({"pods", "-n", "default", "-o", "json"});
  ASSERT_EQ(drift.rc, 0) << drift.err;
  admin::AdminReply pods;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(drift.out, &pods).ok()) << drift.out;
  ASSERT_EQ(pods.pods_size(), 1);
  EXPECT_FALSE(pods.pods(0).rules_ok());
  ASSERT_GE(pods.pods(0).drift_size(), 1);
  EXPECT_EQ(pods.pods(0).drift(0), "table inet tollgate missing");
  CtlRun r2 = ctl({"rules", "default/client"});
  ASSERT_EQ(r2.rc, 0) << r2.err;
  EXPECT_NE(r2.out.find("DRIFT"), std::string::npos) << r2.out;
  EXPECT_NE(r2.out.find("nothing installed"), std::string::npos) << r2.out;

  agent_->pods().reconcileAll();
  CtlRun repaired = ctl({"rules", "default/client"});
  ASSERT_EQ(repaired.rc, 0) << repaired.err;
  EXPECT_NE(repaired.out.find("rules OK"), std::string::npos) << repaired.out;
  EXPECT_EQ(ctl({"pods", "-n", "other"}).out.find("client"), std::string::npos);
}

TEST_F(AdminTest, ConnsListsALiveConnection) {
  // A route out of the pod netns, so that a connect reaches the redirect (nothing answers there).
  ASSERT_EQ(sh(fmt::format("ip -n {} link add tgadm0 type veth peer name tgadm1", pod_)), 0);
  ASSERT_EQ(sh(fmt::format("ip -n {} link set tgadm0 up", pod_)), 0);
  ASSERT_EQ(sh(fmt::format("ip -n {} link set tgadm1 up", pod_)), 0);
  ASSERT_EQ(sh(fmt::format("ip -n {} route add 198.51.100.0/24 dev tgadm0", pod_)), 0);
  auto podNs = Netns::open(netnsPath(pod_));
  ASSERT_TRUE(podNs);
  CtlRun none = ctl({"conns", "default/client"});
  ASSERT_EQ(none.rc, 0) << none.err;
  EXPECT_NE(none.out.find("(no open connections)"), std::string::npos) << none.out;

  auto fd = connectIn(*podNs, "198.51.100.7", 443);  // captured; nothing sent yet
  ASSERT_TRUE(fd) << fd.error().str();
  // The proxy accepts it on its own thread: ask until it is there (a hang bound only).
  CtlRun json;
  admin::AdminReply r;
  for (int i = 0; i < 500 && r.conns_size() == 0; ++i) {
    json = ctl({"conns", "default/client", "-o", "json"});
    ASSERT_EQ(json.rc, 0) << json.err;
    r.Clear();
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &r).ok()) << json.out;
    if (r.conns_size() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(r.conns_size(), 1) << json.out;
  EXPECT_EQ(r.conns(0).namespace_(), "default");
  EXPECT_EQ(r.conns(0).pod(), "client");
  EXPECT_EQ(r.conns(0).original_dst(), "198.51.100.7:443");
  EXPECT_EQ(r.conns(0).decision(), "");  // still reading the first bytes
  CtlRun table = ctl({"conns", "--watch", "--count", "2"});
  ASSERT_EQ(table.rc, 0) << table.err;
  size_t first = table.out.find("default/client  198.51.100.7:443");
  ASSERT_NE(first, std::string::npos) << table.out;
  EXPECT_NE(table.out.find("default/client  198.51.100.7:443", first + 1), std::string::npos)
      << "two answers expected: " << table.out;
  EXPECT_NE(table.out.find("sniffing"), std::string::npos) << table.out;
  ::close(*fd);
  EXPECT_EQ(ctl({"conns", "default/nobody"}).rc, 2);
  EXPECT_EQ(ctl({"conns", "--count", "2"}).rc, 2);  // --count without --watch
}

class AdminLogTest : public AdminTest {
 protected:
  void SetUp() override {
    AdminTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // The pod's interface to the node and a route out, so that a connect reaches the redirect
    // and the proxy's answer comes back (nothing leaves: the node netns has no way further).
    std::string p = fmt::format("tgadm{}p", r_), n = fmt::format("tgadm{}n", r_);
    ASSERT_EQ(sh(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", p, pod_, n, node_)), 0);
    ASSERT_EQ(sh(fmt::format("ip -n {} addr add 10.250.{}.1/30 dev {}", pod_, r_, p)), 0);
    ASSERT_EQ(sh(fmt::format("ip -n {} addr add 10.250.{}.2/30 dev {}", node_, r_, n)), 0);
    ASSERT_EQ(sh(fmt::format("ip -n {} link set {} up", pod_, p)), 0);
    ASSERT_EQ(sh(fmt::format("ip -n {} link set {} up", node_, n)), 0);
    ASSERT_EQ(sh(fmt::format("ip -n {} route add 198.51.100.0/24 via 10.250.{}.2", pod_, r_)), 0);
    auto ns = Netns::open(netnsPath(pod_));
    ASSERT_TRUE(ns);
    podNs_.emplace(std::move(*ns));
  }

  // A request from the pod to a host outside the registry: the proxy answers 403 and the
  // connection ends, which records it in the journal. Returns the proxy's status line.
  static std::string deniedRequest(const Netns& podNs, const std::string& host) {
    auto fd = connectIn(podNs, "198.51.100.7", 80);
    if (!fd) return "connect: " + fd.error().str();
    std::string req = "GET / HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
    if (::send(*fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      ::close(*fd);
      return "send failed";
    }
    std::string resp;
    char buf[1024];
    for (ssize_t n; (n = ::recv(*fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<size_t>(n));
    ::close(*fd);
    return resp.substr(0, resp.find("\r\n"));
  }

  std::optional<Netns> podNs_;
};

TEST_F(AdminLogTest, LogShowsADeniedConnectionAndFollowsTheNextOne) {
  EXPECT_EQ(deniedRequest(*podNs_, "first.example"), "HTTP/1.1 403 Forbidden");
  // The session records the connection as it ends, on the proxy's thread: ask until it is there.
  admin::LogEvent seen;
  for (int i = 0; i < 500 && seen.kind().empty(); ++i) {
    CtlRun r = ctl({"log", "default/client", "-o", "json"});
    ASSERT_EQ(r.rc, 0) << r.err;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      admin::LogEvent e;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &e).ok()) << line;
      if (e.fields().contains("name") && e.fields().at("name") == "first.example") seen = e;
    }
    if (seen.kind().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(seen.kind(), "conn");
  EXPECT_EQ(seen.namespace_(), "default");
  EXPECT_EQ(seen.pod(), "client");
  EXPECT_EQ(seen.fields().at("dst"), "198.51.100.7:80");
  EXPECT_EQ(seen.fields().at("decision"), "deny");
  EXPECT_EQ(seen.fields().at("reason"), "not_in_registry");
  EXPECT_GT(seen.seq(), 0u);
  CtlRun table = ctl({"log"});
  ASSERT_EQ(table.rc, 0) << table.err;
  EXPECT_NE(table.out.find(" conn  default/client \"198.51.100.7:80\" \"first.example\" http deny not_in_registry"),
            std::string::npos)
      << table.out;
  EXPECT_EQ(ctl({"log", "default/other"}).out, "");  // another pod's filter: nothing

  // -f with no history prints only what happens next, and --count ends it.
  CtlRun follow;
  std::thread follower([&] { follow = ctl({"log", "default/client", "-f", "--tail", "0", "--count", "1"}); });
  // The follower may ask for the first time after this request: it starts from the newest
  // event, so it needs one that happens after it started. Send until it has one.
  std::atomic<bool> done{false};
  std::thread sender([&] {
    for (int i = 0; i < 3000 && !done; ++i) {
      deniedRequest(*podNs_, "next.example");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  follower.join();
  done = true;
  sender.join();
  ASSERT_EQ(follow.rc, 0) << follow.err;
  EXPECT_NE(follow.out.find("\"next.example\" http deny not_in_registry"), std::string::npos) << follow.out;
  EXPECT_EQ(follow.out.find("first.example"), std::string::npos) << "--tail 0 printed history: " << follow.out;
  EXPECT_EQ(std::count(follow.out.begin(), follow.out.end(), '\n'), 1) << follow.out;

  EXPECT_EQ(ctl({"log", "--kind", "bogus"}).rc, 2);
  EXPECT_EQ(ctl({"log", "--tail", "x"}).rc, 2);
  EXPECT_EQ(ctl({"log", "a", "b"}).rc, 2);
}

TEST_F(AdminLogTest, LearnTurnsTheJournalIntoServiceEntries) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(deniedRequest(*podNs_, "api.example.com"), "HTTP/1.1 403 Forbidden");
  // Wait until the three are recorded (a hang bound only).
  for (int i = 0; i < 500; ++i) {
    CtlRun r = ctl({"log", "--kind", "conn"});
    if (std::count(r.out.begin(), r.out.end(), '\n') >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CtlRun r = ctl({"learn", "--history", "--duration", "0s"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("# api.example.com: 3 connection(s) from default/default (3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("- api.example.com"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("{number: 80, name: http-80, protocol: HTTP}"), std::string::npos) << r.out;
  // The learned entry, next to the node's config, validates and allows what was denied (decided
  // offline: applied, the proxy would dial the real api.example.com, and tests never leave the node).
  writeConfig(r.out, "learned.yaml");
  std::string dir = (dir_ / "config").string();
  std::ostringstream out, err;
  EXPECT_EQ(cli::runCli({"config", "validate", dir}, out, err), 0) << out.str() << err.str();
  std::ostringstream out2, err2;
  EXPECT_EQ(cli::runCli({"check", "--config-dir", dir, "--from", "default/client", "198.51.100.7:80", "--host",
                         "api.example.com"},
                        out2, err2),
            0)
      << out2.str() << err2.str();
  EXPECT_EQ(ctl({"learn", "--duration", "5x"}).rc, 2);
  EXPECT_EQ(ctl({"learn", "extra"}).rc, 2);
}

// tollgatectl verify against a pod wired like a real one: a veth to the node (named like the
// fence's pod interfaces) and a default route; the node forwards the probe target towards a
// third netns, "net", whose witness counter sees every packet that got past the node.
class AdminVerifyTest : public AdminTest {
 protected:
  void SetUp() override {
    AdminTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    net_ = fmt::format("tgadm-{}-net", r_);
    sh("ip netns del " + net_);
    ASSERT_EQ(sh("ip netns add " + net_), 0);
    std::string p = fmt::format("tgadm{}p", r_), n = fmt::format("tgadmpod{}", r_);
    std::string up = fmt::format("tgadm{}u", r_), down = fmt::format("tgadm{}d", r_);
    for (const std::string& cmd : {
             fmt::format("ip link add {} netns {} type veth peer name {} netns {}", p, pod_, n, node_),
             fmt::format("ip -n {} addr add 10.251.{}.2/24 dev {}", pod_, r_, p),
             fmt::format("ip -n {} addr add 10.251.{}.1/24 dev {}", node_, r_, n),
             fmt::format("ip -n {} link set {} up", pod_, p),
             fmt::format("ip -n {} link set {} up", node_, n),
             fmt::format("ip -n {} route add default via 10.251.{}.1", pod_, r_),
             fmt::format("ip link add {} netns {} type veth peer name {} netns {}", up, node_, down, net_),
             fmt::format("ip -n {} addr add 10.252.{}.1/30 dev {}", node_, r_, up),
             fmt::format("ip -n {} addr add 10.252.{}.2/30 dev {}", net_, r_, down),
             fmt::format("ip -n {} link set {} up", node_, up),
             fmt::format("ip -n {} link set {} up", net_, down),
             fmt::format("ip -n {} route add 198.51.100.0/24 via 10.252.{}.2", node_, r_),
             fmt::format("ip netns exec {} sysctl -qw net.ipv4.ip_forward=1", node_),
             fmt::format("ip netns exec {} sysctl -qw net.ipv4.ping_group_range='0 2147483647'", pod_),
             fmt::format("ip netns exec {} nft 'add table inet witness; add counter inet witness "
                         "got; add chain inet witness pre {{ type filter hook prerouting priority "
                         "-300; }}; add rule inet witness pre iifname \"{}\" ip daddr "
                         "198.51.100.250 counter name \"got\"'",
                         net_, down),
         }) {
      ASSERT_EQ(sh(cmd), 0) << cmd;
    }
  }

  void TearDown() override {
    AdminTest::TearDown();
    if (!net_.empty()) sh("ip netns del " + net_);
  }

  // Packets that reached "net" from the node: what got past both defences.
  uint64_t witness() const {
    std::string cmd = fmt::format("ip netns exec {} nft list counter inet witness got", net_);
    std::string out = tests::runCommand(cmd).output;
    auto at = out.find("packets ");
    return at == std::string::npos ? UINT64_MAX : std::stoull(out.substr(at + 8));
  }

  admin::AdminReply verifyJson(int expectRc) {
    CtlRun r = ctl({"verify", "default/client", "--target", "198.51.100.250", "--target6",
                    "2001:db8::250", "-o", "json"});
    EXPECT_EQ(r.rc, expectRc) << r.out << r.err;
    admin::AdminReply reply;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &reply).ok()) << r.out;
    return reply;
  }

  static const admin::VerifyCheck* find(const admin::AdminReply& r, const std::string& vector,
                                        const std::string& user) {
    for (const auto& c : r.checks()) {
      if (c.vector() == vector && c.user() == user) return &c;
    }
    return nullptr;
  }

  std::string net_;
};

TEST_F(AdminVerifyTest, PassesOnAHealthyPodAndNamesTheVectorsWhenBothDefencesAreGone) {
  ASSERT_EQ(witness(), 0u);
  admin::AdminReply healthy = verifyJson(0);
  ASSERT_GE(healthy.checks_size(), 20);
  for (const auto& c : healthy.checks()) {
    EXPECT_TRUE(c.passed()) << c.vector() << " as " << c.user() << ": " << c.outcome();
  }
  // Each defence did its part, as its own records show.
  auto outcome = [&](const admin::AdminReply& r, const char* v, const char* u) {
    const admin::VerifyCheck* c = find(r, v, u);
    return c ? c->outcome() : std::string("(missing)");
  };
  EXPECT_EQ(outcome(healthy, "tcp", "uid-1337"), "redirected to the proxy (deny client_closed)");
  EXPECT_EQ(outcome(healthy, "udp", "pod-uid"), "dropped by the pod's rules (drop_udp +1)");
  EXPECT_EQ(outcome(healthy, "raw", "root+net_admin"), "dropped by the pod's rules (drop_other +1)");
  EXPECT_TRUE(outcome(healthy, "so-mark", "root+net_admin").starts_with("dropped by the host fence (fence_drop +"))
      << outcome(healthy, "so-mark", "root+net_admin");
  EXPECT_EQ(outcome(healthy, "so-mark", "pod-uid"),
            "refused by the kernel: SO_MARK: Operation not permitted (this user lacks the capability)");
  EXPECT_EQ(outcome(healthy, "proxy-port", "pod-uid"), "refused by the proxy itself (deny loop)");
  EXPECT_EQ(outcome(healthy, "dot", "pod-uid"), "dropped by the pod's rules (drop_dot +1)");
  EXPECT_EQ(witness(), 0u) << "a probe got past the node on a healthy pod";
  // The table gets a golden line per vector and the verdict.
  CtlRun table = ctl({"verify", "default/client", "--target", "198.51.100.250"});
  EXPECT_EQ(table.rc, 0) << table.out << table.err;
  EXPECT_NE(table.out.find("default/client: no way around the node found"), std::string::npos) << table.out;

  // Both defences broken behind the agent's back (no reconciler in this suite).
  ASSERT_EQ(sh("ip netns exec " + pod_ + " nft delete table inet tollgate"), 0);
  ASSERT_EQ(sh("ip netns exec " + node_ + " nft delete table inet tollgate_fence"), 0);
  admin::AdminReply broken = verifyJson(1);
  EXPECT_FALSE(find(broken, "rules", "")->passed());
  EXPECT_FALSE(find(broken, "fence", "")->passed());
  for (auto [v, u] : {std::pair{"tcp", "pod-uid"}, {"udp", "pod-uid"}, {"icmp", "root+net_admin"},
                      {"raw", "root+net_admin"}, {"so-mark", "root+net_admin"}, {"quic", "pod-uid"}}) {
    const admin::VerifyCheck* c = find(broken, v, u);
    ASSERT_NE(c, nullptr) << v;
    EXPECT_FALSE(c->passed()) << v << " as " << u << ": " << c->outcome();
    EXPECT_TRUE(c->outcome().starts_with("LEAK: ")) << c->outcome();
  }
  // What it called leaks really left: the witness beyond the node saw them.
  EXPECT_GT(witness(), 0u);
}

TEST_F(AdminVerifyTest, RefusesBadInputAndUnknownPods) {
  EXPECT_EQ(ctl({"verify"}).rc, 2);
  CtlRun unknown = ctl({"verify", "default/nobody"});
  EXPECT_EQ(unknown.rc, 2);
  EXPECT_EQ(unknown.err, "tollgatectl verify: pod default/nobody is not enrolled on this node\n");
  CtlRun bad = ctl({"verify", "default/client", "--target", "2001:db8::1"});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("expected an IPv4 and an IPv6 address"), std::string::npos) << bad.err;
  EXPECT_EQ(ctl({"verify", "default/client", "--uid", "root"}).rc, 2);
  // No route on the node to the default target: the route check says what to do.
  CtlRun noRoute = ctl({"verify", "default/client"});
  EXPECT_EQ(noRoute.rc, 1);
  EXPECT_NE(noRoute.out.find("the node has no route to 192.0.2.1"), std::string::npos) << noRoute.out;
}

TEST_F(AdminTest, ErrorsAreOneLineAndExitTwo) {
  CtlRun unknown = ctl({"rules", "default/nobody"});
  EXPECT_EQ(unknown.rc, 2);
  EXPECT_EQ(unknown.err, "tollgatectl rules: pod default/nobody is not enrolled on this node\n");
  CtlRun badRef = ctl({"rules", "client"});
  EXPECT_EQ(badRef.rc, 2);
  EXPECT_NE(badRef.err.find("expected NAMESPACE/POD"), std::string::npos) << badRef.err;
  CtlRun certs = ctl({"certs"});
  EXPECT_EQ(certs.rc, 2);
  EXPECT_NE(certs.err.find("no built-in CA"), std::string::npos) << certs.err;
  std::ostringstream out, err;
  int rc = cli::runCli({"status", "--run-dir", (dir_ / "nothing-here").string()}, out, err);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.str().find("agent not running: nothing answers on"), std::string::npos) << err.str();
  EXPECT_EQ(ctl({"status", "-o", "xml"}).rc, 2);
}

TEST_F(AdminTest, OnlyRootMayAsk) {
  const std::string bin = TOLLGATE_BINARY_DIR "/cli/tollgatectl";
  ASSERT_EQ(::access(bin.c_str(), X_OK), 0) << bin;
  struct stat st{};
  ASSERT_EQ(::stat(adminSock().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, 0u);
  auto asNobody = [&] {
    std::string cmd = fmt::format("setpriv --reuid 65534 --regid 65534 --clear-groups {} status "
                                  "--run-dir {} 2>&1; echo rc=$?",
                                  bin, (dir_ / "run").string());
    return tests::runCommand(cmd).output;
  };
  // The run dir must be reachable for the second half; the file mode alone refuses here.
  ::chmod((dir_ / "run").c_str(), 0755);
  ::chmod(dir_.c_str(), 0755);
  std::string denied = asNobody();
  EXPECT_NE(denied.find("permission denied on"), std::string::npos) << denied;
  EXPECT_NE(denied.find("rc=2"), std::string::npos) << denied;
  // Someone loosens the file mode: the peer-credential check still refuses, and counts it.
  ASSERT_EQ(::chmod(adminSock().c_str(), 0666), 0);
  std::string refused = asNobody();
  EXPECT_NE(refused.find("is root only (you are uid 65534)"), std::string::npos) << refused;
  EXPECT_NE(refused.find("rc=2"), std::string::npos) << refused;
  EXPECT_NE(agent_->metrics().render().find("tollgate_admin_requests_total{result=\"refused\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace tollgate::agent::testing
