#include "policy/config_proto.h"

namespace tollgate::policy {
namespace {

namespace pb = tollgate::config;

template <typename Map>
void copyMap(const std::map<std::string, std::string>& from, Map* to) {
  for (const auto& [k, v] : from) (*to)[k] = v;
}

template <typename Repeated>
void copyStrings(const std::vector<std::string>& from, Repeated* to) {
  for (const auto& s : from) to->Add(std::string(s));
}

template <typename Repeated>
void copyCidrs(const std::vector<Cidr>& from, Repeated* to) {
  for (const auto& c : from) to->Add(c.str());
}

void fill(const ObjectMeta& m, pb::ObjectMeta* out) {
  out->set_api_version(m.apiVersion);
  out->set_kind(m.kind);
  out->set_name(m.name);
  out->set_namespace_(m.ns);
  copyMap(m.labels, out->mutable_labels());
  copyMap(m.annotations, out->mutable_annotations());
  out->mutable_source()->set_file(m.source.file);
  out->mutable_source()->set_line(m.source.line);
}

void fill(const std::optional<Labels>& labels, pb::LabelMap* out) {
  copyMap(*labels, out->mutable_labels());
}

void fill(const ClientTlsSettings& t, pb::ClientTlsSettings* out) {
  out->set_mode(std::string(toString(t.mode)));
  out->set_sni(t.sni);
  copyStrings(t.subjectAltNames, out->mutable_subject_alt_names());
  out->set_ca_certificates(t.caCertificates);
  out->set_client_certificate(t.clientCertificate);
  out->set_private_key(t.privateKey);
  out->set_credential_name(t.credentialName);
  out->set_insecure_skip_verify(t.insecureSkipVerify);
}

void fill(const TrafficPolicy& tp, pb::TrafficPolicy* out) {
  if (tp.tls) fill(*tp.tls, out->mutable_tls());
  for (const auto& p : tp.portLevelSettings) {
    auto* po = out->add_port_level_settings();
    po->set_port(p.port);
    if (p.tls) fill(*p.tls, po->mutable_tls());
  }
}

std::string_view opName(LabelRequirement::Op op) {
  switch (op) {
    case LabelRequirement::Op::In:
      return "In";
    case LabelRequirement::Op::NotIn:
      return "NotIn";
    case LabelRequirement::Op::Exists:
      return "Exists";
    case LabelRequirement::Op::DoesNotExist:
      return "DoesNotExist";
  }
  return "In";
}

void fill(const LabelSelector& s, pb::LabelSelector* out) {
  copyMap(s.matchLabels, out->mutable_match_labels());
  for (const auto& r : s.matchExpressions) {
    auto* ro = out->add_match_expressions();
    ro->set_key(r.key);
    ro->set_operator_(std::string(opName(r.op)));
    copyStrings(r.values, ro->mutable_values());
  }
}

pb::ServiceEntry convert(const ServiceEntry& se) {
  pb::ServiceEntry out;
  fill(se.meta, out.mutable_meta());
  copyStrings(se.hosts, out.mutable_hosts());
  copyCidrs(se.addresses, out.mutable_addresses());
  for (const auto& p : se.ports) {
    auto* po = out.add_ports();
    po->set_number(p.number);
    po->set_name(p.name);
    po->set_protocol(std::string(toString(p.protocol)));
    po->set_protocol_name(p.protocolName);
    po->set_target_port(p.targetPort);
  }
  out.set_location(std::string(toString(se.location)));
  out.set_resolution(std::string(toString(se.resolution)));
  for (const auto& e : se.endpoints) {
    auto* eo = out.add_endpoints();
    eo->set_address(e.address);
    for (const auto& [k, v] : e.ports) (*eo->mutable_ports())[k] = v;
    copyMap(e.labels, eo->mutable_labels());
    eo->set_network(e.network);
    eo->set_locality(e.locality);
    eo->set_weight(e.weight);
  }
  copyStrings(se.exportTo, out.mutable_export_to());
  if (se.workloadSelector) fill(se.workloadSelector, out.mutable_workload_selector());
  return out;
}

pb::DestinationRule convert(const DestinationRule& dr) {
  pb::DestinationRule out;
  fill(dr.meta, out.mutable_meta());
  out.set_host(dr.host);
  if (dr.trafficPolicy) fill(*dr.trafficPolicy, out.mutable_traffic_policy());
  for (const auto& s : dr.subsets) {
    auto* so = out.add_subsets();
    so->set_name(s.name);
    copyMap(s.labels, so->mutable_labels());
    if (s.trafficPolicy) fill(*s.trafficPolicy, so->mutable_traffic_policy());
  }
  copyStrings(dr.exportTo, out.mutable_export_to());
  if (dr.workloadSelector) fill(dr.workloadSelector, out.mutable_workload_selector());
  return out;
}

pb::Sidecar convert(const Sidecar& sc) {
  pb::Sidecar out;
  fill(sc.meta, out.mutable_meta());
  if (sc.workloadSelector) fill(sc.workloadSelector, out.mutable_workload_selector());
  for (const auto& e : sc.egress) {
    auto* eo = out.add_egress();
    if (e.port) eo->set_port(*e.port);
    copyStrings(e.hosts, eo->mutable_hosts());
  }
  if (sc.outboundMode) out.set_outbound_mode(std::string(toString(*sc.outboundMode)));
  return out;
}

pb::NetworkPolicy convert(const NetworkPolicy& np) {
  pb::NetworkPolicy out;
  fill(np.meta, out.mutable_meta());
  fill(np.podSelector, out.mutable_pod_selector());
  out.set_policy_types_ingress(np.policyTypesIngress);
  out.set_policy_types_egress(np.policyTypesEgress);
  for (const auto& rule : np.egress) {
    auto* ro = out.add_egress();
    for (const auto& p : rule.ports) {
      auto* po = ro->add_ports();
      po->set_protocol(std::string(toString(p.protocol)));
      if (p.port) {
        if (const auto* n = std::get_if<uint32_t>(&*p.port)) {
          po->set_port_number(*n);
        } else {
          po->set_port_name(std::get<std::string>(*p.port));
        }
      }
      if (p.endPort) po->set_end_port(*p.endPort);
    }
    for (const auto& peer : rule.to) {
      auto* peo = ro->add_to();
      if (peer.podSelector) fill(*peer.podSelector, peo->mutable_pod_selector());
      if (peer.namespaceSelector) fill(*peer.namespaceSelector, peo->mutable_namespace_selector());
      if (peer.ipBlock) {
        peo->mutable_ip_block()->set_cidr(peer.ipBlock->cidr.str());
        copyCidrs(peer.ipBlock->except, peo->mutable_ip_block()->mutable_except());
      }
    }
  }
  return out;
}

pb::Pod convert(const Pod& pod) {
  pb::Pod out;
  fill(pod.meta, out.mutable_meta());
  out.set_service_account_name(pod.serviceAccountName);
  for (const auto& p : pod.ports) {
    auto* po = out.add_ports();
    po->set_name(p.name);
    po->set_container_port(p.containerPort);
    po->set_protocol(std::string(toString(p.protocol)));
  }
  for (const auto& ip : pod.podIPs) out.add_pod_ips(ip.str());
  out.set_host_network(pod.hostNetwork);
  out.set_node_name(pod.nodeName);
  return out;
}

pb::TollgateConfig convert(const TollgateConfig& tc) {
  pb::TollgateConfig out;
  fill(tc.meta, out.mutable_meta());
  out.set_outbound_mode(std::string(toString(tc.outboundMode)));
  out.set_trust_domain(tc.trustDomain);
  copyCidrs(tc.podCidrs, out.mutable_pod_cidrs());
  copyCidrs(tc.serviceCidrs, out.mutable_service_cidrs());
  for (const auto& g : tc.gateways) {
    auto* go = out.add_gateways();
    go->set_name(g.name);
    go->set_address(g.address);
    go->set_port(g.port);
    go->set_is_default(g.isDefault);
  }
  if (tc.dnsMode) out.set_dns_mode(*tc.dnsMode == DnsMode::Strict ? "STRICT" : "PASSTHROUGH");
  out.set_packet_mark(tc.packetMark);
  out.set_cni_fail_mode(tc.cniFailMode == CniFailMode::Open ? "OPEN" : "CLOSED");
  if (tc.redirectMode) out.set_redirect_mode(*tc.redirectMode == RedirectMode::Ebpf ? "EBPF" : "NFTABLES");
  copyStrings(tc.excludedNamespaces, out.mutable_excluded_namespaces());
  copyStrings(tc.dnsUpstreams, out.mutable_dns_upstreams());
  copyStrings(tc.clusterDomainSuffixes, out.mutable_cluster_domain_suffixes());
  return out;
}

pb::AuthorizationPolicy convert(const AuthorizationPolicy& ap) {
  pb::AuthorizationPolicy out;
  fill(ap.meta, out.mutable_meta());
  out.set_action(ap.action == AuthorizationPolicy::Action::Deny ? "DENY" : "ALLOW");
  if (ap.selector) fill(ap.selector, out.mutable_selector());
  for (const auto& r : ap.rules) {
    auto* ro = out.add_rules();
    copyStrings(r.principals, ro->mutable_principals());
    copyStrings(r.notPrincipals, ro->mutable_not_principals());
    copyStrings(r.namespaces, ro->mutable_namespaces());
    copyStrings(r.notNamespaces, ro->mutable_not_namespaces());
    copyStrings(r.hosts, ro->mutable_hosts());
    copyStrings(r.notHosts, ro->mutable_not_hosts());
    copyStrings(r.ports, ro->mutable_ports());
    copyStrings(r.notPorts, ro->mutable_not_ports());
  }
  return out;
}

}  // namespace

tollgate::config::Config toProto(const Config& config) {
  pb::Config out;
  for (const auto& x : config.serviceEntries) *out.add_service_entries() = convert(x);
  for (const auto& x : config.destinationRules) *out.add_destination_rules() = convert(x);
  for (const auto& x : config.sidecars) *out.add_sidecars() = convert(x);
  for (const auto& x : config.networkPolicies) *out.add_network_policies() = convert(x);
  for (const auto& x : config.namespaces) fill(x.meta, out.add_namespaces()->mutable_meta());
  for (const auto& x : config.pods) *out.add_pods() = convert(x);
  for (const auto& x : config.authorizationPolicies) {
    *out.add_authorization_policies() = convert(x);
  }
  if (config.tollgate) *out.mutable_tollgate() = convert(*config.tollgate);
  return out;
}

}  // namespace tollgate::policy
