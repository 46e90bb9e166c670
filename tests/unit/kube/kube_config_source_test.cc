#include "kube/kube_config_source.h"

#include <gtest/gtest.h>

namespace tollgate::kube {
namespace {

using nlohmann::json;

// Objects as the API server returns them (metadata it adds included).
json serviceEntry(const std::string& ns, const std::string& name, json port) {
  return {{"apiVersion", "networking.istio.io/v1"},
          {"kind", "ServiceEntry"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"uid", "0d6b0c9e-1111-2222-3333-444455556666"},
            {"resourceVersion", "1234"},
            {"generation", 1},
            {"creationTimestamp", "2026-12-07T11:00:00Z"},
            {"labels", {{"app", "x"}}},
            {"annotations", {{"note", "caf\xc3\xa9 \"q\"\n"}}}}},
          {"spec",
           {{"hosts", {name + ".test"}},
            {"ports", {{{"number", port}, {"name", "http"}, {"protocol", "HTTP"}}}},
            {"location", "MESH_EXTERNAL"},
            {"resolution", "DNS"}}}};
}

std::shared_ptr<const Reflector::Store> store(std::vector<json> objs) {
  auto s = std::make_shared<Reflector::Store>();
  for (auto& o : objs) (*s)[objectKey(o)] = o;
  return s;
}

TEST(KubeConfigSourceTest, ApiJsonRoundTripsThroughTheLoader) {
  json ns = {{"apiVersion", "v1"},
             {"kind", "Namespace"},
             {"metadata", {{"name", "team-a"}, {"labels", {{"kubernetes.io/metadata.name", "team-a"}}}}},
             {"spec", {{"finalizers", {"kubernetes"}}}},
             {"status", {{"phase", "Active"}}}};
  json tgc = {{"apiVersion", "tollgate.io/v1alpha1"},
              {"kind", "TollgateConfig"},
              {"metadata", {{"name", "mesh"}}},
              {"spec", {{"outboundTrafficPolicy", {{"mode", "ALLOW_ANY"}}}, {"packetMark", "0x10"}}}};
  auto docs = KubeConfigSource::render({store({tgc}), store({ns}),
                                        store({serviceEntry("team-a", "httpbin", 80),
                                               serviceEntry("team-a", "wiki", 443)})});
  ASSERT_EQ(docs.objects.size(), 4u);
  EXPECT_EQ(docs.objects[0], "TollgateConfig/mesh");
  EXPECT_EQ(docs.objects[2], "ServiceEntry/team-a/httpbin");
  auto r = policy::ConfigLoader::loadString(docs.text, "kubernetes");
  ASSERT_TRUE(r) << (r ? "" : r.error().front().str());
  ASSERT_EQ(r->config.serviceEntries.size(), 2u);
  const auto& se = r->config.serviceEntries[0];
  EXPECT_EQ(se.meta.name, "httpbin");
  EXPECT_EQ(se.meta.ns, "team-a");
  EXPECT_EQ(se.meta.labels.at("app"), "x");
  EXPECT_EQ(se.hosts, std::vector<std::string>{"httpbin.test"});
  ASSERT_EQ(se.ports.size(), 1u);
  EXPECT_EQ(se.ports[0].number, 80);
  EXPECT_EQ(r->config.serviceEntries[1].meta.name, "wiki");
  EXPECT_EQ(r->config.serviceEntries[1].meta.annotations.at("note"), "caf\xc3\xa9 \"q\"\n");
  ASSERT_EQ(r->config.namespaces.size(), 1u);
  EXPECT_EQ(r->config.namespaces[0].meta.name, "team-a");
  ASSERT_TRUE(r->config.tollgate);
  EXPECT_EQ(r->config.tollgate->outboundMode, policy::OutboundMode::AllowAny);
  EXPECT_EQ(r->config.tollgate->packetMark, 0x10u);
}

TEST(KubeConfigSourceTest, DiagnosticsNameTheObject) {
  auto docs = KubeConfigSource::render(
      {store({serviceEntry("default", "good", 80), serviceEntry("team-b", "bad", 70000)})});
  auto r = policy::ConfigLoader::loadString(docs.text, "kubernetes");
  ASSERT_FALSE(r);
  auto diags = r.error();
  KubeConfigSource::nameDiagnostics(diags, docs);
  ASSERT_FALSE(diags.empty());
  EXPECT_EQ(diags[0].object, "ServiceEntry/team-b/bad");
  EXPECT_EQ(diags[0].field, "spec.ports[0].number");
  EXPECT_EQ(diags[0].str().rfind("kubernetes: ServiceEntry/team-b/bad: spec.ports[0].number:", 0), 0u)
      << diags[0].str();
}

TEST(KubeConfigSourceTest, AgentAndGatewayResources) {
  auto agent = KubeConfigSource::agentResources("node-1");
  std::vector<std::string> names;
  for (const auto& r : agent) names.push_back(r.name());
  EXPECT_EQ(names, (std::vector<std::string>{"tollgateconfigs.tollgate.io", "namespaces", "pods",
                                             "serviceentries.networking.istio.io",
                                             "destinationrules.networking.istio.io",
                                             "sidecars.networking.istio.io",
                                             "networkpolicies.networking.k8s.io"}));
  EXPECT_EQ(agent[2].fieldSelector, "spec.nodeName=node-1");
  EXPECT_EQ(agent[2].collectionPath(), "/api/v1/pods");
  EXPECT_EQ(agent[3].collectionPath(), "/apis/networking.istio.io/v1/serviceentries");
  names.clear();
  for (const auto& r : KubeConfigSource::gatewayResources()) {
    names.push_back(r.name());
    EXPECT_TRUE(r.labelSelector.empty() && r.fieldSelector.empty()) << r.name();
  }
  EXPECT_EQ(names, (std::vector<std::string>{"tollgateconfigs.tollgate.io",
                                             "serviceentries.networking.istio.io",
                                             "destinationrules.networking.istio.io",
                                             "sidecars.networking.istio.io",
                                             "authorizationpolicies.security.istio.io"}));
  EXPECT_EQ(urlEncode("spec.nodeName=node 1,a/b"), "spec.nodeName%3Dnode%201%2Ca%2Fb");
}

}  // namespace
}  // namespace tollgate::kube
