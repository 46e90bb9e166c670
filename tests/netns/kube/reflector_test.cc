// The kube client, Reflector and KubeConfigSource against the real kube-apiserver and etcd of
// lab/k8s/control-plane. One control plane serves the whole run: ctest starts it (fixture
// kube_control_plane, tests/CMakeLists.txt) and passes TOLLGATE_KUBE_STATE; run by hand, the
// suite starts one itself when the k8s binaries are built, and skips with a message otherwise.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/http/verb.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "kube/api_client.h"
#include "kube/client_config.h"
#include "kube/kube_config_source.h"
#include "kube/reflector.h"
#include "tests/common/eventually.h"
#include "tests/netns/kube/kube_fixture.h"

namespace tollgate::kube {
namespace {

using tollgate::tests::eventually;

namespace fs = std::filesystem;
using http = boost::beast::http::verb;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string kControlPlane = std::string(TOLLGATE_SOURCE_DIR) + "/lab/k8s/control-plane";


bool apiserverRunning(const std::string& dir) {
  std::ifstream pid(dir + "/kube-apiserver.pid");
  int p = 0;
  return pid >> p && p > 0 && ::kill(p, 0) == 0;
}

bool k8sBinariesBuilt() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(std::string(TOLLGATE_SOURCE_DIR) + "/build/k8s", ec)) {
    if (fs::exists(e.path() / "kube-apiserver") && fs::exists(e.path() / "kubectl")) return true;
  }
  return false;
}

// The test's own io_context on one thread; run() waits for a coroutine's result.
class KubeTest : public ::testing::Test {
 protected:
  static inline bool startedHere_ = false;
  static inline std::string skip_;

  static void SetUpTestSuite() {
    std::string dir = tests::kubeStateDir();
    if (apiserverRunning(dir)) return;
    if (!k8sBinariesBuilt()) {
      skip_ = "no k8s binaries in build/k8s: run lab/k8s/build (make test runs it through the "
              "kube_control_plane ctest fixture)";
      return;
    }
    std::string cmd = kControlPlane + " start '" + dir + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    startedHere_ = true;
  }
  static void TearDownTestSuite() {
    if (startedHere_) std::system((kControlPlane + " stop '" + tests::kubeStateDir() + "'").c_str());
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    thread_ = std::thread([this] { io_.run(); });
    auto cfg = loadKubeconfig(tests::kubeStateDir() + "/admin.kubeconfig");
    ASSERT_TRUE(cfg) << cfg.error().message;
    adminConfig_ = *cfg;
    auto c = ApiClient::create(*cfg);
    ASSERT_TRUE(c) << c.error().message;
    admin_ = *c;
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ns_ = "t-";
    for (char ch : name) ns_ += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    ns_ += "-" + std::to_string(::getpid());
    auto r = call(http::post, "/api/v1/namespaces", json{{"apiVersion", "v1"}, {"kind", "Namespace"},
                                                          {"metadata", {{"name", ns_}}}});
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  void TearDown() override {
    // No controller-manager runs, so a deleted namespace keeps its objects: the test's own go
    // first (a bad one left behind would refuse every later test's config).
    if (admin_) {
      call(http::delete_, sePath(), nullptr);
      call(http::delete_, "/api/v1/namespaces/" + ns_, nullptr);
    }
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  template <typename T>
  T run(asio::awaitable<T> a) {
    return asio::co_spawn(io_, std::move(a), asio::use_future).get();
  }

  Response call(http verb, const std::string& path, const json& body,
                const std::string& type = "application/json", std::shared_ptr<ApiClient> c = nullptr) {
    auto client = c ? c : admin_;
    auto r = run(client->request(io_.get_executor(), verb, path, body.is_null() ? "" : body.dump(), 30s, type));
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : Response{};
  }

  std::string sePath(const std::string& name = "") const {
    return "/apis/networking.istio.io/v1/namespaces/" + ns_ + "/serviceentries" + (name.empty() ? "" : "/" + name);
  }
  json serviceEntry(const std::string& name, const std::string& host) const {
    return {{"apiVersion", "networking.istio.io/v1"},
            {"kind", "ServiceEntry"},
            {"metadata", {{"name", name}, {"namespace", ns_}}},
            {"spec",
             {{"hosts", {host}},
              {"ports", {{{"number", 80}, {"name", "http"}, {"protocol", "HTTP"}}}},
              {"location", "MESH_EXTERNAL"},
              {"resolution", "DNS"}}}};
  }
  void createSe(const std::string& name, const std::string& host, std::shared_ptr<ApiClient> c = nullptr) {
    auto r = call(http::post, sePath(), serviceEntry(name, host), "application/json", c);
    ASSERT_EQ(r.status, 201u) << r.body;
  }
  ResourceType seType() const {
    auto t = serviceEntries();
    t.fieldSelector = "metadata.namespace=" + ns_;  // this test's objects only
    return t;
  }
  ReflectorOptions options() const {
    ReflectorOptions o;
    o.type = seType();
    o.backoffInitial = 100ms;
    o.backoffMax = 1s;
    o.pageLimit = 2;  // pages even with a handful of objects
    return o;
  }

  // The store a reflector last reported, key -> first host.
  struct Seen {
    std::mutex mu;
    std::map<std::string, std::string> hosts;
    int calls = 0;
    std::map<std::string, std::string> get() {
      std::lock_guard l(mu);
      return hosts;
    }
  };
  Reflector::OnChange record(Seen& seen) {
    return [&seen](const Reflector::Store& s) {
      std::lock_guard l(seen.mu);
      seen.hosts.clear();
      seen.calls++;
      for (const auto& [k, o] : s) seen.hosts[k] = o["spec"]["hosts"][0].get<std::string>();
    };
  }
  std::string key(const std::string& name) const { return ns_ + "/" + name; }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
  ClientConfig adminConfig_;
  std::shared_ptr<ApiClient> admin_;
  std::string ns_;
};

TEST_F(KubeTest, ListThenWatchSeesCreateUpdateDelete) {
  for (int i = 0; i < 5; ++i) createSe("pre" + std::to_string(i), "pre" + std::to_string(i) + ".test");
  Seen seen;
  auto r = Reflector::create(io_.get_executor(), admin_, options(), record(seen));
  r->start();
  ASSERT_TRUE(eventually([&] { return seen.get().size() == 5; })) << "the paged list (limit 2)";
  EXPECT_TRUE(r->status().synced);
  EXPECT_EQ(r->status().lists, 1u);

  createSe("post", "post.test");
  ASSERT_TRUE(eventually([&] { return seen.get().count(key("post")) == 1; })) << "ADDED";
  auto p = call(http::patch, sePath("post"), json{{"spec", {{"hosts", {"moved.test"}}}}},
                "application/merge-patch+json");
  ASSERT_EQ(p.status, 200u) << p.body;
  ASSERT_TRUE(eventually([&] { return seen.get()[key("post")] == "moved.test"; })) << "MODIFIED";
  ASSERT_EQ(call(http::delete_, sePath("pre0"), nullptr).status, 200u);
  ASSERT_TRUE(eventually([&] { return seen.get().count(key("pre0")) == 0; })) << "DELETED";
  auto st = r->status();
  EXPECT_EQ(st.lists, 1u) << "no relist needed";
  EXPECT_GE(st.events, 3u);
  EXPECT_EQ(st.objects, 5u);
  EXPECT_TRUE(st.connected);
  r->stop();
}

TEST_F(KubeTest, GoneResourceVersionRelistsAndTheStoreIsRight) {
  createSe("a", "a.test");
  Seen seen;
  auto r = Reflector::create(io_.get_executor(), admin_, options(), record(seen));
  r->start();
  ASSERT_TRUE(eventually([&] { return seen.get().count(key("a")) == 1; }));
  // A long-compacted resourceVersion: the API server answers 410 Gone.
  r->rewatchFrom("1");
  ASSERT_TRUE(eventually([&] { return r->status().relists >= 1; })) << r->status().lastError;
  EXPECT_GE(r->status().gone, 1u);
  createSe("b", "b.test");
  ASSERT_EQ(call(http::delete_, sePath("a"), nullptr).status, 200u);
  ASSERT_TRUE(eventually([&] {
    auto s = seen.get();
    return s.size() == 1 && s.count(key("b")) == 1;
  })) << "after the relist the watch goes on";
  r->stop();
}

TEST_F(KubeTest, ApiServerRestartKeepsTheLastConfigAndResyncs) {
  createSe("old", "old.test");
  std::mutex mu;
  std::shared_ptr<const policy::Config> last;
  int configs = 0;
  ReflectorOptions base = options();
  KubeConfigSource source(io_.get_executor(), admin_, {seType()},
                          [&](std::shared_ptr<const policy::Config> c, const auto&) {
                            std::lock_guard l(mu);
                            last = c;
                            configs++;
                          },
                          base);
  auto names = [&] {
    std::lock_guard l(mu);
    std::vector<std::string> n;
    if (last) for (const auto& se : last->serviceEntries) n.push_back(se.meta.name);
    return n;
  };
  EXPECT_FALSE(source.status().ready);
  source.start();
  ASSERT_TRUE(eventually([&] { return source.status().ready; }));
  EXPECT_EQ(names(), std::vector<std::string>{"old"});

  ASSERT_EQ(std::system((kControlPlane + " stop-apiserver '" + tests::kubeStateDir() + "'").c_str()), 0);
  ASSERT_TRUE(eventually([&] {
    auto st = source.status();
    return !st.connected && st.errors >= 2;  // the broken watch, then a refused reconnect
  })) << "the outage is seen";
  auto during = source.status();
  EXPECT_TRUE(during.ready) << "ready stays: the last snapshot is enforced";
  EXPECT_EQ(names(), std::vector<std::string>{"old"}) << "the last config stays";
  ASSERT_NE(source.current(), nullptr);

  ASSERT_EQ(std::system((kControlPlane + " start '" + tests::kubeStateDir() + "'").c_str()), 0);
  ASSERT_EQ(call(http::delete_, sePath("old"), nullptr).status, 200u);
  createSe("new", "new.test");
  ASSERT_TRUE(eventually([&] { return names() == std::vector<std::string>{"new"}; }))
      << source.status().lastError;
  auto after = source.status();
  EXPECT_TRUE(after.connected);
  EXPECT_GT(after.loads, during.loads);
  source.stop();
}

TEST_F(KubeTest, BadObjectKeepsTheLastGoodConfig) {
  createSe("good", "good.test");
  std::atomic<int> configs = 0;
  KubeConfigSource source(io_.get_executor(), admin_, {seType()},
                          [&](auto, const auto&) { configs++; }, options());
  source.start();
  ASSERT_TRUE(eventually([&] { return source.status().ready; }));
  // The CRD's schema lets this through; the loader refuses it (not a host name).
  createSe("bad", "bad host.test");
  ASSERT_TRUE(eventually([&] { return source.status().loadFailures >= 1; }));
  auto st = source.status();
  EXPECT_NE(st.lastError.find("ServiceEntry/" + ns_ + "/bad"), std::string::npos) << st.lastError;
  ASSERT_EQ(source.current()->serviceEntries.size(), 1u);
  EXPECT_EQ(source.current()->serviceEntries[0].meta.name, "good");
  EXPECT_EQ(configs.load(), 1);
  source.stop();
}

TEST_F(KubeTest, RotatedTokenFileKeepsAServiceAccountClientWorking) {
  // A ServiceAccount that may read ServiceEntries and nothing else.
  std::string sa = "reader", role = "tollgate-test-" + ns_;
  ASSERT_EQ(call(http::post, "/api/v1/namespaces/" + ns_ + "/serviceaccounts",
                 json{{"metadata", {{"name", sa}}}}).status, 201u);
  ASSERT_EQ(call(http::post, "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                 json{{"metadata", {{"name", role}}},
                      {"rules", {{{"apiGroups", {"networking.istio.io"}},
                                  {"resources", {"serviceentries"}},
                                  {"verbs", {"get", "list", "watch"}}}}}}).status, 201u);
  ASSERT_EQ(call(http::post, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                 json{{"metadata", {{"name", role}}},
                      {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", role}}},
                      {"subjects", {{{"kind", "ServiceAccount"}, {"name", sa}, {"namespace", ns_}}}}}).status,
            201u);
  // Two tokens from the TokenRequest API, each bound to a Secret: deleting the Secret revokes it.
  auto token = [&](const std::string& secret) {
    EXPECT_EQ(call(http::post, "/api/v1/namespaces/" + ns_ + "/secrets",
                   json{{"metadata", {{"name", secret}}}, {"type", "Opaque"}}).status, 201u);
    auto r = call(http::post, "/api/v1/namespaces/" + ns_ + "/serviceaccounts/" + sa + "/token",
                  json{{"apiVersion", "authentication.k8s.io/v1"},
                       {"kind", "TokenRequest"},
                       {"spec", {{"expirationSeconds", 3600},
                                 {"boundObjectRef", {{"kind", "Secret"}, {"apiVersion", "v1"}, {"name", secret}}}}}});
    EXPECT_EQ(r.status, 201u) << r.body;
    return json::parse(r.body)["status"]["token"].get<std::string>();
  };
  std::string t1 = token("s1"), t2 = token("s2");
  std::string tokenPath = tests::kubeStateDir() + "/token-" + ns_;
  std::ofstream(tokenPath) << t1 << "\n";

  ClientConfig cfg = adminConfig_;
  cfg.clientCertPem.clear();
  cfg.clientKeyPem.clear();
  cfg.tokenFile = tokenPath;
  auto client = ApiClient::create(cfg);
  ASSERT_TRUE(client) << client.error().message;
  auto secrets = call(http::get, "/api/v1/namespaces/" + ns_ + "/secrets", nullptr, "", *client);
  EXPECT_EQ(secrets.status, 403u) << "RBAC: the role grants no Secrets";

  Seen seen;
  auto r = Reflector::create(io_.get_executor(), *client, options(), record(seen));
  r->start();
  createSe("one", "one.test");
  ASSERT_TRUE(eventually([&] { return seen.get().count(key("one")) == 1; })) << r->status().lastError;

  // Rotation: the new token replaces the file (rename, as the kubelet does), the old one is revoked.
  std::ofstream(tokenPath + ".new") << t2 << "\n";
  fs::rename(tokenPath + ".new", tokenPath);
  ASSERT_EQ(call(http::delete_, "/api/v1/namespaces/" + ns_ + "/secrets/s1", nullptr).status, 200u);
  ClientConfig oldCfg = cfg;
  oldCfg.tokenFile.clear();
  oldCfg.token = t1;
  auto oldClient = *ApiClient::create(oldCfg);
  ASSERT_TRUE(eventually([&] { return call(http::get, sePath(), nullptr, "", oldClient).status == 401; }))
      << "the old token is revoked";

  r->rewatchFrom(r->status().resourceVersion);  // a new request, which must use the new token
  createSe("two", "two.test");
  ASSERT_TRUE(eventually([&] { return seen.get().count(key("two")) == 1; })) << r->status().lastError;
  EXPECT_EQ(call(http::get, sePath(), nullptr, "", *client).status, 200u);
  r->stop();
  call(http::delete_, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/" + role, nullptr);
  call(http::delete_, "/apis/rbac.authorization.k8s.io/v1/clusterroles/" + role, nullptr);
  fs::remove(tokenPath);
}

}  // namespace
}  // namespace tollgate::kube
