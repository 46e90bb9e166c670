#include "cli/learner.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <vector>

namespace tollgate::cli {
namespace {

std::string field(const admin::LogEvent& e, const std::string& name) {
  auto it = e.fields().find(name);
  return it == e.fields().end() || it->second == "-" ? std::string() : it->second;
}

// "spiffe://td/ns/NS/sa/SA" -> "NS/SA"; "" when it is not one.
std::string serviceAccountOf(const std::string& id) {
  auto ns = id.find("/ns/");
  auto sa = id.find("/sa/");
  if (ns == std::string::npos || sa == std::string::npos || sa < ns) return "";
  return id.substr(ns + 4, sa - ns - 4) + "/" + id.substr(sa + 4);
}

// "1.2.3.4:443", "[2001:db8::1]:443" -> address and port.
bool splitDst(const std::string& dst, std::string* ip, uint16_t* port) {
  auto colon = dst.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = dst.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned v = 0;
  auto [p, ec] = std::from_chars(dst.data() + colon + 1, dst.data() + dst.size(), v);
  if (ec != std::errc() || p != dst.data() + dst.size() || v == 0 || v > 65535) return false;
  *ip = host;
  *port = static_cast<uint16_t>(v);
  return true;
}

bool isAddress(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string portProtocol(const std::string& sniffed) {
  if (sniffed == "http") return "HTTP";
  if (sniffed == "tls") return "TLS";
  return "TCP";
}

// A DNS-1123 label for metadata.name: lower case, [a-z0-9-], at most 63 characters.
std::string entryName(const std::string& host) {
  std::string out = "learned-";
  for (char c : host) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9');
    if (ok) {
      out += l;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  if (out.size() > 63) out.resize(63);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string joinCounts(const std::map<std::string, uint64_t>& m) {
  std::string out;
  for (const auto& [k, n] : m) out += fmt::format("{}{} ({})", out.empty() ? "" : ", ", k, n);
  return out;
}

}  // namespace

void Learner::add(const admin::LogEvent& e) {
  if (!only_.empty() && e.namespace_() != only_) return;
  if (e.kind() == "dns") {
    std::string name = field(e, "name");
    if (!name.empty()) dnsOnly_[name]++;
    return;
  }
  if (e.kind() != "conn") return;
  std::string reason = field(e, "reason");
  std::string decision = field(e, "decision");
  // Only what a ServiceEntry decides: allowed because ALLOW_ANY let it through, or denied for
  // want of an entry. The rest is in the header as skipped.
  static const std::set<std::string> kLearnable = {"allow_any", "not_in_registry",
                                                   "port_not_in_registry", "protocol_mismatch"};
  if (!kLearnable.contains(reason)) {
    skipped_[reason.empty() ? "-" : reason]++;
    return;
  }
  std::string ip;
  uint16_t port = 0;
  if (!splitDst(field(e, "dst"), &ip, &port)) {
    skipped_["no_destination"]++;
    return;
  }
  std::string name = field(e, "name");
  // A Host header or DNS-table name that is an address literal names nothing: by address.
  if (isAddress(name)) name.clear();
  std::string key = name.empty() ? ip : name;
  Host& h = hosts_[key];
  h.byAddress = name.empty();
  std::string proto = portProtocol(field(e, "protocol"));
  auto [it, fresh] = h.ports.try_emplace(port, Port{proto, {}});
  if (!fresh && it->second.protocol != proto) it->second.others.insert(proto);
  std::string sa = serviceAccountOf(field(e, "identity"));
  h.serviceAccounts[sa.empty() ? e.namespace_() + "/?" : sa]++;
  h.decisions[decision + " " + reason]++;
  h.namespaces.insert(e.namespace_());
  h.count++;
  connections_++;
}

std::string Learner::yaml(const std::string& source) const {
  std::string out = fmt::format(
      "# ServiceEntries learned by tollgatectl from {}: {} connection(s) to {} host(s).\n"
      "# Review each before applying: every entry opens egress for the namespaces it is exported\n"
      "# to. Validate with 'tollgatectl config validate DIR'.\n",
      source, connections_, hosts_.size());
  if (!skipped_.empty()) {
    out += fmt::format("# Not learned (a ServiceEntry would not change them): {}\n",
                       joinCounts(skipped_));
  }
  std::vector<std::string> resolvedOnly;
  for (const auto& [name, n] : dnsOnly_) {
    if (!hosts_.contains(name)) resolvedOnly.push_back(fmt::format("{} ({})", name, n));
  }
  if (!resolvedOnly.empty()) {
    std::string list;
    for (const auto& s : resolvedOnly) list += (list.empty() ? "" : ", ") + s;
    out += fmt::format("# Names refused by the DNS proxy and never connected to (no port seen): {}\n",
                       list);
  }
  std::set<std::string> usedNames;
  for (const auto& [host, h] : hosts_) {
    std::string name = entryName(h.byAddress ? "ip-" + host : host);
    for (int i = 2; usedNames.contains(name); ++i) {
      name = entryName(h.byAddress ? "ip-" + host : host);
      if (name.size() > 58) name.resize(58);
      name += fmt::format("-{}", i);
    }
    usedNames.insert(name);
    // The entry lives in the namespace of the pods that used it; seen from several, the first
    // one (exported to every namespace, Istio's default, so all of them keep working).
    std::string ns = *h.namespaces.begin();
    out += "---\n";
    out += fmt::format("# {}: {} connection(s) from {}\n", host, h.count, joinCounts(h.serviceAccounts));
    out += fmt::format("# decisions: {}\n", joinCounts(h.decisions));
    if (h.namespaces.size() > 1) {
      std::string all;
      for (const auto& n : h.namespaces) all += (all.empty() ? "" : ", ") + n;
      out += fmt::format("# used from namespaces {}: placed in {}, exported to all\n", all, ns);
    }
    for (const auto& [port, p] : h.ports) {
      if (p.others.empty()) continue;
      std::string others;
      for (const auto& o : p.others) others += (others.empty() ? "" : ", ") + o;
      out += fmt::format("# port {} also carried {}: declared {} (review)\n", port, others, p.protocol);
    }
    if (h.byAddress) {
      out += "# no name was ever seen (opaque TCP by address): an address entry\n";
    }
    YAML::Emitter y;
    y << YAML::BeginMap;
    y << YAML::Key << "apiVersion" << YAML::Value << "networking.istio.io/v1beta1";
    y << YAML::Key << "kind" << YAML::Value << "ServiceEntry";
    y << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "name" << YAML::Value << name;
    y << YAML::Key << "namespace" << YAML::Value << ns;
    y << YAML::EndMap;
    y << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "hosts" << YAML::Value << YAML::BeginSeq
      << (h.byAddress ? name + ".learned.invalid" : host) << YAML::EndSeq;
    if (h.byAddress) {
      bool v6 = host.find(':') != std::string::npos;
      y << YAML::Key << "addresses" << YAML::Value << YAML::BeginSeq
        << host + (v6 ? "/128" : "/32") << YAML::EndSeq;
    }
    y << YAML::Key << "location" << YAML::Value << "MESH_EXTERNAL";
    y << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq;
    for (const auto& [port, p] : h.ports) {
      std::string lower = p.protocol;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      y << YAML::Flow << YAML::BeginMap;
      y << YAML::Key << "number" << YAML::Value << port;
      y << YAML::Key << "name" << YAML::Value << fmt::format("{}-{}", lower, port);
      y << YAML::Key << "protocol" << YAML::Value << p.protocol;
      y << YAML::EndMap;
    }
    y << YAML::EndSeq;
    if (h.byAddress) {
      y << YAML::Key << "resolution" << YAML::Value << "STATIC";
      y << YAML::Key << "endpoints" << YAML::Value << YAML::BeginSeq << YAML::Flow << YAML::BeginMap
        << YAML::Key << "address" << YAML::Value << host << YAML::EndMap << YAML::EndSeq;
    } else {
      y << YAML::Key << "resolution" << YAML::Value << "DNS";
    }
    y << YAML::EndMap;
    y << YAML::EndMap;
    out += y.c_str();
    out += "\n";
  }
  return out;
}

}  // namespace tollgate::cli
