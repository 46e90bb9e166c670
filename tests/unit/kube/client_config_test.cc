#include "kube/client_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace tollgate::kube {
namespace {

std::string tempDir() {
  auto d = std::filesystem::temp_directory_path() / ("kubecfg-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(d);
  return d.string();
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

constexpr const char* kTwoContexts = R"(apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Q0EtUEVN
- name: v6
  cluster: {server: "https://[fd00::1]:8443/", certificate-authority: ca.pem}
users:
- name: admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
- name: robot
  user: {tokenFile: token}
contexts:
- name: a
  context: {cluster: lab, user: admin, namespace: team-a}
- name: b
  context: {cluster: v6, user: robot}
current-context: a
)";

TEST(KubeconfigTest, CurrentContextWithEmbeddedData) {
  auto c = parseKubeconfig(kTwoContexts, "/x/kubeconfig");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_EQ(c->port, 6443);
  EXPECT_EQ(c->caPem, "CA-PEM");
  EXPECT_EQ(c->clientCertPem, "CERT");
  EXPECT_EQ(c->clientKeyPem, "KEY");
  EXPECT_EQ(c->ns, "team-a");
  EXPECT_TRUE(c->tokenFile.empty());
}

TEST(KubeconfigTest, NamedContextWithFilesRelativeToTheKubeconfig) {
  auto dir = tempDir();
  write(dir + "/ca.pem", "FILE-CA");
  write(dir + "/config", kTwoContexts);
  auto c = loadKubeconfig(dir + "/config", "b");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->host, "fd00::1");
  EXPECT_EQ(c->port, 8443);
  EXPECT_EQ(c->caPem, "FILE-CA");
  EXPECT_EQ(c->tokenFile, dir + "/token");
  std::filesystem::remove_all(dir);
}

struct Bad {
  const char* text;
  const char* context;
  const char* expected;  // part of the error
};

TEST(KubeconfigTest, BadInputGetsAClearError) {
  const Bad cases[] = {
      {"[1, 2", "", "not YAML"},
      {"- a\n- b\n", "", "not a map"},
      {"clusters: []\n", "", "no current-context"},
      {kTwoContexts, "nope", "contexts: no entry named \"nope\""},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: "
       "[{name: c, cluster: {server: 'http://h'}}]\n",
       "", "must be an https:// URL"},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: "
       "[{name: c, cluster: {server: 'https://h:99999'}}]\n",
       "", "port must be 1-65535"},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: "
       "[{name: c, cluster: {server: 'https://h', certificate-authority-data: '@@@'}}]\n",
       "", "certificate-authority-data: not base64"},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: "
       "[{name: c, cluster: {server: 'https://h'}}]\nusers: [{name: u, user: {client-certificate-data: "
       "QQ==}}]\n",
       "", "client-certificate and client-key go together"},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: "
       "[{name: c, cluster: {server: 'https://h'}}]\nusers: [{name: u, user: {}}]\n",
       "", "has no credentials"},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: "
       "[{name: c, cluster: {server: 'https://h'}}]\nusers: [{name: u, user: {exec: {command: x}}}]\n",
       "", "exec and auth-provider credentials are not supported"},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: "
       "[{name: c, cluster: {server: 'https://h', certificate-authority: /nonexistent/ca}}]\n",
       "", "certificate-authority: cannot open /nonexistent/ca"},
  };
  for (const auto& b : cases) {
    auto c = parseKubeconfig(b.text, "/etc/kc", b.context);
    ASSERT_FALSE(c) << b.text;
    EXPECT_NE(c.error().message.find(b.expected), std::string::npos) << c.error().message;
    EXPECT_NE(c.error().message.find("/etc/kc"), std::string::npos) << c.error().message;
  }
  auto missing = loadKubeconfig("/nonexistent/kubeconfig");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot open /nonexistent/kubeconfig"), std::string::npos);
}

TEST(InClusterConfigTest, ReadsTheServiceAccountDirectory) {
  auto dir = tempDir();
  write(dir + "/ca.crt", "SA-CA");
  write(dir + "/token", "tok\n");
  write(dir + "/namespace", "tollgate-system");
  auto c = inClusterConfig({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}, dir);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->host, "10.96.0.1");
  EXPECT_EQ(c->port, 443);
  EXPECT_EQ(c->caPem, "SA-CA");
  EXPECT_EQ(c->tokenFile, dir + "/token");
  EXPECT_EQ(c->ns, "tollgate-system");
  auto v6 = inClusterConfig({{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "6443"}}, dir);
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6->host, "fd00::1");

  auto noEnv = inClusterConfig({}, dir);
  ASSERT_FALSE(noEnv);
  EXPECT_NE(noEnv.error().message.find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  std::filesystem::remove(dir + "/token");
  auto noToken = inClusterConfig({{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}}, dir);
  ASSERT_FALSE(noToken);
  EXPECT_NE(noToken.error().message.find(dir + "/token"), std::string::npos) << noToken.error().message;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tollgate::kube
