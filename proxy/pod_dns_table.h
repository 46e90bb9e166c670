#pragma once

// What one pod resolved through the DNS proxy: address -> the names it was an answer for, each
// until its TTL plus a grace period. Lets the proxy decide a connection to a bare IP by the name
// the pod looked up (strict mode: an address the pod never resolved gets no name at all).
// Thread-safe: DNS answers are recorded while sessions look addresses up.

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/ip.h"
#include "proxy/dns_message.h"

namespace tollgate::proxy {

class PodDnsTable {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Options {
    std::chrono::seconds grace{30};  // connections often start just after a TTL runs out
    std::chrono::seconds maxTtl{86400};
    size_t maxAddresses = 4096;      // per pod; the least recently recorded address goes first
    size_t maxNamesPerAddress = 64;  // shared hosting: the name expiring first goes first
  };

  PodDnsTable() : PodDnsTable(Options{}) {}
  explicit PodDnsTable(Options options) : options_(options) {}

  // Records the A/AAAA answers of a response to the pod. An address is bound to the queried name
  // and to every CNAME target on the chain from it to the address record; records whose owner is
  // not on that chain are ignored (an upstream cannot bind an address to an unrelated name).
  // Expiry = now + min(TTLs along the chain) + grace. Returns the bindings added or refreshed.
  size_t recordResponse(const DnsMessage& response, TimePoint now);

  // Binds one address to one name (lowercased, trailing dot dropped) for `ttl` + grace.
  void record(const policy::IpAddress& ip, std::string_view name, std::chrono::seconds ttl,
              TimePoint now);

  // Names `ip` was an answer for and that have not expired at `now`, sorted.
  std::vector<std::string> namesFor(const policy::IpAddress& ip, TimePoint now) const;

  // Whether `ip` was an unexpired answer for `name` (case-insensitive, trailing dot ignored).
  bool resolvedAs(const policy::IpAddress& ip, std::string_view name, TimePoint now) const;

  // Drops expired bindings and addresses left with none; returns the addresses dropped.
  size_t expire(TimePoint now);

  size_t addressCount() const;

 private:
  struct Entry {
    std::map<std::string, TimePoint> names;  // name -> expiry
    std::list<policy::IpAddress>::iterator order;
  };
  void recordLocked(const policy::IpAddress& ip, std::string name, TimePoint expires);

  Options options_;
  mutable std::shared_mutex mu_;
  std::list<policy::IpAddress> order_;  // least recently recorded first
  std::unordered_map<policy::IpAddress, Entry, policy::IpAddressHash> entries_;
};

}  // namespace tollgate::proxy
