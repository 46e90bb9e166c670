// tollgate-gateway's `--config-source kubernetes` (gateway/kube_source.h) against the real
// kube-apiserver of lab/k8s/control-plane (the ctest fixture kube_control_plane): a real
// GatewayServer with the same inputs main.cc builds, its KubeSource reading the API through a
// relay the test switches off (an outage as the gateway sees it), and real mTLS CONNECT
// tunnels through it to a loopback upstream. No netns: the gateway, the relay and the API
// server share the test's loopback.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/http/verb.hpp>

#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gateway/gateway_metrics.h"
#include "gateway/gateway_server.h"
#include "gateway/kube_source.h"
#include "gateway/reloader.h"
#include "kube/api_client.h"
#include "kube/client_config.h"
#include "proxy/access_log.h"
#include "proxy/resolver.h"
#include "tests/netns/gateway/test_servers.h"
#include "tests/common/eventually.h"
#include "tests/netns/kube/kube_fixture.h"
#include "tests/netns/kube/relay.h"
#include "tests/unit/gateway/test_certs.h"

namespace tollgate::gateway {
namespace {

namespace fs = std::filesystem;
using http = boost::beast::http::verb;
using nlohmann::json;
using namespace std::chrono_literals;

using tests::eventually;

class GatewayKubeTest : public ::testing::Test {
 protected:
  GatewayKubeTest()
      : meshCa_("mesh ca"), upstream_([](int fd) {
          testing::readHead(fd);
          testing::writeAll(fd, testing::httpResponse("hello from upstream"));
        }) {}

  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    if (!fs::exists(tests::kubeStateDir() + "/admin.kubeconfig")) {
      GTEST_SKIP() << "no control plane: run through ctest (fixture kube_control_plane)";
    }
    uint16_t apiPort = tests::apiServerPort();
    ASSERT_NE(apiPort, 0) << "no KUBE_APISERVER in " << tests::kubeStateDir() << "/env";
    relay_ = std::make_unique<kube::testing::Relay>(apiPort, -1);
    // The gateway's kubeconfig: the admin's, through the relay.
    std::string kubeconfig = dir_.write("kubeconfig", tests::adminKubeconfigVia(relay_->port()));

    ns_ = fmt::format("gw-kube-{}", ::getpid());
    host_ = fmt::format("svc-{}.test", ::getpid());
    clientId_ = fmt::format("spiffe://cluster.local/ns/{}/sa/client", ns_);
    auto gw = meshCa_.issue("gateway", {"URI:spiffe://cluster.local/ns/tollgate-system/sa/gateway",
                                        "IP:127.0.0.1"});
    auto client = meshCa_.issue("client", {"URI:" + clientId_});
    caFile_ = dir_.write("ca.pem", meshCa_.certPem());
    clientCert_ = dir_.write("client.pem", client.certPem);
    clientKey_ = dir_.write("client.key", client.keyPem);

    // What main.cc builds from --config-source kubernetes --kubeconfig PATH.
    Options o;
    o.configSource = "kubernetes";
    o.kubeconfig = kubeconfig;
    o.certFile = dir_.write("gw.pem", gw.certPem);
    o.keyFile = dir_.write("gw.key", gw.keyPem);
    o.trustBundleFile = caFile_;
    o.ns = ns_;  // AuthorizationPolicies of the test's namespace apply to this gateway
    o.connectTimeout = 3000ms;
    ASSERT_TRUE(accessLog_.open(dir_.path() + "/access.log", proxy::LogFormat::Text));
    in_ = std::make_unique<GatewayInputs>(
        GatewayInputs{io_, o, state_, metrics_, accessLog_, resolver_, {}});
    server_ = std::make_unique<GatewayServer>(*in_);
    server_->setWorkers({&worker_});
    reloader_ = std::make_unique<Reloader>(*in_, *server_);
    auto st = reloader_->loadInitial();  // the certificates only
    ASSERT_TRUE(st) << st.error().str();
    ASSERT_TRUE(server_->listen("127.0.0.1", 0));
    auto k = KubeSource::create(*in_);
    ASSERT_TRUE(k) << k.error().str();
    kube_ = std::move(*k);
    thread_ = std::thread([this] { io_.run(); });
    workerThread_ = std::thread([this] { worker_.run(); });

    auto cfg = kube::loadKubeconfig(tests::kubeStateDir() + "/admin.kubeconfig");
    ASSERT_TRUE(cfg) << cfg.error().message;
    auto c = kube::ApiClient::create(*cfg);
    ASSERT_TRUE(c) << c.error().message;
    admin_ = *c;
    ASSERT_EQ(call(http::post, "/api/v1/namespaces",
                   {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_}}}})
                  .status,
              201u);
  }

  void TearDown() override {
    if (kube_) kube_->stop();
    // No controller-manager runs, so a deleted namespace keeps its objects: delete them first
    // (a bad one left behind would refuse every later test's config).
    if (admin_) {
      call(http::delete_, "/apis/networking.istio.io/v1/namespaces/" + ns_ + "/serviceentries", nullptr);
      call(http::delete_, "/apis/security.istio.io/v1/namespaces/" + ns_ + "/authorizationpolicies",
           nullptr);
      call(http::delete_, "/api/v1/namespaces/" + ns_, nullptr);
    }
    relay_.reset();
    workerWork_.reset();
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    worker_.stop();
    if (workerThread_.joinable()) workerThread_.join();
  }

  kube::Response call(http verb, const std::string& path, const json& body) {
    auto r = boost::asio::co_spawn(io_,
                                   admin_->request(io_.get_executor(), verb, path,
                                                   body.is_null() ? "" : body.dump(), 30s,
                                                   "application/json"),
                                   boost::asio::use_future)
                 .get();
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : kube::Response{};
  }

  void createServiceEntry() {
    json se = {{"apiVersion", "networking.istio.io/v1"},
               {"kind", "ServiceEntry"},
               {"metadata", {{"name", "svc"}, {"namespace", ns_}}},
               {"spec",
                {{"hosts", {host_}},
                 {"ports",
                  {{{"number", 80}, {"name", "http"}, {"protocol", "HTTP"},
                    {"targetPort", upstream_.port()}}}},
                 {"resolution", "STATIC"},
                 {"endpoints", {{{"address", "127.0.0.1"}}}}}}};
    auto r = call(http::post, "/apis/networking.istio.io/v1/namespaces/" + ns_ + "/serviceentries", se);
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  void createDenyPolicy(const std::string& name, const std::string& action = "DENY") {
    json ap = {{"apiVersion", "security.istio.io/v1"},
               {"kind", "AuthorizationPolicy"},
               {"metadata", {{"name", name}, {"namespace", ns_}}},
               {"spec",
                {{"action", action},
                 {"rules", {{{"to", {{{"operation", {{"hosts", {host_}}}}}}}}}}}}};
    auto r = call(http::post,
                  "/apis/security.istio.io/v1/namespaces/" + ns_ + "/authorizationpolicies", ap);
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  // One HTTP/1.1 CONNECT to host_:80 and a request through it: the gateway's answer and, when
  // it allowed, the upstream's.
  std::string tunnel() {
    testing::TlsClient c(server_->port(), clientCert_, clientKey_, caFile_, "\x08http/1.1");
    if (!c.connected()) return "handshake failed";
    c.write(fmt::format("CONNECT {0}:80 HTTP/1.1\r\nHost: {0}:80\r\n\r\n", host_));
    std::string head = c.read("\r\n\r\n");
    if (head.starts_with("HTTP/1.1 200")) {
      c.write(fmt::format("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", host_));
      head += c.read("hello from upstream");
    }
    return head;
  }
  static bool allowed(const std::string& r) {
    return r.starts_with("HTTP/1.1 200") && r.find("hello from upstream") != std::string::npos;
  }

  testing::TempDir dir_;
  testing::TestCa meshCa_;
  testing::TcpServer upstream_;
  std::string ns_, host_, clientId_, caFile_, clientCert_, clientKey_;
  std::unique_ptr<kube::testing::Relay> relay_;
  asio::io_context worker_{1};
  asio::executor_work_guard<asio::io_context::executor_type> workerWork_ =
      asio::make_work_guard(worker_);
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  StateHolder state_;
  GatewayMetrics metrics_;
  proxy::AccessLog accessLog_;
  proxy::Resolver resolver_{io_};
  std::unique_ptr<GatewayInputs> in_;
  std::unique_ptr<GatewayServer> server_;
  std::unique_ptr<Reloader> reloader_;
  std::unique_ptr<KubeSource> kube_;
  std::thread thread_, workerThread_;
  std::shared_ptr<kube::ApiClient> admin_;
};

TEST_F(GatewayKubeTest, NotReadyUntilListedThenApiObjectsDecideWhatTunnelsGetThrough) {
  createServiceEntry();
  // The API server is out of reach at start: the gateway serves, refuses tunnels for want of a
  // config, is not ready and says why.
  kube_->start();
  ASSERT_TRUE(eventually([&] { return kube_->status().errors > 0; }));
  std::string why = kube_->notReadyReason();
  EXPECT_EQ(why.rfind("the kubernetes source has not listed every resource yet", 0), 0u) << why;
  EXPECT_EQ(state_.load(), nullptr);
  std::string r = tunnel();
  EXPECT_TRUE(r.starts_with("HTTP/1.1 503")) << r;
  std::string m = kube_->metrics();
  EXPECT_NE(m.find("tollgate_config_source_ready 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("tollgate_config_source_connected 0\n"), std::string::npos) << m;

  relay_->setOpen(true);
  ASSERT_TRUE(eventually([&] { return kube_->notReadyReason().empty(); })) << kube_->notReadyReason();
  m = kube_->metrics();
  EXPECT_NE(m.find("tollgate_config_source_ready 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("tollgate_config_source_objects{resource=\"authorizationpolicies.security.istio.io\"}"),
            std::string::npos)
      << m;
  EXPECT_GE(metrics_.reloadsOk.load(), 1u);
  // The ServiceEntry from the API lets the tunnel through to its STATIC endpoint.
  r = tunnel();
  EXPECT_TRUE(allowed(r)) << r;

  // A DENY AuthorizationPolicy created in the API refuses this identity's next tunnel.
  createDenyPolicy("deny-svc");
  ASSERT_TRUE(eventually([&] { return tunnel().starts_with("HTTP/1.1 403"); }));
  EXPECT_GE(metrics_.streams("deny", "authz"), 1u);
  // Deleted: allowed again.
  ASSERT_EQ(call(http::delete_,
                 "/apis/security.istio.io/v1/namespaces/" + ns_ + "/authorizationpolicies/deny-svc",
                 nullptr)
                .status,
            200u);
  EXPECT_TRUE(eventually([&] { return allowed(tunnel()); }));
  // And the ServiceEntry deleted: the host is no longer in the registry.
  ASSERT_EQ(call(http::delete_,
                 "/apis/networking.istio.io/v1/namespaces/" + ns_ + "/serviceentries/svc", nullptr)
                .status,
            200u);
  EXPECT_TRUE(eventually([&] { return tunnel().starts_with("HTTP/1.1 403"); }));
}

TEST_F(GatewayKubeTest, AnOutageKeepsTheLastSnapshotAndABadObjectKeepsTheLastGoodOne) {
  createServiceEntry();
  relay_->setOpen(true);
  kube_->start();
  ASSERT_TRUE(eventually([&] { return kube_->notReadyReason().empty(); })) << kube_->notReadyReason();
  ASSERT_TRUE(allowed(tunnel()));
  auto before = state_.load();

  relay_->setOpen(false);  // the gateway's watches break and cannot reconnect
  ASSERT_TRUE(eventually([&] { return !kube_->status().connected; }));
  createDenyPolicy("deny-during-outage");
  // Through the outage the gateway keeps its state and its readiness, and still allows.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(state_.load(), before);
  EXPECT_EQ(kube_->notReadyReason(), "");
  std::string r = tunnel();
  EXPECT_TRUE(allowed(r)) << r;
  EXPECT_NE(kube_->metrics().find("tollgate_config_source_connected 0\n"), std::string::npos);

  // Back: the policy created meanwhile arrives.
  relay_->setOpen(true);
  ASSERT_TRUE(eventually([&] { return tunnel().starts_with("HTTP/1.1 403"); }));
  EXPECT_TRUE(eventually([&] { return kube_->status().connected; }));

  // An object the loader refuses (CUSTOM: the CRD accepts it, tollgate does not) keeps the last
  // good state, counted, and the error names the object.
  auto good = state_.load();
  uint64_t failures = kube_->status().loadFailures;
  createDenyPolicy("custom", "CUSTOM");
  ASSERT_TRUE(eventually([&] { return kube_->status().loadFailures > failures; }));
  EXPECT_EQ(state_.load(), good);
  EXPECT_NE(kube_->status().lastError.find("AuthorizationPolicy/" + ns_ + "/custom"),
            std::string::npos)
      << kube_->status().lastError;
  EXPECT_EQ(kube_->notReadyReason(), "");  // the last good config still serves
  EXPECT_TRUE(tunnel().starts_with("HTTP/1.1 403"));
}

}  // namespace
}  // namespace tollgate::gateway
