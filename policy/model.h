#pragma once

// The configuration users already write, as plain values: one struct per Kubernetes kind that
// tollgate reads. The loader fills these from YAML; Snapshot compiles them into lookup structures.
// Nothing here does I/O or matching.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "policy/ip.h"

namespace tollgate::policy {

using Labels = std::map<std::string, std::string>;

// Where an object came from, so every error and every decision can name it.
struct SourceRef {
  std::string file;  // path as given to the loader
  int line = 0;      // 1-based line of the object's first key (0 when unknown)
};

struct ObjectMeta {
  std::string apiVersion;
  std::string kind;
  std::string name;
  std::string ns;  // metadata.namespace; empty for cluster-scoped kinds and defaulted by loader
  std::string uid;  // metadata.uid: set by the API server, empty in files
  Labels labels;
  std::map<std::string, std::string> annotations;
  SourceRef source;
};

// "kind/namespace/name" (or "kind/name" when cluster scoped), for logs and decisions.
std::string objectRef(const ObjectMeta& meta);

// ---- networking.istio.io ServiceEntry -------------------------------------------------------

enum class Location { MeshExternal, MeshInternal };
enum class Resolution { None, Static, Dns, DnsRoundRobin };

// Istio port protocols that change how the proxy treats a port.
enum class PortProtocol { Http, Https, Http2, Grpc, Tls, Tcp, Mongo, Udp, Unspecified };

struct ServicePort {
  uint32_t number = 0;
  std::string name;
  PortProtocol protocol = PortProtocol::Unspecified;
  std::string protocolName;  // as written, for dumps
  uint32_t targetPort = 0;   // 0: same as number
};

struct WorkloadEndpoint {
  std::string address;  // IP or hostname
  std::map<std::string, uint32_t> ports;
  Labels labels;
  std::string network;
  std::string locality;
  uint32_t weight = 0;
};

struct ServiceEntry {
  ObjectMeta meta;
  std::vector<std::string> hosts;  // as written (normalised at compile time)
  std::vector<Cidr> addresses;
  std::vector<ServicePort> ports;
  Location location = Location::MeshExternal;
  Resolution resolution = Resolution::None;
  std::vector<WorkloadEndpoint> endpoints;
  std::vector<std::string> exportTo;  // empty: "*"
  std::optional<Labels> workloadSelector;
};

// ---- networking.istio.io DestinationRule ----------------------------------------------------

enum class TlsMode { Disable, Simple, Mutual, IstioMutual };

struct ClientTlsSettings {
  TlsMode mode = TlsMode::Disable;
  std::string sni;
  std::vector<std::string> subjectAltNames;
  std::string caCertificates;
  std::string clientCertificate;
  std::string privateKey;
  std::string credentialName;
  bool insecureSkipVerify = false;
};

struct PortTrafficPolicy {
  uint32_t port = 0;
  std::optional<ClientTlsSettings> tls;
};

struct TrafficPolicy {
  std::optional<ClientTlsSettings> tls;
  std::vector<PortTrafficPolicy> portLevelSettings;
};

struct Subset {
  std::string name;
  Labels labels;
  std::optional<TrafficPolicy> trafficPolicy;
};

struct DestinationRule {
  ObjectMeta meta;
  std::string host;
  std::optional<TrafficPolicy> trafficPolicy;
  std::vector<Subset> subsets;
  std::vector<std::string> exportTo;  // empty: "*"
  std::optional<Labels> workloadSelector;
};

// ---- networking.istio.io Sidecar ------------------------------------------------------------

enum class OutboundMode { RegistryOnly, AllowAny };

struct SidecarEgress {
  std::optional<uint32_t> port;          // egress listener port; absent: all
  std::vector<std::string> hosts;        // "ns/host" as written
};

struct Sidecar {
  ObjectMeta meta;
  std::optional<Labels> workloadSelector;  // absent: whole namespace
  std::vector<SidecarEgress> egress;
  std::optional<OutboundMode> outboundMode;  // outboundTrafficPolicy.mode
};

// ---- networking.k8s.io/v1 NetworkPolicy -----------------------------------------------------

struct LabelRequirement {
  enum class Op { In, NotIn, Exists, DoesNotExist };
  std::string key;
  Op op = Op::In;
  std::vector<std::string> values;
};

// A Kubernetes label selector. An empty selector ({}) selects everything; whether a selector is
// absent is expressed with std::optional at the use site.
struct LabelSelector {
  Labels matchLabels;
  std::vector<LabelRequirement> matchExpressions;
};

enum class L4Protocol { Tcp, Udp, Sctp };

struct IpBlock {
  Cidr cidr;
  std::vector<Cidr> except;
};

struct NetworkPolicyPeer {
  std::optional<LabelSelector> podSelector;
  std::optional<LabelSelector> namespaceSelector;
  std::optional<IpBlock> ipBlock;
};

struct NetworkPolicyPort {
  L4Protocol protocol = L4Protocol::Tcp;
  // Absent: every port of the protocol. Otherwise a number or a named container port.
  std::optional<std::variant<uint32_t, std::string>> port;
  std::optional<uint32_t> endPort;
};

struct NetworkPolicyEgressRule {
  std::vector<NetworkPolicyPort> ports;  // empty or absent: all ports
  std::vector<NetworkPolicyPeer> to;     // empty or absent: all destinations
};

struct NetworkPolicy {
  ObjectMeta meta;
  LabelSelector podSelector;  // required field; {} selects every pod of the namespace
  bool policyTypesIngress = false;
  bool policyTypesEgress = false;  // after defaulting (egress section present => Egress)
  std::vector<NetworkPolicyEgressRule> egress;
};

// ---- v1 Namespace and Pod (standalone source) -----------------------------------------------

struct Namespace {
  ObjectMeta meta;  // meta.name is the namespace; meta.labels its labels
};

struct ContainerPort {
  std::string name;
  uint32_t containerPort = 0;
  L4Protocol protocol = L4Protocol::Tcp;
};

struct Pod {
  ObjectMeta meta;
  std::string serviceAccountName = "default";
  std::vector<ContainerPort> ports;  // all containers' ports
  std::vector<IpAddress> podIPs;     // status.podIP and status.podIPs
  bool hostNetwork = false;
  std::string nodeName;
};

// ---- tollgate.io/v1alpha1 TollgateConfig ----------------------------------------------------

struct GatewayConfig {
  std::string name;
  std::string address;  // IP or hostname
  uint16_t port = 15008;
  bool isDefault = false;
};

enum class DnsMode { Strict, Passthrough };
enum class CniFailMode { Closed, Open };
// How pod egress is sent to the proxy: nftables in each pod netns, or eBPF on each pod cgroup.
enum class RedirectMode { Nftables, Ebpf };
// What a reload does to open connections the new config would deny (cut: reset them).
enum class Revocation { Cut, Keep };

struct TollgateConfig {
  ObjectMeta meta;
  OutboundMode outboundMode = OutboundMode::RegistryOnly;
  std::string trustDomain = "cluster.local";
  std::vector<Cidr> podCidrs;
  std::vector<Cidr> serviceCidrs;
  std::vector<GatewayConfig> gateways;
  std::optional<DnsMode> dnsMode;  // absent: strict with REGISTRY_ONLY, passthrough with ALLOW_ANY
  uint32_t packetMark = 0x7467;
  CniFailMode cniFailMode = CniFailMode::Closed;
  // spec.redirectMode; absent: the agent's --redirect-mode, else nftables. The agent flag wins
  // when both are given (a node that cannot run one mode is pinned by its flag).
  std::optional<RedirectMode> redirectMode;
  Revocation revocation = Revocation::Cut;
  std::vector<std::string> excludedNamespaces;
  std::vector<std::string> dnsUpstreams;  // resolver addresses (ip or ip:port)
  // Per-pod DNS query rate (token bucket): queries beyond it are dropped (UDP) or end the TCP
  // connection, counted and logged. 0 queries per second: no limit.
  uint32_t dnsQueriesPerSecond = 200;
  uint32_t dnsQueryBurst = 400;
  std::vector<std::string> clusterDomainSuffixes = {"svc.cluster.local"};
};

// ---- security.istio.io AuthorizationPolicy (gateway) ----------------------------------------

struct AuthorizationRule {
  std::vector<std::string> principals;     // from[].source.principals
  std::vector<std::string> notPrincipals;  // from[].source.notPrincipals
  std::vector<std::string> namespaces;     // from[].source.namespaces
  std::vector<std::string> notNamespaces;
  std::vector<std::string> hosts;          // to[].operation.hosts
  std::vector<std::string> notHosts;
  std::vector<std::string> ports;          // to[].operation.ports
  std::vector<std::string> notPorts;
};

struct AuthorizationPolicy {
  enum class Action { Allow, Deny };
  ObjectMeta meta;
  Action action = Action::Allow;
  std::optional<Labels> selector;
  // Each rule: every present field must match. No rules with ALLOW: matches nothing;
  // a single empty rule {} matches everything.
  std::vector<AuthorizationRule> rules;
};

// ---- everything loaded ----------------------------------------------------------------------

struct Config {
  std::vector<ServiceEntry> serviceEntries;
  std::vector<DestinationRule> destinationRules;
  std::vector<Sidecar> sidecars;
  std::vector<NetworkPolicy> networkPolicies;
  std::vector<Namespace> namespaces;
  std::vector<Pod> pods;
  std::vector<AuthorizationPolicy> authorizationPolicies;
  std::optional<TollgateConfig> tollgate;  // at most one; defaults when absent
};

std::string_view toString(PortProtocol p);
std::string_view toString(TlsMode m);
std::string_view toString(OutboundMode m);
std::string_view toString(L4Protocol p);
std::string_view toString(Resolution r);
std::string_view toString(Location l);

}  // namespace tollgate::policy
