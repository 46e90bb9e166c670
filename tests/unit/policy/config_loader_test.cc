#include "policy/config_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace tollgate::policy {
namespace {

namespace fs = std::filesystem;

std::string dump(const std::vector<Diagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) out += d.str() + "\n";
  return out;
}

LoadResult mustLoad(std::string_view yaml) {
  auto r = ConfigLoader::loadString(yaml, "test.yaml");
  EXPECT_TRUE(r.has_value()) << dump(r.error());
  return r ? *r : LoadResult{};
}

std::vector<Diagnostic> mustFail(std::string_view yaml) {
  auto r = ConfigLoader::loadString(yaml, "test.yaml");
  EXPECT_FALSE(r.has_value()) << "loaded, expected errors";
  return r ? std::vector<Diagnostic>{} : r.error();
}

// The single error of a load, as its one-line rendering.
std::string onlyError(std::string_view yaml) {
  auto errors = mustFail(yaml);
  EXPECT_EQ(errors.size(), 1u) << dump(errors);
  return errors.empty() ? "" : errors.front().str();
}

// ---- model.cc -------------------------------------------------------------------------------

TEST(ModelTest, ObjectRefNamesKindNamespaceAndName) {
  ObjectMeta m;
  m.kind = "ServiceEntry";
  m.name = "httpbin";
  m.ns = "default";
  EXPECT_EQ(objectRef(m), "ServiceEntry/default/httpbin");
  m.kind = "Namespace";
  m.ns = "";
  EXPECT_EQ(objectRef(m), "Namespace/httpbin");
  m.name = "";
  EXPECT_EQ(objectRef(m), "Namespace/<unnamed>");
}

TEST(ModelTest, ToStringUsesTheYamlSpelling) {
  EXPECT_EQ(toString(PortProtocol::Http2), "HTTP2");
  EXPECT_EQ(toString(TlsMode::IstioMutual), "ISTIO_MUTUAL");
  EXPECT_EQ(toString(OutboundMode::RegistryOnly), "REGISTRY_ONLY");
  EXPECT_EQ(toString(L4Protocol::Sctp), "SCTP");
  EXPECT_EQ(toString(Resolution::DnsRoundRobin), "DNS_ROUND_ROBIN");
  EXPECT_EQ(toString(Location::MeshInternal), "MESH_INTERNAL");
}

TEST(DiagnosticTest, StrRendersFileLineObjectField) {
  Diagnostic d{Diagnostic::Severity::Error,
               "a.yaml",
               7,
               "ServiceEntry/default/httpbin",
               "spec.ports[0].number",
               "must be 1-65535, got 70000"};
  EXPECT_EQ(d.str(),
            "a.yaml:7: ServiceEntry/default/httpbin: spec.ports[0].number: must be 1-65535, got "
            "70000");
}

// ---- ServiceEntry ---------------------------------------------------------------------------

TEST(ConfigLoaderTest, ServiceEntryAllFields) {
  auto r = mustLoad(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
  labels: {app: httpbin}
  annotations:
    tollgate.io/gateway: egress-b
spec:
  hosts: [httpbin.org, "*.example.com"]
  addresses: [198.18.0.10, 10.1.0.0/16, "2001:db8::/32"]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: https, targetPort: 8443}
  - {number: 5000, name: raw}
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 198.18.0.10
    ports: {http: 8080}
    labels: {version: v1}
    network: net1
    locality: eu/west
    weight: 3
  exportTo: [".", team-b]
  workloadSelector:
    labels: {app: client}
)");
  ASSERT_EQ(r.config.serviceEntries.size(), 1u);
  const auto& se = r.config.serviceEntries[0];
  EXPECT_EQ(objectRef(se.meta), "ServiceEntry/default/httpbin");
  EXPECT_EQ(se.meta.apiVersion, "networking.istio.io/v1");
  EXPECT_EQ(se.meta.source.file, "test.yaml");
  EXPECT_EQ(se.meta.source.line, 1);
  EXPECT_EQ(se.meta.labels.at("app"), "httpbin");
  EXPECT_EQ(se.meta.annotations.at("tollgate.io/gateway"), "egress-b");
  EXPECT_EQ(se.hosts, (std::vector<std::string>{"httpbin.org", "*.example.com"}));
  ASSERT_EQ(se.addresses.size(), 3u);
  EXPECT_EQ(se.addresses[0].str(), "198.18.0.10/32");
  EXPECT_EQ(se.addresses[1].str(), "10.1.0.0/16");
  EXPECT_EQ(se.addresses[2].str(), "2001:db8::/32");
  ASSERT_EQ(se.ports.size(), 3u);
  EXPECT_EQ(se.ports[0].number, 80u);
  EXPECT_EQ(se.ports[0].protocol, PortProtocol::Http);
  EXPECT_EQ(se.ports[1].protocol, PortProtocol::Https);  // case-insensitive, as Istio
  EXPECT_EQ(se.ports[1].protocolName, "https");
  EXPECT_EQ(se.ports[1].targetPort, 8443u);
  EXPECT_EQ(se.ports[2].protocol, PortProtocol::Unspecified);
  EXPECT_EQ(se.ports[2].targetPort, 0u);
  EXPECT_EQ(se.location, Location::MeshInternal);
  EXPECT_EQ(se.resolution, Resolution::Static);
  ASSERT_EQ(se.endpoints.size(), 1u);
  EXPECT_EQ(se.endpoints[0].address, "198.18.0.10");
  EXPECT_EQ(se.endpoints[0].ports.at("http"), 8080u);
  EXPECT_EQ(se.endpoints[0].labels.at("version"), "v1");
  EXPECT_EQ(se.endpoints[0].network, "net1");
  EXPECT_EQ(se.endpoints[0].locality, "eu/west");
  EXPECT_EQ(se.endpoints[0].weight, 3u);
  EXPECT_EQ(se.exportTo, (std::vector<std::string>{".", "team-b"}));
  ASSERT_TRUE(se.workloadSelector);
  EXPECT_EQ(se.workloadSelector->at("app"), "client");
}

TEST(ConfigLoaderTest, ServiceEntryDefaultsAndApiVersions) {
  for (std::string v : {"v1", "v1beta1", "v1alpha3"}) {
    auto r = mustLoad("apiVersion: networking.istio.io/" + v +
                      "\nkind: ServiceEntry\nmetadata: {name: a, namespace: team-b}\n"
                      "spec: {hosts: [a.example]}\n");
    ASSERT_EQ(r.config.serviceEntries.size(), 1u) << v;
    const auto& se = r.config.serviceEntries[0];
    EXPECT_EQ(se.meta.ns, "team-b");
    EXPECT_EQ(se.location, Location::MeshExternal);
    EXPECT_EQ(se.resolution, Resolution::None);
    EXPECT_FALSE(se.workloadSelector);
    EXPECT_TRUE(se.exportTo.empty());
  }
  EXPECT_EQ(onlyError("apiVersion: networking.istio.io/v2\nkind: ServiceEntry\n"
                      "metadata: {name: a}\nspec: {hosts: [a.example]}\n"),
            "test.yaml:1: ServiceEntry/a: apiVersion: networking.istio.io/v2 is not supported for "
            "kind ServiceEntry");
}

TEST(ConfigLoaderTest, ServiceEntryHostWildcardsMustBeLeading) {
  auto errors = mustFail(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: w}
spec:
  hosts:
  - "*.ok.example"
  - "foo.*.example"
  - "*"
  - "bad host"
)");
  ASSERT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_EQ(errors[0].line, 7);
  EXPECT_EQ(errors[0].field, "spec.hosts[1]");
  EXPECT_EQ(errors[1].field, "spec.hosts[2]");
  EXPECT_EQ(errors[2].field, "spec.hosts[3]");
}

TEST(ConfigLoaderTest, ServiceEntryStaticEndpointsMustBeIps) {
  EXPECT_EQ(onlyError(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s}
spec:
  hosts: [s.example]
  resolution: STATIC
  endpoints:
  - address: s.example
)"),
            "test.yaml:8: ServiceEntry/default/s: spec.endpoints[0].address: must be an IP address "
            "with resolution STATIC, got \"s.example\"");
}

// ---- DestinationRule ------------------------------------------------------------------------

TEST(ConfigLoaderTest, DestinationRuleTlsPortLevelAndSubsets) {
  auto r = mustLoad(R"(apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: mtls, namespace: istio-system}
spec:
  host: mtls.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    tls:
      mode: MUTUAL
      sni: mtls.test
      subjectAltNames: [mtls.test, spiffe://x/y]
      caCertificates: /etc/ca.pem
      clientCertificate: /etc/cert.pem
      privateKey: /etc/key.pem
      credentialName: client-cred
      insecureSkipVerify: true
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE}
    - port: {number: 80}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL}
  - name: v2
  exportTo: ["*"]
  workloadSelector:
    matchLabels: {app: client}
)");
  ASSERT_EQ(r.config.destinationRules.size(), 1u);
  const auto& dr = r.config.destinationRules[0];
  EXPECT_EQ(objectRef(dr.meta), "DestinationRule/istio-system/mtls");
  EXPECT_EQ(dr.host, "mtls.test");
  ASSERT_TRUE(dr.trafficPolicy && dr.trafficPolicy->tls);
  const auto& tls = *dr.trafficPolicy->tls;
  EXPECT_EQ(tls.mode, TlsMode::Mutual);
  EXPECT_EQ(tls.sni, "mtls.test");
  EXPECT_EQ(tls.subjectAltNames, (std::vector<std::string>{"mtls.test", "spiffe://x/y"}));
  EXPECT_EQ(tls.caCertificates, "/etc/ca.pem");
  EXPECT_EQ(tls.clientCertificate, "/etc/cert.pem");
  EXPECT_EQ(tls.privateKey, "/etc/key.pem");
  EXPECT_EQ(tls.credentialName, "client-cred");
  EXPECT_TRUE(tls.insecureSkipVerify);
  ASSERT_EQ(dr.trafficPolicy->portLevelSettings.size(), 2u);
  EXPECT_EQ(dr.trafficPolicy->portLevelSettings[0].port, 443u);
  ASSERT_TRUE(dr.trafficPolicy->portLevelSettings[0].tls);
  EXPECT_EQ(dr.trafficPolicy->portLevelSettings[0].tls->mode, TlsMode::Simple);
  EXPECT_FALSE(dr.trafficPolicy->portLevelSettings[1].tls);
  ASSERT_EQ(dr.subsets.size(), 2u);
  EXPECT_EQ(dr.subsets[0].name, "v1");
  EXPECT_EQ(dr.subsets[0].labels.at("version"), "v1");
  ASSERT_TRUE(dr.subsets[0].trafficPolicy && dr.subsets[0].trafficPolicy->tls);
  EXPECT_EQ(dr.subsets[0].trafficPolicy->tls->mode, TlsMode::IstioMutual);
  EXPECT_FALSE(dr.subsets[1].trafficPolicy);
  EXPECT_EQ(dr.exportTo, (std::vector<std::string>{"*"}));
  ASSERT_TRUE(dr.workloadSelector);
  EXPECT_EQ(dr.workloadSelector->at("app"), "client");
}

TEST(ConfigLoaderTest, DestinationRuleErrors) {
  auto errors = mustFail(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d}
spec:
  trafficPolicy:
    tls: {mode: STRICT, insecureSkipVerify: maybe}
    portLevelSettings:
    - tls: {mode: SIMPLE}
)");
  ASSERT_EQ(errors.size(), 4u) << dump(errors);
  EXPECT_EQ(errors[0].str(), "test.yaml:5: DestinationRule/default/d: spec.host: is required");
  EXPECT_EQ(errors[1].field, "spec.trafficPolicy.tls.mode");
  EXPECT_EQ(errors[1].message,
            "must be one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL, got \"STRICT\"");
  EXPECT_EQ(errors[2].field, "spec.trafficPolicy.tls.insecureSkipVerify");
  EXPECT_EQ(errors[3].str(),
            "test.yaml:8: DestinationRule/default/d: "
            "spec.trafficPolicy.portLevelSettings[0].port.number: is required");
}

// ---- Sidecar --------------------------------------------------------------------------------

TEST(ConfigLoaderTest, SidecarFields) {
  auto r = mustLoad(R"(apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-b}
spec:
  workloadSelector:
    labels: {app: client}
  egress:
  - port: {number: 443, protocol: TLS, name: tls}
    hosts: ["./*.example.com", "istio-system/*"]
  - hosts: ["*/httpbin.org", "~/*"]
  outboundTrafficPolicy:
    mode: ALLOW_ANY
)");
  ASSERT_EQ(r.config.sidecars.size(), 1u);
  const auto& sc = r.config.sidecars[0];
  ASSERT_TRUE(sc.workloadSelector);
  EXPECT_EQ(sc.workloadSelector->at("app"), "client");
  ASSERT_EQ(sc.egress.size(), 2u);
  EXPECT_EQ(sc.egress[0].port, 443u);
  EXPECT_EQ(sc.egress[0].hosts, (std::vector<std::string>{"./*.example.com", "istio-system/*"}));
  EXPECT_FALSE(sc.egress[1].port);
  EXPECT_EQ(sc.outboundMode, OutboundMode::AllowAny);

  auto bare = mustLoad(
      "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n"
      "spec: {}\n");
  ASSERT_EQ(bare.config.sidecars.size(), 1u);
  EXPECT_FALSE(bare.config.sidecars[0].workloadSelector);
  EXPECT_FALSE(bare.config.sidecars[0].outboundMode);
}

TEST(ConfigLoaderTest, SidecarHostsMustBeNamespaceSlashHost) {
  auto errors = mustFail(R"(apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: s}
spec:
  egress:
  - hosts:
    - httpbin.org
    - "ns/"
    - "./a/b"
    - "./ok.example"
  - port: {number: 99999}
)");
  ASSERT_EQ(errors.size(), 5u) << dump(errors);
  EXPECT_EQ(errors[0].str(),
            "test.yaml:7: Sidecar/default/s: spec.egress[0].hosts[0]: must be \"namespace/host\" "
            "(e.g. \"./*\", \"istio-system/*\")");
  EXPECT_EQ(errors[1].field, "spec.egress[0].hosts[1]");
  EXPECT_EQ(errors[2].field, "spec.egress[0].hosts[2]");
  EXPECT_EQ(errors[3].field, "spec.egress[1].port.number");
  EXPECT_EQ(errors[4].field, "spec.egress[1].hosts");
  EXPECT_EQ(errors[4].message, "is required");
}

// ---- NetworkPolicy --------------------------------------------------------------------------

TEST(ConfigLoaderTest, NetworkPolicyPeersAndPorts) {
  auto r = mustLoad(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress, namespace: team-b}
spec:
  podSelector:
    matchLabels: {app: client}
  policyTypes: [Egress]
  egress:
  - to:
    - podSelector: {matchLabels: {app: db}}
    - namespaceSelector: {}
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {}
    - ipBlock:
        cidr: 10.0.0.0/8
        except: [10.1.0.0/16]
    ports:
    - port: 5432
    - protocol: UDP
      port: dns
    - port: 8000
      endPort: 8100
    - protocol: SCTP
  - {}
)");
  ASSERT_EQ(r.config.networkPolicies.size(), 1u);
  const auto& np = r.config.networkPolicies[0];
  EXPECT_EQ(objectRef(np.meta), "NetworkPolicy/team-b/egress");
  EXPECT_EQ(np.podSelector.matchLabels.at("app"), "client");
  EXPECT_FALSE(np.policyTypesIngress);
  EXPECT_TRUE(np.policyTypesEgress);
  ASSERT_EQ(np.egress.size(), 2u);
  const auto& to = np.egress[0].to;
  ASSERT_EQ(to.size(), 4u);
  ASSERT_TRUE(to[0].podSelector);
  EXPECT_EQ(to[0].podSelector->matchLabels.at("app"), "db");
  EXPECT_FALSE(to[0].namespaceSelector);
  ASSERT_TRUE(to[1].namespaceSelector);  // present and empty: every namespace
  EXPECT_TRUE(to[1].namespaceSelector->matchLabels.empty());
  EXPECT_FALSE(to[1].podSelector);  // absent: not the same as {}
  ASSERT_TRUE(to[2].namespaceSelector && to[2].podSelector);
  EXPECT_TRUE(to[2].podSelector->matchLabels.empty());
  ASSERT_TRUE(to[3].ipBlock);
  EXPECT_EQ(to[3].ipBlock->cidr.str(), "10.0.0.0/8");
  ASSERT_EQ(to[3].ipBlock->except.size(), 1u);
  EXPECT_EQ(to[3].ipBlock->except[0].str(), "10.1.0.0/16");
  const auto& ports = np.egress[0].ports;
  ASSERT_EQ(ports.size(), 4u);
  EXPECT_EQ(ports[0].protocol, L4Protocol::Tcp);  // default
  EXPECT_EQ(std::get<uint32_t>(*ports[0].port), 5432u);
  EXPECT_EQ(ports[1].protocol, L4Protocol::Udp);
  EXPECT_EQ(std::get<std::string>(*ports[1].port), "dns");
  EXPECT_EQ(std::get<uint32_t>(*ports[2].port), 8000u);
  EXPECT_EQ(ports[2].endPort, 8100u);
  EXPECT_EQ(ports[3].protocol, L4Protocol::Sctp);
  EXPECT_FALSE(ports[3].port);
  EXPECT_TRUE(np.egress[1].to.empty());
  EXPECT_TRUE(np.egress[1].ports.empty());
}

TEST(ConfigLoaderTest, NetworkPolicyPolicyTypesDefaulting) {
  auto types = [](std::string spec) {
    auto r = mustLoad(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\n"
        "spec:\n  podSelector: {}\n" +
        spec);
    EXPECT_EQ(r.config.networkPolicies.size(), 1u);
    if (r.config.networkPolicies.empty()) return std::string("none");
    const auto& np = r.config.networkPolicies[0];
    return std::string(np.policyTypesIngress ? "I" : "") + (np.policyTypesEgress ? "E" : "");
  };
  EXPECT_EQ(types(""), "I");
  EXPECT_EQ(types("  egress: [{}]\n"), "IE");
  // Kubernetes adds Egress only when there is at least one egress rule.
  EXPECT_EQ(types("  egress: []\n"), "I");
  EXPECT_EQ(types("  policyTypes: [Egress]\n"), "E");
  EXPECT_EQ(types("  policyTypes: [Ingress, Egress]\n"), "IE");
  EXPECT_EQ(types("  policyTypes: []\n  egress: [{}]\n"), "IE");
  EXPECT_EQ(types("  ingress:\n  - from: [{podSelector: {}}]\n    ports: [{port: 80}]\n"), "I");
}

TEST(ConfigLoaderTest, NetworkPolicyPodSelectorRequired) {
  EXPECT_EQ(onlyError(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: n}
spec:
  policyTypes: [Egress]
)"),
            "test.yaml:5: NetworkPolicy/default/n: spec.podSelector: is required (use {} to select "
            "every pod)");
  EXPECT_EQ(
      onlyError("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\n"),
      "test.yaml:1: NetworkPolicy/default/n: spec.podSelector: is required (use {} to select "
      "every pod)");
}

TEST(ConfigLoaderTest, LabelSelectorExpressions) {
  auto r = mustLoad(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: n}
spec:
  podSelector:
    matchExpressions:
    - {key: tier, operator: In, values: [web, api]}
    - {key: env, operator: NotIn, values: [dev]}
    - {key: team, operator: Exists}
    - {key: legacy, operator: DoesNotExist}
)");
  ASSERT_EQ(r.config.networkPolicies.size(), 1u);
  const auto& ex = r.config.networkPolicies[0].podSelector.matchExpressions;
  ASSERT_EQ(ex.size(), 4u);
  EXPECT_EQ(ex[0].key, "tier");
  EXPECT_EQ(ex[0].op, LabelRequirement::Op::In);
  EXPECT_EQ(ex[0].values, (std::vector<std::string>{"web", "api"}));
  EXPECT_EQ(ex[1].op, LabelRequirement::Op::NotIn);
  EXPECT_EQ(ex[2].op, LabelRequirement::Op::Exists);
  EXPECT_TRUE(ex[2].values.empty());
  EXPECT_EQ(ex[3].op, LabelRequirement::Op::DoesNotExist);

  auto errors = mustFail(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: n}
spec:
  podSelector:
    matchExpressions:
    - {key: tier, operator: In}
    - {key: team, operator: Exists, values: [a]}
    - {key: x, operator: Equals, values: [a]}
    - {operator: Exists}
)");
  ASSERT_EQ(errors.size(), 4u) << dump(errors);
  EXPECT_EQ(errors[0].str(),
            "test.yaml:7: NetworkPolicy/default/n: spec.podSelector.matchExpressions[0].values: "
            "must be non-empty when operator is In or NotIn");
  EXPECT_EQ(errors[1].field, "spec.podSelector.matchExpressions[1].values");
  EXPECT_EQ(errors[1].message, "must be empty when operator is Exists or DoesNotExist");
  EXPECT_EQ(errors[2].field, "spec.podSelector.matchExpressions[2].operator");
  EXPECT_EQ(errors[3].field, "spec.podSelector.matchExpressions[3].key");
  EXPECT_EQ(errors[3].line, 10);
}

TEST(ConfigLoaderTest, NetworkPolicyPortAndPeerErrors) {
  auto errors = mustFail(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: n}
spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}
    - ipBlock: {cidr: 10.0.0.0/33}
    - {}
    - ipBlock: {cidr: 10.0.0.0/8}
      podSelector: {}
    ports:
    - {port: 9000, endPort: 8000}
    - {port: http, endPort: 8000}
    - {port: "80"}
    - {port: Web_Port}
    - {protocol: ICMP}
    - {port: 0}
)");
  ASSERT_EQ(errors.size(), 10u) << dump(errors);
  EXPECT_EQ(errors[0].str(),
            "test.yaml:8: NetworkPolicy/default/n: spec.egress[0].to[0].ipBlock.except[0]: must be "
            "a strict subset of 10.0.0.0/8");
  EXPECT_EQ(errors[1].field, "spec.egress[0].to[1].ipBlock.cidr");
  EXPECT_EQ(errors[1].message, "must be an IP address or CIDR, got \"10.0.0.0/33\"");
  EXPECT_EQ(errors[2].field, "spec.egress[0].to[2]");
  EXPECT_EQ(errors[3].field, "spec.egress[0].to[3].ipBlock");
  EXPECT_EQ(errors[4].str(),
            "test.yaml:14: NetworkPolicy/default/n: spec.egress[0].ports[0].endPort: must be "
            "greater than or equal to port 9000");
  EXPECT_EQ(errors[5].field, "spec.egress[0].ports[1].endPort");
  EXPECT_EQ(errors[5].message, "may not be used with a named port");
  EXPECT_EQ(errors[6].message, "named port \"80\" must contain at least one letter");
  EXPECT_EQ(errors[7].field, "spec.egress[0].ports[3].port");
  EXPECT_EQ(errors[8].field, "spec.egress[0].ports[4].protocol");
  EXPECT_EQ(errors[9].field, "spec.egress[0].ports[5].port");
}

TEST(ConfigLoaderTest, NetworkPolicyPortZeroIsOutOfRange) {
  EXPECT_EQ(onlyError(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: n}
spec:
  podSelector: {}
  egress:
  - ports:
    - port: 0
)"),
            "test.yaml:8: NetworkPolicy/default/n: spec.egress[0].ports[0].port: must be 1-65535, "
            "got 0");
}

TEST(ConfigLoaderTest, NetworkPolicyIngressSectionIgnored) {
  auto r = mustLoad(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: n}
spec:
  podSelector: {}
  ingress:
  - from:
    - somethingNew: {whatever: [1, 2]}
    ports: [{port: not-checked-here!}]
)");
  ASSERT_EQ(r.config.networkPolicies.size(), 1u);
  EXPECT_TRUE(r.config.networkPolicies[0].policyTypesIngress);
  EXPECT_FALSE(r.config.networkPolicies[0].policyTypesEgress);
  EXPECT_TRUE(r.config.networkPolicies[0].egress.empty());
}

// ---- Namespace and Pod ----------------------------------------------------------------------

TEST(ConfigLoaderTest, NamespaceGetsImplicitNameLabel) {
  auto r = mustLoad(R"(apiVersion: v1
kind: Namespace
metadata:
  name: team-b
  labels: {team: b, kubernetes.io/metadata.name: spoofed}
)");
  ASSERT_EQ(r.config.namespaces.size(), 1u);
  const auto& ns = r.config.namespaces[0];
  EXPECT_EQ(objectRef(ns.meta), "Namespace/team-b");
  EXPECT_EQ(ns.meta.ns, "");
  EXPECT_EQ(ns.meta.labels.at("team"), "b");
  EXPECT_EQ(ns.meta.labels.at("kubernetes.io/metadata.name"), "team-b");
}

TEST(ConfigLoaderTest, PodFields) {
  auto r = mustLoad(R"(apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: team-b
  labels: {app: client}
spec:
  serviceAccountName: client-sa
  hostNetwork: false
  nodeName: node-1
  initContainers:
  - name: init
    ports: [{containerPort: 9090, name: metrics}]
  containers:
  - name: app
    ports:
    - {containerPort: 8080, name: http}
    - {containerPort: 53, name: dns, protocol: UDP}
  - name: side
status:
  podIP: 10.244.1.5
  podIPs:
  - ip: 10.244.1.5
  - ip: fd00::5
)");
  ASSERT_EQ(r.config.pods.size(), 1u);
  const auto& pod = r.config.pods[0];
  EXPECT_EQ(objectRef(pod.meta), "Pod/team-b/client");
  EXPECT_EQ(pod.meta.labels.at("app"), "client");
  EXPECT_EQ(pod.serviceAccountName, "client-sa");
  EXPECT_FALSE(pod.hostNetwork);
  EXPECT_EQ(pod.nodeName, "node-1");
  ASSERT_EQ(pod.ports.size(), 3u);
  EXPECT_EQ(pod.ports[0].name, "http");
  EXPECT_EQ(pod.ports[0].containerPort, 8080u);
  EXPECT_EQ(pod.ports[0].protocol, L4Protocol::Tcp);
  EXPECT_EQ(pod.ports[1].protocol, L4Protocol::Udp);
  EXPECT_EQ(pod.ports[2].name, "metrics");
  ASSERT_EQ(pod.podIPs.size(), 2u);  // podIP repeated in podIPs is not duplicated
  EXPECT_EQ(pod.podIPs[0].str(), "10.244.1.5");
  EXPECT_EQ(pod.podIPs[1].str(), "fd00::5");

  auto bare = mustLoad(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
      "spec: {hostNetwork: true}\n");
  ASSERT_EQ(bare.config.pods.size(), 1u);
  EXPECT_EQ(bare.config.pods[0].serviceAccountName, "default");
  EXPECT_EQ(bare.config.pods[0].meta.ns, "default");
  EXPECT_TRUE(bare.config.pods[0].hostNetwork);
}

TEST(ConfigLoaderTest, PodErrors) {
  auto errors = mustFail(R"(apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - ports: [{name: http}, {containerPort: 8080, protocol: tcp}]
status:
  podIP: 10.244.1.999
)");
  ASSERT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_EQ(errors[0].field, "spec.containers[0].ports[0].containerPort");
  EXPECT_EQ(errors[1].field, "spec.containers[0].ports[1].protocol");
  EXPECT_EQ(
      errors[2].str(),
      "test.yaml:8: Pod/default/p: status.podIP: must be an IP address, got \"10.244.1.999\"");
}

// ---- AuthorizationPolicy --------------------------------------------------------------------

TEST(ConfigLoaderTest, AuthorizationPolicyRulesMergeFromAndTo) {
  auto r = mustLoad(R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw, namespace: istio-system}
spec:
  selector:
    matchLabels: {app: tollgate-gateway}
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/client]
        notPrincipals: [cluster.local/ns/default/sa/bad]
    - source:
        namespaces: [team-b]
        notNamespaces: [kube-system]
    to:
    - operation:
        hosts: [httpbin.test, "*.example.com"]
        notHosts: [evil.example.com]
    - operation:
        ports: ["443", 80]
        notPorts: ["22"]
  - {}
)");
  ASSERT_EQ(r.config.authorizationPolicies.size(), 1u);
  const auto& ap = r.config.authorizationPolicies[0];
  EXPECT_EQ(ap.action, AuthorizationPolicy::Action::Allow);  // default
  ASSERT_TRUE(ap.selector);
  EXPECT_EQ(ap.selector->at("app"), "tollgate-gateway");
  ASSERT_EQ(ap.rules.size(), 2u);
  const auto& rule = ap.rules[0];
  EXPECT_EQ(rule.principals, (std::vector<std::string>{"cluster.local/ns/default/sa/client"}));
  EXPECT_EQ(rule.notPrincipals, (std::vector<std::string>{"cluster.local/ns/default/sa/bad"}));
  EXPECT_EQ(rule.namespaces, (std::vector<std::string>{"team-b"}));
  EXPECT_EQ(rule.notNamespaces, (std::vector<std::string>{"kube-system"}));
  EXPECT_EQ(rule.hosts, (std::vector<std::string>{"httpbin.test", "*.example.com"}));
  EXPECT_EQ(rule.notHosts, (std::vector<std::string>{"evil.example.com"}));
  EXPECT_EQ(rule.ports, (std::vector<std::string>{"443", "80"}));
  EXPECT_EQ(rule.notPorts, (std::vector<std::string>{"22"}));
  EXPECT_TRUE(ap.rules[1].principals.empty() && ap.rules[1].hosts.empty());

  auto deny = mustLoad(
      "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n"
      "metadata: {name: d}\nspec: {action: DENY}\n");
  ASSERT_EQ(deny.config.authorizationPolicies.size(), 1u);
  EXPECT_EQ(deny.config.authorizationPolicies[0].action, AuthorizationPolicy::Action::Deny);
  EXPECT_FALSE(deny.config.authorizationPolicies[0].selector);
  EXPECT_TRUE(deny.config.authorizationPolicies[0].rules.empty());
}

TEST(ConfigLoaderTest, AuthorizationPolicyUnsupportedParts) {
  auto errors = mustFail(R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c}
spec:
  action: CUSTOM
  rules:
  - to:
    - operation: {ports: [https]}
)");
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].str(),
            "test.yaml:5: AuthorizationPolicy/default/c: spec.action: CUSTOM is not supported by "
            "tollgate");
  EXPECT_EQ(errors[1].field, "spec.rules[0].to[0].operation.ports[0]");

  // Conditions tollgate cannot evaluate are ignored, loudly.
  auto r = mustLoad(R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: w}
spec:
  rules:
  - from:
    - source: {principals: [a], ipBlocks: [1.2.3.4]}
    to:
    - operation: {methods: [GET]}
    when:
    - {key: "request.headers[x]", values: [y]}
)");
  ASSERT_EQ(r.warnings.size(), 3u) << dump(r.warnings);
  EXPECT_EQ(r.warnings[0].field, "spec.rules[0].when");
  EXPECT_EQ(r.warnings[1].field, "spec.rules[0].from[0].source.ipBlocks");
  EXPECT_EQ(r.warnings[2].field, "spec.rules[0].to[0].operation.methods");
  EXPECT_EQ(r.warnings[0].severity, Diagnostic::Severity::Warning);
}

// ---- TollgateConfig -------------------------------------------------------------------------

TEST(ConfigLoaderTest, TollgateConfigAllFields) {
  auto r = mustLoad(R"(apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata: {name: mesh}
spec:
  outboundTrafficPolicy: {mode: ALLOW_ANY}
  trustDomain: example.org
  clusterCIDRs:
    pods: [10.244.0.0/16, "fd00:244::/56"]
    services: [10.96.0.0/12]
  gateways:
  - {name: gw-a, address: 10.0.0.5}
  - {name: gw-b, address: gw-b.tollgate.svc, port: 16008, default: true}
  dns:
    mode: passthrough
    upstreams: [198.18.0.53, "198.18.0.54:5353", "[fd00::53]:53"]
    clusterDomainSuffixes: [svc.cluster.local, svc.example]
  packetMark: "0x1234"
  cni: {failMode: open}
  excludedNamespaces: [kube-system, tollgate]
)");
  ASSERT_TRUE(r.config.tollgate);
  const auto& tc = *r.config.tollgate;
  EXPECT_EQ(objectRef(tc.meta), "TollgateConfig/mesh");
  EXPECT_EQ(tc.outboundMode, OutboundMode::AllowAny);
  EXPECT_EQ(tc.trustDomain, "example.org");
  ASSERT_EQ(tc.podCidrs.size(), 2u);
  EXPECT_EQ(tc.podCidrs[1].str(), "fd00:244::/56");
  ASSERT_EQ(tc.serviceCidrs.size(), 1u);
  ASSERT_EQ(tc.gateways.size(), 2u);
  EXPECT_EQ(tc.gateways[0].port, 15008);
  EXPECT_FALSE(tc.gateways[0].isDefault);
  EXPECT_EQ(tc.gateways[1].address, "gw-b.tollgate.svc");
  EXPECT_EQ(tc.gateways[1].port, 16008);
  EXPECT_TRUE(tc.gateways[1].isDefault);
  EXPECT_EQ(tc.dnsMode, DnsMode::Passthrough);
  EXPECT_EQ(tc.dnsUpstreams.size(), 3u);
  EXPECT_EQ(tc.clusterDomainSuffixes,
            (std::vector<std::string>{"svc.cluster.local", "svc.example"}));
  EXPECT_EQ(tc.packetMark, 0x1234u);
  EXPECT_EQ(tc.cniFailMode, CniFailMode::Open);
  EXPECT_EQ(tc.excludedNamespaces, (std::vector<std::string>{"kube-system", "tollgate"}));
}

TEST(ConfigLoaderTest, TollgateConfigDefaults) {
  auto r = mustLoad(
      "apiVersion: tollgate.io/v1alpha1\nkind: TollgateConfig\nmetadata: {name: m}\n"
      "spec:\n  packetMark: 0x7468\n");
  ASSERT_TRUE(r.config.tollgate);
  const auto& tc = *r.config.tollgate;
  EXPECT_EQ(tc.outboundMode, OutboundMode::RegistryOnly);
  EXPECT_EQ(tc.trustDomain, "cluster.local");
  EXPECT_FALSE(tc.dnsMode);
  EXPECT_EQ(tc.packetMark, 0x7468u);  // plain (unquoted) hex works too
  EXPECT_EQ(tc.cniFailMode, CniFailMode::Closed);
  EXPECT_EQ(tc.clusterDomainSuffixes, (std::vector<std::string>{"svc.cluster.local"}));
  EXPECT_TRUE(tc.gateways.empty());

  auto dec = mustLoad(
      "apiVersion: tollgate.io/v1alpha1\nkind: TollgateConfig\nmetadata: {name: m}\n"
      "spec: {packetMark: 29799}\n");
  ASSERT_TRUE(dec.config.tollgate);
  EXPECT_EQ(dec.config.tollgate->packetMark, 29799u);

  EXPECT_FALSE(mustLoad("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n").config.tollgate);
}

TEST(ConfigLoaderTest, TollgateConfigErrors) {
  auto errors = mustFail(R"(apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata: {name: m}
spec:
  outboundTrafficPolicy: {mode: allow_any}
  gateways:
  - {name: a, address: 10.0.0.1, default: true}
  - {name: b, address: 10.0.0.2, default: true}
  - {name: c, address: "not an address"}
  dns: {mode: strict-ish, upstreams: [dns.google]}
  packetMark: 0
  cni: {failMode: maybe}
  clusterCIDRs: {pods: [10.244.0.0/160]}
)");
  ASSERT_EQ(errors.size(), 8u) << dump(errors);
  EXPECT_EQ(errors[0].field, "spec.outboundTrafficPolicy.mode");
  EXPECT_EQ(errors[1].field, "spec.clusterCIDRs.pods[0]");
  EXPECT_EQ(errors[2].str(),
            "test.yaml:8: TollgateConfig/m: spec.gateways[1].default: only one gateway may be the "
            "default; \"a\" already is");
  EXPECT_EQ(errors[3].field, "spec.gateways[2].address");
  EXPECT_EQ(errors[4].field, "spec.dns.mode");
  EXPECT_EQ(errors[5].field, "spec.dns.upstreams[0]");
  EXPECT_EQ(errors[6].field, "spec.packetMark");
  EXPECT_EQ(errors[7].field, "spec.cni.failMode");
}

TEST(ConfigLoaderTest, TollgateConfigRevocation) {
  const std::string head =
      "apiVersion: tollgate.io/v1alpha1\nkind: TollgateConfig\nmetadata: {name: m}\nspec:\n";
  auto def = mustLoad(head + "  packetMark: 0x7467\n");
  ASSERT_TRUE(def.config.tollgate);
  EXPECT_EQ(def.config.tollgate->revocation, Revocation::Cut);
  auto keep = mustLoad(head + "  revocation: keep\n");
  ASSERT_TRUE(keep.config.tollgate);
  EXPECT_EQ(keep.config.tollgate->revocation, Revocation::Keep);
  auto cut = mustLoad(head + "  revocation: cut\n");
  ASSERT_TRUE(cut.config.tollgate);
  EXPECT_EQ(cut.config.tollgate->revocation, Revocation::Cut);
  // A typo must not silently keep revoked connections open: the whole load fails.
  auto errors = mustFail(head + "  revocation: Keep\n");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].str(),
            "test.yaml:5: TollgateConfig/m: spec.revocation: must be one of cut, keep, got "
            "\"Keep\"");
  auto notScalar = mustFail(head + "  revocation: [cut]\n");
  ASSERT_EQ(notScalar.size(), 1u) << dump(notScalar);
  EXPECT_EQ(notScalar[0].field, "spec.revocation");
}

TEST(ConfigLoaderTest, TollgateConfigRedirectMode) {
  const std::string head =
      "apiVersion: tollgate.io/v1alpha1\nkind: TollgateConfig\nmetadata: {name: m}\nspec:\n";
  auto def = mustLoad(head + "  packetMark: 0x7467\n");
  ASSERT_TRUE(def.config.tollgate);
  EXPECT_FALSE(def.config.tollgate->redirectMode);  // absent: the agent's flag decides
  auto ebpf = mustLoad(head + "  redirectMode: ebpf\n");
  ASSERT_TRUE(ebpf.config.tollgate);
  EXPECT_EQ(ebpf.config.tollgate->redirectMode, RedirectMode::Ebpf);
  auto nft = mustLoad(head + "  redirectMode: nftables\n");
  ASSERT_TRUE(nft.config.tollgate);
  EXPECT_EQ(nft.config.tollgate->redirectMode, RedirectMode::Nftables);
  auto errors = mustFail(head + "  redirectMode: bpf\n");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].str(),
            "test.yaml:5: TollgateConfig/m: spec.redirectMode: must be one of nftables, ebpf, got "
            "\"bpf\"");
}

TEST(ConfigLoaderTest, SecondTollgateConfigNamesBoth) {
  auto errors = mustFail(R"(apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata: {name: first}
---
apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata: {name: second}
)");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].str(),
            "test.yaml:5: TollgateConfig/second: only one TollgateConfig is allowed; "
            "TollgateConfig/first is already defined at test.yaml:1");
}

// ---- error classes --------------------------------------------------------------------------

constexpr std::string_view kSeHead = R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
spec:
)";

TEST(ConfigLoaderTest, ErrorPortNotANumber) {
  EXPECT_EQ(onlyError(std::string(kSeHead) + "  hosts: [httpbin.org]\n  ports:\n"
                                             "  - number: abc\n"),
            "test.yaml:8: ServiceEntry/default/httpbin: spec.ports[0].number: must be an integer, "
            "got \"abc\"");
}

TEST(ConfigLoaderTest, ErrorPortOutOfRange) {
  auto errors = mustFail(std::string(kSeHead) +
                         "  hosts: [httpbin.org]\n  ports:\n"
                         "  - {number: 80}\n  - {number: 70000, targetPort: -1}\n");
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].str(),
            "test.yaml:9: ServiceEntry/default/httpbin: spec.ports[1].number: must be 1-65535, got "
            "70000");
  EXPECT_EQ(errors[1].field, "spec.ports[1].targetPort");
  EXPECT_EQ(errors[1].message, "must be 1-65535, got -1");
}

TEST(ConfigLoaderTest, ErrorBadCidr) {
  EXPECT_EQ(onlyError(std::string(kSeHead) + "  hosts: [httpbin.org]\n"
                                             "  addresses: [10.0.0.0/8, 300.1.2.3]\n"),
            "test.yaml:7: ServiceEntry/default/httpbin: spec.addresses[1]: must be an IP address "
            "or CIDR, got \"300.1.2.3\"");
}

TEST(ConfigLoaderTest, ErrorUnknownEnumValue) {
  EXPECT_EQ(onlyError(std::string(kSeHead) + "  hosts: [httpbin.org]\n  resolution: DYNAMIC\n"),
            "test.yaml:7: ServiceEntry/default/httpbin: spec.resolution: must be one of NONE, "
            "STATIC, DNS, DNS_ROUND_ROBIN, got \"DYNAMIC\"");
}

TEST(ConfigLoaderTest, ErrorHostsNotAList) {
  EXPECT_EQ(onlyError(std::string(kSeHead) + "  hosts: httpbin.org\n"),
            "test.yaml:6: ServiceEntry/default/httpbin: spec.hosts: must be a list, got a scalar");
}

TEST(ConfigLoaderTest, ErrorMissingRequiredFields) {
  EXPECT_EQ(onlyError(std::string(kSeHead) + "  ports: [{number: 80}]\n"),
            "test.yaml:6: ServiceEntry/default/httpbin: spec.hosts: is required (at least one "
            "host)");
  EXPECT_EQ(onlyError("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {}\n"
                      "spec: {hosts: [a.b]}\n"),
            "test.yaml:3: ServiceEntry/<unnamed>: metadata.name: is required");
  EXPECT_EQ(onlyError("apiVersion: networking.istio.io/v1\nmetadata: {name: x}\n"),
            "test.yaml:1: kind: is required (a string)");
}

TEST(ConfigLoaderTest, ErrorDocumentNotAMapping) {
  EXPECT_EQ(onlyError("- a\n- b\n"),
            "test.yaml:1: document must be a mapping (a Kubernetes object), got a list");
}

TEST(ConfigLoaderTest, YamlSyntaxErrorIsADiagnosticWithLine) {
  auto errors = mustFail("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [a, b\n");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].file, "test.yaml");
  EXPECT_GE(errors[0].line, 4);
  EXPECT_NE(errors[0].message.find("YAML syntax error"), std::string::npos) << errors[0].str();
}

// yaml-cpp 0.7's LoadAll loops forever (allocating) on these; found by the fuzz target.
TEST(ConfigLoaderTest, StrayFlowIndicatorIsASyntaxErrorNotAHang) {
  EXPECT_EQ(onlyError(",i"),
            "test.yaml:1: YAML syntax error: unexpected content in this document (a stray ',', "
            "']' or '}'?)");
  auto errors = mustFail(
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n]\n"
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].line, 5);  // the stray "]"
}

TEST(ConfigLoaderTest, DirectivesAndDocumentEndMarkersKeepLines) {
  auto r = mustLoad(
      "%YAML 1.2\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
      "...\n# between\n--- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n");
  ASSERT_EQ(r.config.namespaces.size(), 2u);
  EXPECT_EQ(r.config.namespaces[0].meta.source.line, 3);
  EXPECT_EQ(r.config.namespaces[1].meta.source.line, 8);
}

TEST(ConfigLoaderTest, CollectsAllErrorsAndReturnsNoPartialConfig) {
  auto errors = mustFail(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: good}
spec: {hosts: [good.example]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad1}
spec:
  hosts: [bad.example]
  ports: [{number: abc}, {number: 80, protocol: SMTP}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad2}
spec: {host: bad.example, trafficPolicy: {tls: {mode: NOPE}}}
)");
  ASSERT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_EQ(errors[0].object, "ServiceEntry/default/bad1");
  EXPECT_EQ(errors[0].line, 11);
  EXPECT_EQ(errors[1].field, "spec.ports[1].protocol");
  EXPECT_EQ(errors[2].object, "DestinationRule/default/bad2");
  EXPECT_EQ(errors[2].line, 16);
}

TEST(ConfigLoaderTest, UnknownKindsAreSkippedWithWarnings) {
  auto r = mustLoad(R"(apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: gw}
spec: {servers: whatever}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: vs}
---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec: {profile: empty}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: x}
---
apiVersion: v1
kind: Service
metadata: {name: s}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: p}
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: calico}
)");
  EXPECT_TRUE(r.config.serviceEntries.empty());
  EXPECT_TRUE(r.config.networkPolicies.empty());
  ASSERT_EQ(r.warnings.size(), 7u) << dump(r.warnings);
  EXPECT_EQ(r.warnings[0].str(),
            "test.yaml:1: warning: Gateway/gw: skipped: tollgate does not read "
            "networking.istio.io/v1alpha3 Gateway");
  EXPECT_EQ(r.warnings[3].object, "Deployment/x/d");
  EXPECT_EQ(r.warnings[3].line, 14);
  EXPECT_EQ(r.warnings[6].object, "NetworkPolicy/calico");
}

TEST(ConfigLoaderTest, MultiDocumentWithEmptyDocumentsAndSeparators) {
  auto r = mustLoad(R"(---
---
# only a comment
---
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: b}
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: c}
  spec: {hosts: [c.example]}
...
)");
  ASSERT_EQ(r.config.namespaces.size(), 2u);
  EXPECT_EQ(r.config.namespaces[0].meta.name, "a");
  EXPECT_EQ(r.config.namespaces[0].meta.source.line, 5);
  EXPECT_EQ(r.config.namespaces[1].meta.name, "b");
  EXPECT_EQ(r.config.namespaces[1].meta.source.line, 13);
  ASSERT_EQ(r.config.serviceEntries.size(), 1u);
  EXPECT_TRUE(r.warnings.empty()) << dump(r.warnings);
}

TEST(ConfigLoaderTest, JsonDocumentsLoad) {
  auto r = mustLoad(R"({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
 "metadata": {"name": "j"}, "spec": {"hosts": ["j.example"], "ports": [{"number": 443}]}})");
  ASSERT_EQ(r.config.serviceEntries.size(), 1u);
  EXPECT_EQ(r.config.serviceEntries[0].ports[0].number, 443u);
}

TEST(ConfigLoaderTest, HostileInputNeverThrows) {
  const std::vector<std::string> inputs = {
      std::string("\0\xff\xfe", 3),
      "{",
      "[[[[[[[[",
      "a: &x [*x]",
      "? [a]\n: b",
      "apiVersion: v1\nkind: Namespace\nmetadata: !!binary AAAA\n",
      "apiVersion: [v1]\nkind: {a: b}\n",
      "apiVersion: v1\nkind: Pod\nspec: 7\nmetadata: {name: p}\n",
      "apiVersion: v1\nkind: List\nitems: {a: b}\n",
      std::string(100000, '['),
      "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: [x]}\n",
      "\t- tab",
      "key: \"unterminated",
      ",i",
      "}",
      "a: 1\n]\n",
      "[:",
      "{:",
      "- !+(.,.)"};
  for (const auto& in : inputs) {
    auto r = ConfigLoader::loadString(in, "x.yaml");
    if (!r) {
      EXPECT_FALSE(r.error().empty());
      for (const auto& d : r.error()) EXPECT_FALSE(d.str().empty());
    }
  }
  auto many = std::string(kSeHead) + "  hosts: [a.b]\n  ports:\n";
  for (int i = 0; i < 1000; ++i) many += "  - {number: x}\n";
  auto r = ConfigLoader::loadString(many, "x.yaml");
  ASSERT_FALSE(r);
  EXPECT_LE(r.error().size(), 201u);  // capped, with a final "too many errors"
  EXPECT_NE(r.error().back().message.find("too many errors"), std::string::npos);
}

// ---- files and directories ------------------------------------------------------------------

class ConfigLoaderDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tollgate-loader-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& rel, std::string_view text) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel) << text;
  }
  static std::string ns(std::string_view name) {
    return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + std::string(name) + "}\n";
  }
  fs::path dir_;
};

TEST_F(ConfigLoaderDirTest, LoadsYamlYmlJsonRecursivelySortedByPath) {
  write("b.yaml", ns("b"));
  write("a/z.yml", ns("az"));
  write("a/y.json", R"({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ay"}})");
  write("c.txt", ns("ignored-txt"));
  write("..2026_11_23/b.yaml", ns("ignored-configmap-copy"));
  write(".hidden.yaml", ns("ignored-hidden"));
  auto r = ConfigLoader::loadPath(dir_.string());
  ASSERT_TRUE(r) << dump(r.error());
  std::vector<std::string> names;
  for (const auto& n : r->config.namespaces) names.push_back(n.meta.name);
  EXPECT_EQ(names, (std::vector<std::string>{"ay", "az", "b"}));
  EXPECT_EQ(r->config.namespaces[0].meta.source.file, (dir_ / "a/y.json").string());
}

TEST_F(ConfigLoaderDirTest, SingleFile) {
  write("one.yaml", ns("one"));
  auto r = ConfigLoader::loadPath((dir_ / "one.yaml").string());
  ASSERT_TRUE(r) << dump(r.error());
  ASSERT_EQ(r->config.namespaces.size(), 1u);
  EXPECT_EQ(r->config.namespaces[0].meta.source.file, (dir_ / "one.yaml").string());
}

TEST_F(ConfigLoaderDirTest, BadFileFailsTheWholeLoad) {
  write("1-good.yaml", ns("good"));
  write("2-bad.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [x\n");
  write("3-bad.yaml", std::string(kSeHead) + "  hosts: [a.b]\n  ports: [{number: 0}]\n");
  auto r = ConfigLoader::loadPath(dir_.string());
  ASSERT_FALSE(r) << "a bad file must not yield a partial config";
  ASSERT_EQ(r.error().size(), 2u) << dump(r.error());
  EXPECT_EQ(r.error()[0].file, (dir_ / "2-bad.yaml").string());
  EXPECT_EQ(r.error()[1].str(), (dir_ / "3-bad.yaml").string() +
                                    ":7: ServiceEntry/default/httpbin: spec.ports[0].number: "
                                    "must be 1-65535, got 0");
}

TEST_F(ConfigLoaderDirTest, TollgateConfigAcrossFilesNamesBoth) {
  write("a.yaml", "apiVersion: tollgate.io/v1alpha1\nkind: TollgateConfig\nmetadata: {name: a}\n");
  write("b.yaml", "apiVersion: tollgate.io/v1alpha1\nkind: TollgateConfig\nmetadata: {name: b}\n");
  auto r = ConfigLoader::loadPath(dir_.string());
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().size(), 1u);
  EXPECT_NE(r.error()[0].message.find((dir_ / "a.yaml").string() + ":1"), std::string::npos);
  EXPECT_EQ(r.error()[0].object, "TollgateConfig/b");
}

TEST_F(ConfigLoaderDirTest, MissingPathIsAnError) {
  auto missing = ConfigLoader::loadPath((dir_ / "nope").string());
  ASSERT_FALSE(missing);
  ASSERT_EQ(missing.error().size(), 1u);
  EXPECT_EQ(missing.error()[0].file, (dir_ / "nope").string());
  EXPECT_NE(missing.error()[0].message.find("cannot access"), std::string::npos);
}

TEST_F(ConfigLoaderDirTest, UnreadableFileIsAnError) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  write("locked.yaml", ns("locked"));
  fs::permissions(dir_ / "locked.yaml", fs::perms::none);
  auto locked = ConfigLoader::loadPath(dir_.string());
  ASSERT_FALSE(locked);
  EXPECT_EQ(locked.error()[0].file, (dir_ / "locked.yaml").string());
}

TEST_F(ConfigLoaderDirTest, EmptyDirectoryLoadsNothing) {
  auto r = ConfigLoader::loadPath(dir_.string());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->config.serviceEntries.empty());
  EXPECT_FALSE(r->config.tollgate);
}

// ---- seed fixtures --------------------------------------------------------------------------

TEST(SeedFixturesTest, EverySeedFixtureLoadsAsWritten) {
  fs::path root = fs::path(TOLLGATE_SOURCE_DIR) / "tests/fixtures/seeds";
  ASSERT_TRUE(fs::is_directory(root)) << root;
  size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    auto r = ConfigLoader::loadPath(entry.path().string());
    EXPECT_TRUE(r) << entry.path() << "\n" << (r ? "" : dump(r.error()));
  }
  EXPECT_EQ(files, 8u);

  auto all = ConfigLoader::loadPath(root.string());
  ASSERT_TRUE(all) << dump(all.error());
  const auto& c = all->config;
  EXPECT_EQ(c.serviceEntries.size(), 5u);
  EXPECT_EQ(c.destinationRules.size(), 5u);
  EXPECT_TRUE(c.sidecars.empty());
  EXPECT_TRUE(c.networkPolicies.empty());
  // The Gateway and VirtualServices that share snippets with them are skipped with warnings.
  EXPECT_EQ(all->warnings.size(), 3u) << dump(all->warnings);

  // Spot checks against the seed text.
  std::vector<std::string> seHosts;
  for (const auto& se : c.serviceEntries) seHosts.push_back(se.hosts.at(0));
  EXPECT_EQ(seHosts, (std::vector<std::string>{"httpbin.org", "httpbin.org", "edition.cnn.com",
                                               "localhost.local", "httpbin.org"}));
  const ServiceEntry* localhost = nullptr;
  for (const auto& se : c.serviceEntries)
    if (se.meta.name == "localhost") localhost = &se;
  ASSERT_NE(localhost, nullptr);
  EXPECT_EQ(localhost->resolution, Resolution::Static);
  ASSERT_EQ(localhost->endpoints.size(), 1u);
  EXPECT_EQ(localhost->endpoints[0].address, "127.0.0.1");
  const DestinationRule* mtls = nullptr;
  for (const auto& dr : c.destinationRules)
    if (dr.meta.name == "originate-mtls-for-httpbin") mtls = &dr;
  ASSERT_NE(mtls, nullptr);
  ASSERT_TRUE(mtls->trafficPolicy);
  ASSERT_EQ(mtls->trafficPolicy->portLevelSettings.size(), 1u);
  ASSERT_TRUE(mtls->trafficPolicy->portLevelSettings[0].tls);
  EXPECT_EQ(mtls->trafficPolicy->portLevelSettings[0].tls->mode, TlsMode::Mutual);
  EXPECT_EQ(mtls->trafficPolicy->portLevelSettings[0].tls->credentialName, "client-credential");
  EXPECT_TRUE(mtls->trafficPolicy->portLevelSettings[0].tls->subjectAltNames.empty());
}

// The reference's example must stay loadable: it is what users copy.
TEST(SeedFixturesTest, ConfigurationDocExampleLoads) {
  std::ifstream in(fs::path(TOLLGATE_SOURCE_DIR) / "docs/configuration.md");
  ASSERT_TRUE(in);
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto start = doc.find("```yaml\n");
  ASSERT_NE(start, std::string::npos);
  start += 8;
  auto end = doc.find("```", start);
  ASSERT_NE(end, std::string::npos);
  auto r = ConfigLoader::loadString(doc.substr(start, end - start), "configuration.md");
  ASSERT_TRUE(r) << dump(r.error());
  EXPECT_TRUE(r->warnings.empty()) << dump(r->warnings);
  const auto& c = r->config;
  ASSERT_TRUE(c.tollgate);
  EXPECT_EQ(c.tollgate->gateways.size(), 1u);
  EXPECT_EQ(c.serviceEntries.size(), 1u);
  EXPECT_EQ(c.destinationRules.size(), 1u);
  EXPECT_EQ(c.sidecars.size(), 1u);
  EXPECT_EQ(c.networkPolicies.size(), 1u);
  EXPECT_EQ(c.namespaces.size(), 1u);
  EXPECT_EQ(c.pods.size(), 1u);
  EXPECT_EQ(c.authorizationPolicies.size(), 1u);
}

}  // namespace
}  // namespace tollgate::policy
