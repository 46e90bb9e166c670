// manifests/: what `kubectl apply -k manifests/overlays/<overlay>` applies (kustomize build,
// through manifests/render), checked for what the binaries and the design need: the containers'
// arguments parse with the binaries' own option parsers (both read the API server, in-cluster),
// the mesh config loads, the DaemonSet rolls with the listener handoff (maxSurge 1,
// maxUnavailable 0, no hostPorts), nothing runs privileged, and each role is exactly list/watch
// of what its binary's kubernetes source reads. tests/netns/kube/rbac_test.cc proves the roles
// against the real API server's authorizer.
#include <stdio.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "agent/options.h"
#include "gateway/options.h"
#include "kube/kube_config_source.h"
#include "policy/config_loader.h"
#include "tests/common/command.h"

namespace tollgate {
namespace {

struct Rendered {
  int status = -1;
  std::string text;
  std::vector<YAML::Node> objects;
};

// manifests/render <overlay>; status 3: no kubectl on this machine.
Rendered render(const std::string& overlay) {
  Rendered r;
  auto run = tests::runCommand(std::string(TOLLGATE_SOURCE_DIR "/manifests/render ") + overlay + " 2>&1");
  r.text = std::move(run.output);
  r.status = run.exitCode;
  if (r.status == 0) {
    for (auto& doc : YAML::LoadAll(r.text)) {
      if (doc.IsMap()) r.objects.push_back(doc);
    }
  }
  return r;
}

class ManifestsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    r_ = render(GetParam());
    if (r_.status == 3) GTEST_SKIP() << r_.text;
    ASSERT_EQ(r_.status, 0) << r_.text;
  }

  std::vector<YAML::Node> all(const std::string& kind) const {
    std::vector<YAML::Node> out;
    for (const auto& o : r_.objects) {
      if (o["kind"].as<std::string>() == kind) out.push_back(o);
    }
    return out;
  }
  // The object, or an undefined node (false) when there is none.
  YAML::Node one(const std::string& kind, const std::string& name) const {
    for (const auto& o : all(kind)) {
      if (o["metadata"]["name"].as<std::string>() == name) return o;
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }
  static std::vector<std::string> args(const YAML::Node& container) {
    std::vector<std::string> out;
    for (const auto& a : container["args"]) out.push_back(a.as<std::string>());
    return out;
  }
  static YAML::Node container(const YAML::Node& workload, const std::string& name) {
    for (const auto& c : workload["spec"]["template"]["spec"]["containers"]) {
      if (c["name"].as<std::string>() == name) return c;
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }

  Rendered r_;
};

TEST_P(ManifestsTest, EverythingIsInTheTollgateNamespaceAndNamedByAKustomizeImage) {
  for (const auto& o : r_.objects) {
    const std::string kind = o["kind"].as<std::string>();
    static const std::set<std::string> clusterScoped = {
        "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"};
    if (clusterScoped.contains(kind)) continue;
    EXPECT_EQ(o["metadata"]["namespace"].as<std::string>(""), "tollgate-system")
        << kind << "/" << o["metadata"]["name"].as<std::string>();
  }
  for (const char* kind : {"DaemonSet", "Deployment"}) {
    for (const auto& w : all(kind)) {
      auto spec = w["spec"]["template"]["spec"];
      for (const char* list : {"initContainers", "containers"}) {
        for (const auto& c : spec[list]) {
          const std::string image = c["image"].as<std::string>();
          EXPECT_TRUE(image == "tollgate/agent:0.1.0" || image == "tollgate/gateway:0.1.0")
              << c["name"].as<std::string>() << ": " << image << " (not from an images: entry)";
        }
      }
    }
  }
}

// The mesh settings are one TollgateConfig object, applied on its own (its CRD must be established
// first), not part of any overlay: no ConfigMap carries them any more.
TEST_P(ManifestsTest, TheMeshConfigLoads) {
  const std::string path = TOLLGATE_SOURCE_DIR "/manifests/base/mesh.yaml";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto docs = YAML::LoadAll(text);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0]["kind"].as<std::string>(), "TollgateConfig");
  EXPECT_EQ(docs[0]["apiVersion"].as<std::string>(), "tollgate.io/v1alpha1");
  auto loaded = policy::ConfigLoader::loadString(text, path);
  ASSERT_TRUE(loaded) << loaded.error().front().str();
  ASSERT_TRUE(loaded->config.tollgate);
  ASSERT_EQ(loaded->config.tollgate->gateways.size(), 1u);
  // The gateway address the agents' fence opens is the gateway Service's fixed clusterIP.
  auto svc = one("Service", "tollgate-gateway");
  ASSERT_TRUE(svc);
  EXPECT_EQ(loaded->config.tollgate->gateways[0].address, svc["spec"]["clusterIP"].as<std::string>());
  EXPECT_TRUE(all("ConfigMap").empty()) << "neither binary reads a ConfigMap";
  EXPECT_TRUE(all("TollgateConfig").empty()) << "applied after its CRD, not with it";
}

TEST_P(ManifestsTest, TheAgentDaemonSetRollsWithTheHandoffAndIsNotPrivileged) {
  auto ds = one("DaemonSet", "tollgate-agent");
  if (GetParam() == "gateway") {
    EXPECT_FALSE(ds) << "the gateway overlay installs no agent";
    return;
  }
  ASSERT_TRUE(ds);
  auto rolling = ds["spec"]["updateStrategy"]["rollingUpdate"];
  EXPECT_EQ(rolling["maxSurge"].as<int>(), 1);
  EXPECT_EQ(rolling["maxUnavailable"].as<int>(), 0);
  auto pod = ds["spec"]["template"]["spec"];
  EXPECT_TRUE(pod["hostNetwork"].as<bool>());
  EXPECT_EQ(pod["serviceAccountName"].as<std::string>(), "tollgate-agent");
  auto agent = container(ds, "agent");
  ASSERT_TRUE(agent);
  // With hostNetwork a declared port is a hostPort: the surge pod could not be scheduled.
  for (const auto& c : pod["containers"]) {
    EXPECT_FALSE(c["ports"]) << c["name"].as<std::string>() << " declares ports";
    EXPECT_FALSE(c["securityContext"]["privileged"].as<bool>(false)) << c["name"].as<std::string>();
    EXPECT_EQ(c["securityContext"]["capabilities"]["drop"][0].as<std::string>(), "ALL");
  }
  EXPECT_EQ(agent["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz/ready");
  // Liveness is not readiness: an agent waiting for the API server must not be restarted.
  EXPECT_EQ(agent["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz/live");
  EXPECT_TRUE(agent["resources"]["requests"]["cpu"]);
  // Its config from the API server, in-cluster (its ServiceAccount's token), for the node the
  // kubelet runs it on: NODE_NAME from spec.nodeName is --node-name's default.
  std::string nodeNameFrom;
  for (const auto& e : agent["env"]) {
    if (e["name"].as<std::string>() == "NODE_NAME") {
      nodeNameFrom = e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>("");
    }
  }
  EXPECT_EQ(nodeNameFrom, "spec.nodeName");
  ::setenv("NODE_NAME", "node-a", 1);  // what the kubelet puts there
  auto parsed = agent::parseOptions(args(agent));
  ::unsetenv("NODE_NAME");
  ASSERT_TRUE(parsed) << parsed.error().str();
  EXPECT_EQ(parsed->redirectMode, GetParam());
  EXPECT_EQ(parsed->configSource, "kubernetes");
  EXPECT_TRUE(parsed->kubeconfig.empty());
  EXPECT_TRUE(parsed->configDir.empty());
  EXPECT_EQ(parsed->nodeName, "node-a");
  EXPECT_TRUE(pod["automountServiceAccountToken"].as<bool>(true));
  auto sa = one("ServiceAccount", "tollgate-agent");
  ASSERT_TRUE(sa);
  EXPECT_TRUE(sa["automountServiceAccountToken"].as<bool>(true));
  for (const auto& v : pod["volumes"]) {
    EXPECT_FALSE(v["configMap"]) << v["name"].as<std::string>();
  }
  std::set<std::string> caps;
  for (const auto& c : agent["securityContext"]["capabilities"]["add"]) caps.insert(c.as<std::string>());
  EXPECT_EQ(caps.contains("BPF"), GetParam() == "ebpf");
  // install-cni chains the plugin before the agent starts (fail closed from the first pod).
  ASSERT_EQ(pod["initContainers"].size(), 1u);
  auto install = pod["initContainers"][0];
  ASSERT_EQ(install["command"][1].as<std::string>(), "install-cni");
  EXPECT_NE(std::find(args(install).begin(), args(install).end(), "--fail-mode=closed"),
            args(install).end());
}

TEST_P(ManifestsTest, TheGatewayDeploymentParsesAndRunsAsAnOrdinaryPod) {
  auto dep = one("Deployment", "tollgate-gateway");
  ASSERT_TRUE(dep);
  auto gw = container(dep, "gateway");
  ASSERT_TRUE(gw);
  // $(POD_NAMESPACE) is expanded by the kubelet; the parser sees the namespace.
  std::vector<std::string> a = {"tollgate-gateway"};  // its parser skips argv[0]
  for (auto s : args(gw)) {
    if (auto at = s.find("$(POD_NAMESPACE)"); at != std::string::npos) {
      s.replace(at, 16, "tollgate-system");
    }
    a.push_back(s);
  }
  auto parsed = gateway::parseOptions(a);
  ASSERT_TRUE(parsed) << parsed.error().str();
  // Its config from the API server, in-cluster (its ServiceAccount's token), no config volume.
  EXPECT_EQ(parsed->configSource, "kubernetes");
  EXPECT_TRUE(parsed->kubeconfig.empty());
  EXPECT_TRUE(parsed->configDir.empty());
  EXPECT_TRUE(dep["spec"]["template"]["spec"]["automountServiceAccountToken"].as<bool>(true));
  EXPECT_EQ(dep["spec"]["template"]["spec"]["serviceAccountName"].as<std::string>(), "tollgate-gateway");
  for (const auto& v : dep["spec"]["template"]["spec"]["volumes"]) {
    EXPECT_FALSE(v["configMap"]) << v["name"].as<std::string>();
  }
  auto sc = gw["securityContext"];
  EXPECT_TRUE(sc["runAsNonRoot"].as<bool>());
  EXPECT_FALSE(sc["allowPrivilegeEscalation"].as<bool>());
  EXPECT_FALSE(sc["capabilities"]["add"]);
  EXPECT_FALSE(dep["spec"]["template"]["spec"]["hostNetwork"].as<bool>(false));
  auto pdb = one("PodDisruptionBudget", "tollgate-gateway");
  ASSERT_TRUE(pdb);
  EXPECT_EQ(pdb["spec"]["minAvailable"].as<int>(), 1);
}

TEST_P(ManifestsTest, RolesGrantOnlyReadsOfWhatTheBinariesRead) {
  const std::set<std::string> readVerbs = {"get", "list", "watch"};
  for (const char* kind : {"ClusterRole", "Role"}) {
    for (const auto& role : all(kind)) {
      const std::string name = role["metadata"]["name"].as<std::string>();
      for (const auto& rule : role["rules"]) {
        for (const auto& v : rule["verbs"]) {
          EXPECT_TRUE(readVerbs.contains(v.as<std::string>())) << name << ": " << v.as<std::string>();
        }
        for (const auto& res : rule["resources"]) {
          const std::string r = res.as<std::string>();
          EXPECT_NE(r, "secrets") << name;
          EXPECT_NE(r, "*") << name;
        }
      }
    }
  }
}

// Each binary's ClusterRole is exactly list+watch of what its kubernetes source lists, and it
// has no other role.
std::set<std::string> grants(const YAML::Node& role) {
  std::set<std::string> granted;
  for (const auto& rule : role["rules"]) {
    for (const auto& g : rule["apiGroups"]) {
      for (const auto& r : rule["resources"]) {
        for (const auto& v : rule["verbs"]) {
          granted.insert(g.as<std::string>() + "/" + r.as<std::string>() + ":" + v.as<std::string>());
        }
      }
    }
  }
  return granted;
}
std::set<std::string> listWatch(const std::vector<kube::ResourceType>& resources) {
  std::set<std::string> wanted;
  for (const auto& r : resources) {
    for (const char* v : {"list", "watch"}) wanted.insert(r.group + "/" + r.plural + ":" + v);
  }
  return wanted;
}

TEST_P(ManifestsTest, EachRoleGrantsExactlyWhatItsSourceWatches) {
  struct Binary {
    std::string name;
    std::vector<kube::ResourceType> resources;
  };
  std::vector<Binary> binaries = {{"tollgate-gateway", kube::KubeConfigSource::gatewayResources()}};
  if (GetParam() != "gateway") {
    binaries.push_back({"tollgate-agent", kube::KubeConfigSource::agentResources("node-a")});
  }
  for (const auto& b : binaries) {
    auto role = one("ClusterRole", b.name);
    ASSERT_TRUE(role) << b.name;
    EXPECT_EQ(grants(role), listWatch(b.resources)) << b.name;
    for (const char* kind : {"Role", "RoleBinding"}) {
      for (const auto& o : all(kind)) {
        const std::string name = o["metadata"]["name"].as<std::string>();
        EXPECT_EQ(name.find(b.name), std::string::npos) << kind << " " << name;
      }
    }
  }
}

// Real schema and admission: `kubectl apply --dry-run=server -k` against the lab's API server
// (ctest's kube_control_plane fixture; run by hand, the test skips without it). The namespace is
// created for real first: a dry run does not create it for the objects that live in it.
TEST_P(ManifestsTest, TheApiServerAcceptsEveryObjectInADryRun) {
  const char* state = std::getenv("TOLLGATE_KUBE_STATE");
  if (!state || !*state) GTEST_SKIP() << "no TOLLGATE_KUBE_STATE (ctest's kube_control_plane fixture)";
  const std::string kubeconfig = std::string(state) + "/admin.kubeconfig";
  std::string kubectl = std::string(TOLLGATE_SOURCE_DIR "/manifests/render --kubectl");
  auto run = [](const std::string& cmd, std::string* out) {
    auto r = tests::runCommand(cmd + " 2>&1");
    *out += r.output;
    return r.exitCode;
  };
  std::string path;
  ASSERT_EQ(run(kubectl, &path), 0) << path;
  while (!path.empty() && path.back() == '\n') path.pop_back();
  const std::string k = path + " --kubeconfig " + kubeconfig;
  std::string out;
  ASSERT_EQ(run(k + " create namespace tollgate-system --dry-run=client -o yaml | " + k +
                    " apply -f -",
                &out),
            0)
      << out;
  out.clear();
  int rc = run(k + " apply --dry-run=server -k " TOLLGATE_SOURCE_DIR "/manifests/overlays/" +
                   GetParam(),
               &out);
  ASSERT_EQ(rc, 0) << out;
  // One line per object, each "(server dry run)".
  size_t lines = 0;
  for (size_t at = 0; (at = out.find("(server dry run)", at)) != std::string::npos; ++at) lines++;
  EXPECT_EQ(lines, r_.objects.size()) << out;
  // The TollgateConfig, applied on its own, passes the CRD's schema.
  out.clear();
  ASSERT_EQ(
      run(k + " apply --dry-run=server -f " TOLLGATE_SOURCE_DIR "/manifests/base/mesh.yaml", &out), 0)
      << out;
  EXPECT_NE(out.find("tollgateconfig.tollgate.io/default"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Overlays, ManifestsTest,
                         ::testing::Values("nftables", "ebpf", "gateway"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tollgate
