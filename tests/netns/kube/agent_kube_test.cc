// tollgate-agent with --config-source kubernetes against the real kube-apiserver of
// lab/k8s/control-plane (the ctest fixture kube_control_plane). The agent lives in a throwaway
// node netns (agent_fixture.h) and the API server on the host's 127.0.0.1, so the test carries
// the agent's connections through a relay it can switch off: an API server outage as the
// agent sees it, without stopping the API server the other tests share.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/http/verb.hpp>

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube/api_client.h"
#include "kube/client_config.h"
#include "tests/netns/agent/agent_fixture.h"
#include "tests/common/eventually.h"
#include "tests/netns/kube/kube_fixture.h"
#include "tests/netns/kube/relay.h"

namespace tollgate::agent {
namespace {

using tollgate::tests::eventually;

namespace fs = std::filesystem;
using http = boost::beast::http::verb;
using nlohmann::json;
using namespace std::chrono_literals;


class AgentKubeTest : public testing::AgentNetnsTest {
 protected:
  AgentKubeTest() : AgentNetnsTest("k") {}

  void SetUp() override {
    AgentNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (!fs::exists(tests::kubeStateDir() + "/admin.kubeconfig")) {
      GTEST_SKIP() << "no control plane: run through ctest (fixture kube_control_plane)";
    }
    apiPort_ = tests::apiServerPort();
    ASSERT_NE(apiPort_, 0) << "no KUBE_APISERVER in " << tests::kubeStateDir() << "/env";
    hostNs_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    inNode([&] { relay_ = std::make_unique<kube::testing::Relay>(apiPort_, hostNs_); });
    // The agent's kubeconfig: the admin's, through the relay.
    std::ofstream(dir_ / "kubeconfig") << tests::adminKubeconfigVia(relay_->port());

    thread_ = std::thread([this] { io_.run(); });
    auto cfg = kube::loadKubeconfig(tests::kubeStateDir() + "/admin.kubeconfig");
    ASSERT_TRUE(cfg) << cfg.error().message;
    auto c = kube::ApiClient::create(*cfg);
    ASSERT_TRUE(c) << c.error().message;
    admin_ = *c;
    ns_ = fmt::format("agent-kube-{}-{}", r_, ::getpid());
    ASSERT_EQ(call(http::post, "/api/v1/namespaces",
                   {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_}}}})
                  .status,
              201u);
    // No controller-manager runs: service accounts are created by hand.
    ASSERT_EQ(call(http::post, "/api/v1/namespaces/" + ns_ + "/serviceaccounts",
                   {{"apiVersion", "v1"},
                    {"kind", "ServiceAccount"},
                    {"metadata", {{"name", "sa-client"}}}})
                  .status,
              201u);
  }

  void TearDown() override {
    agent_.reset();
    // No controller-manager runs, so a deleted namespace keeps its objects: delete them first.
    if (admin_) {
      call(http::delete_, "/apis/networking.istio.io/v1/namespaces/" + ns_ + "/serviceentries", nullptr);
      call(http::delete_, "/api/v1/namespaces/" + ns_ + "/pods?gracePeriodSeconds=0", nullptr);
      call(http::delete_, "/api/v1/namespaces/" + ns_, nullptr);
    }
    relay_.reset();
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    if (hostNs_ >= 0) ::close(hostNs_);
    AgentNetnsTest::TearDown();
  }

  kube::Response call(http verb, const std::string& path, const json& body,
                      const std::string& type = "application/json") {
    auto r = boost::asio::co_spawn(
                 io_,
                 admin_->request(io_.get_executor(), verb, path, body.is_null() ? "" : body.dump(),
                                 30s, type),
                 boost::asio::use_future)
                 .get();
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : kube::Response{};
  }

  // Returns the Pod's metadata.uid.
  std::string createPod(const std::string& name, const std::string& node, const std::string& app) {
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"labels", {{"app", app}}}}},
                {"spec",
                 {{"nodeName", node},
                  {"serviceAccountName", "sa-client"},
                  {"automountServiceAccountToken", false},
                  {"containers", {{{"name", "main"}, {"image", "tollgate-lab/shell"}}}}}}};
    auto r = call(http::post, "/api/v1/namespaces/" + ns_ + "/pods", pod);
    EXPECT_EQ(r.status, 201u) << r.body;
    return r.status == 201u ? json::parse(r.body)["metadata"].value("uid", "") : "";
  }

  AgentOptions kubeOptions() const {
    AgentOptions o = agentOptions();
    o.configDir.clear();
    o.configSource = "kubernetes";
    o.kubeconfig = (dir_ / "kubeconfig").string();
    o.nodeName = node_;
    o.metricsPort = AgentOptions{}.metricsPort;
    return o;
  }

  std::string metrics() {
    auto fd = connectIn(*nodeNs_, "127.0.0.1", AgentOptions{}.metricsPort);
    return fd ? exchange(*fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", false) : "";
  }

  const policy::Pod* pod(const std::string& name) const {
    auto snap = agent_->snapshot();
    return snap ? snap->findPod(ns_, name) : nullptr;
  }
  std::string appLabel(const std::string& name) const {
    const policy::Pod* p = pod(name);
    if (!p) return "";
    auto it = p->meta.labels.find("app");
    return it == p->meta.labels.end() ? "" : it->second;
  }
  bool hasServiceEntryHost(const std::string& host) const {
    auto snap = agent_->snapshot();
    if (!snap) return false;
    // This test's namespace only: with no controller-manager, a deleted namespace's objects
    // stay in etcd (earlier runs' ServiceEntries are still listed).
    for (const auto& se : snap->config().serviceEntries) {
      if (se.meta.ns != ns_) continue;
      for (const auto& h : se.hosts) {
        if (h == host) return true;
      }
    }
    return false;
  }

  uint16_t apiPort_ = 0;
  int hostNs_ = -1;
  std::unique_ptr<kube::testing::Relay> relay_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
  std::shared_ptr<kube::ApiClient> admin_;
  std::string ns_;
};

TEST_F(AgentKubeTest, NotReadyUntilTheApiServerListedThenPodsComeFromTheApi) {
  std::string uid = createPod("client", node_, "client");
  ASSERT_FALSE(uid.empty());
  createPod("elsewhere", "some-other-node", "client");
  // The API server is out of reach at start: the agent starts, is not ready and says so.
  ASSERT_TRUE(startAgent(kubeOptions())) << "agent start";
  ASSERT_NE(agent_->kubeSource(), nullptr);
  EXPECT_TRUE(eventually([&] { return agent_->kubeSource()->status().errors > 0; }));
  EXPECT_FALSE(agent_->ready());
  std::string m = metrics();
  EXPECT_NE(m.find("tollgate_config_source_ready 0"), std::string::npos) << m;
  EXPECT_NE(m.find("tollgate_config_source_connected 0"), std::string::npos) << m;
  auto refused = send(request(enroll::EnrollRequest::ADD, ns_, "client"), true);
  EXPECT_FALSE(refused.ok()) << "an agent without config must not enroll";
  EXPECT_EQ(refused.code(), kCodeNotReady) << refused.msg();

  relay_->setOpen(true);
  ASSERT_TRUE(eventually([&] { return agent_->ready(); })) << agent_->kubeSource()->status().lastError;
  m = metrics();
  EXPECT_NE(m.find("tollgate_config_source_ready 1"), std::string::npos) << m;
  EXPECT_NE(m.find("tollgate_config_source_installs_coalesced_total "), std::string::npos) << m;
  EXPECT_NE(m.find("tollgate_config_source_connected 1"), std::string::npos) << m;

  // Only this node's Pods are in the snapshot (field selector), with the API's labels and
  // service account.
  ASSERT_NE(pod("client"), nullptr);
  EXPECT_EQ(pod("elsewhere"), nullptr);
  EXPECT_EQ(appLabel("client"), "client");
  auto id = agent_->snapshot()->identityOf(ns_, "client");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->serviceAccount, "sa-client");

  // A K8S_POD_UID that is not this Pod's (a deleted pod's late ADD) is refused; its own enrols.
  auto stale = request(enroll::EnrollRequest::ADD, ns_, "client");
  stale.mutable_pod()->set_uid("00000000-0000-0000-0000-000000000000");
  auto refusedStale = send(stale, true);
  EXPECT_EQ(refusedStale.code(), kCodeUnknownPod) << refusedStale.msg();
  EXPECT_NE(refusedStale.msg().find("uid 00000000-"), std::string::npos) << refusedStale.msg();
  auto own = request(enroll::EnrollRequest::ADD, ns_, "client");
  own.mutable_pod()->set_uid(uid);
  auto added = send(own, true);
  EXPECT_TRUE(added.ok()) << added.msg();
  // What the CNI plugin names is not enough: unknown to the API, or on another node.
  for (const char* name : {"ghost", "elsewhere"}) {
    auto r = send(request(enroll::EnrollRequest::ADD, ns_, name), true);
    EXPECT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.code(), kCodeUnknownPod) << name << ": " << r.msg();
    EXPECT_NE(r.msg().find("not a Pod of this node"), std::string::npos) << r.msg();
  }
  EXPECT_EQ(agent_->metrics().enrollUnknownPod.load(), 3u);

  // kubectl label: the snapshot follows.
  auto r = call(http::patch, "/api/v1/namespaces/" + ns_ + "/pods/client",
                {{"metadata", {{"labels", {{"app", "relabelled"}}}}}},
                "application/merge-patch+json");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_TRUE(eventually([&] { return appLabel("client") == "relabelled"; }));
  EXPECT_TRUE(send(request(enroll::EnrollRequest::DEL, ns_, "client"), false).ok());
}

// A restart while the API server is out of reach: the agent re-adopts its pod before it has a
// config, and checks and repairs the pod's rules (deleted meanwhile) when the first one arrives.
// The reconciler is off, so only the first-config repair can put them back.
TEST_F(AgentKubeTest, ARestartBeforeTheFirstListRepairsThePodOnceTheConfigArrives) {
  std::string uid = createPod("client", node_, "client");
  AgentOptions o = kubeOptions();
  o.reconcileInterval = std::chrono::milliseconds(0);
  relay_->setOpen(true);
  ASSERT_TRUE(startAgent(o)) << "agent start";
  ASSERT_TRUE(eventually([&] { return agent_->ready(); })) << agent_->kubeSource()->status().lastError;
  auto add = request(enroll::EnrollRequest::ADD, ns_, "client");
  add.mutable_pod()->set_uid(uid);
  ASSERT_TRUE(send(add, true).ok());
  ASSERT_TRUE(podTableExists());

  agent_->stop();
  agent_.reset();
  relay_->setOpen(false);
  ASSERT_EQ(testing::sh("ip netns exec " + pod_ + " nft delete table inet tollgate"), 0);
  ASSERT_TRUE(startAgent(o)) << "agent restart";
  EXPECT_TRUE(agent_->pods().enrolled(ns_, "client"));
  EXPECT_FALSE(agent_->ready());
  EXPECT_FALSE(podTableExists());  // nothing to install yet: no config

  relay_->setOpen(true);
  EXPECT_TRUE(eventually([&] { return podTableExists(); })) << "rules not repaired after the first list";
  auto check = send(request(enroll::EnrollRequest::CHECK, ns_, "client"), true);
  EXPECT_TRUE(check.ok()) << check.msg();
  EXPECT_TRUE(send(request(enroll::EnrollRequest::DEL, ns_, "client"), false).ok());
}

// Listener handoff on the kubernetes source: the new agent takes no pod over before its first
// config (its listeners would refuse what the running agent allows: lab scenario 31 saw resets
// and failed DNS answers); without a config it gives the upgrade up and the running agent
// carries on.
TEST_F(AgentKubeTest, AHandoffWaitsForTheFirstListAndWithoutOneTheRunningAgentCarriesOn) {
  std::string uid = createPod("client", node_, "client");
  relay_->setOpen(true);
  ASSERT_TRUE(startAgent(kubeOptions())) << "agent start";
  ASSERT_TRUE(eventually([&] { return agent_->ready(); })) << agent_->kubeSource()->status().lastError;
  auto add = request(enroll::EnrollRequest::ADD, ns_, "client");
  add.mutable_pod()->set_uid(uid);
  ASSERT_TRUE(send(add, true).ok());

  // The API server out of reach: the upgrade is given up, the running agent serves on.
  relay_->setOpen(false);
  AgentOptions quick = kubeOptions();
  quick.handoffConfigWait = std::chrono::seconds(1);
  auto refused = std::make_unique<Agent>(quick);
  Status st = fail("not run");
  inNode([&] { st = refused->start(); });
  ASSERT_FALSE(st) << "an upgrade without a config must not take the pods over";
  EXPECT_NE(st.error().str().find("no config from the kubernetes API"), std::string::npos)
      << st.error().str();
  refused->stop();
  refused.reset();
  EXPECT_TRUE(eventually([&] { return agent_->handoffCounters().failed.load() == 1; }));
  EXPECT_FALSE(agent_->retired());
  auto check = send(request(enroll::EnrollRequest::CHECK, ns_, "client"), true);
  EXPECT_TRUE(check.ok()) << check.msg();

  // The API server back while the next upgrade waits: it takes over with its config in. It
  // reaches the API through a relay of its own, so that relay's refusals show it is waiting
  // (the running agent's retries go through relay_).
  std::unique_ptr<kube::testing::Relay> nextRelay;
  inNode([&] { nextRelay = std::make_unique<kube::testing::Relay>(apiPort_, hostNs_); });
  std::ofstream(dir_ / "kubeconfig-next") << tests::adminKubeconfigVia(nextRelay->port());
  AgentOptions nextOptions = kubeOptions();
  nextOptions.kubeconfig = (dir_ / "kubeconfig-next").string();
  auto next = std::make_unique<Agent>(nextOptions);
  bool hadConfig = false;
  std::atomic<bool> returned{false};
  std::thread upgrade([&] {
    inNode([&] {
      st = next->start();
      // Applied, not only stored: its redirect is in place before it takes a pod over.
      hadConfig = next->snapshot() != nullptr && next->redirectMode() != "none";
    });
    returned = true;
  });
  EXPECT_TRUE(eventually([&] { return nextRelay->refused() > 0; }))
      << "the next agent never tried the API server";
  EXPECT_FALSE(returned.load()) << "start() returned while the API server was out of reach";
  nextRelay->setOpen(true);
  upgrade.join();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_TRUE(hadConfig) << "start() returned, and its listeners accepted, before its config was applied";
  EXPECT_TRUE(next->pods().enrolled(ns_, "client"));
  EXPECT_EQ(next->handoffCounters().received.load(), 1u);
  EXPECT_TRUE(agent_->waitRetired(30s));
  agent_->stop();
  agent_ = std::move(next);
  EXPECT_TRUE(send(request(enroll::EnrollRequest::DEL, ns_, "client"), false).ok());
  agent_.reset();  // before its relay goes
}

TEST_F(AgentKubeTest, AnOutageKeepsTheLastSnapshotAndWhatChangedMeanwhileArrivesAfter) {
  createPod("client", node_, "client");
  relay_->setOpen(true);
  ASSERT_TRUE(startAgent(kubeOptions())) << "agent start";
  ASSERT_TRUE(eventually([&] { return agent_->ready(); })) << agent_->kubeSource()->status().lastError;
  ASSERT_TRUE(send(request(enroll::EnrollRequest::ADD, ns_, "client"), true).ok());
  uint64_t generation = agent_->snapshot()->generation();

  relay_->setOpen(false);  // the agent's watches break and cannot reconnect
  EXPECT_TRUE(eventually([&] { return !agent_->kubeSource()->status().connected; }));
  json se = {{"apiVersion", "networking.istio.io/v1"},
             {"kind", "ServiceEntry"},
             {"metadata", {{"name", "during-outage"}, {"namespace", ns_}}},
             {"spec",
              {{"hosts", {"outage.example.com"}},
               {"ports", {{{"number", 80}, {"name", "http"}, {"protocol", "HTTP"}}}},
               {"resolution", "DNS"}}}};
  ASSERT_EQ(call(http::post, "/apis/networking.istio.io/v1/namespaces/" + ns_ + "/serviceentries", se)
                .status,
            201u);
  // Through the outage the agent keeps its snapshot, its pod and its readiness.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(agent_->snapshot()->generation(), generation);
  EXPECT_NE(pod("client"), nullptr);
  EXPECT_TRUE(agent_->ready());
  EXPECT_FALSE(hasServiceEntryHost("outage.example.com"));
  std::string m = metrics();
  EXPECT_NE(m.find("tollgate_config_source_connected 0"), std::string::npos) << m;

  relay_->setOpen(true);
  EXPECT_TRUE(eventually([&] { return hasServiceEntryHost("outage.example.com"); }));
  EXPECT_TRUE(eventually([&] { return agent_->kubeSource()->status().connected; }));
  EXPECT_GT(agent_->kubeSource()->status().errors, 0u);
  EXPECT_TRUE(send(request(enroll::EnrollRequest::DEL, ns_, "client"), false).ok());
}

}  // namespace
}  // namespace tollgate::agent
