#pragma once

// What `tollgatectl learn` does with the agent's events: it counts the external flows pods tried
// (allowed under ALLOW_ANY or denied as not in the registry) per host, port and protocol, and
// writes one ServiceEntry per host for a human to review. Pure: events in, YAML out, so tests
// can check that the YAML loads and allows exactly what was seen.

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "proto/admin.pb.h"

namespace tollgate::cli {

class Learner {
 public:
  // Only pods of this namespace ("": every namespace).
  explicit Learner(std::string onlyNamespace = "") : only_(std::move(onlyNamespace)) {}

  // Takes a journal event; those that are not a connection a ServiceEntry would change are
  // counted as skipped (in-cluster, already allowed by an entry, denied by NetworkPolicy...).
  void add(const admin::LogEvent& e);

  size_t hosts() const { return hosts_.size(); }
  size_t connections() const { return connections_; }

  // The ServiceEntries, sorted by host, each with a comment giving how often it was seen, from
  // which service accounts and with which decisions. `source` describes the window ("10m on
  // node-1") for the header.
  std::string yaml(const std::string& source) const;

 private:
  struct Port {
    std::string protocol;  // HTTP | TLS | TCP: the first one seen on this port
    std::set<std::string> others;  // protocols also seen on it (reported, not emitted)
  };
  struct Host {
    bool byAddress = false;  // no name was ever seen: an address entry
    std::map<uint16_t, Port> ports;
    std::map<std::string, uint64_t> serviceAccounts;  // "ns/sa" -> connections
    std::map<std::string, uint64_t> decisions;        // "allow allow_any" -> connections
    std::set<std::string> namespaces;
    uint64_t count = 0;
  };

  std::string only_;
  std::map<std::string, Host> hosts_;
  std::map<std::string, uint64_t> skipped_;         // reason -> connections
  std::map<std::string, uint64_t> dnsOnly_;         // names refused by the DNS proxy
  uint64_t connections_ = 0;
};

}  // namespace tollgate::cli
