#pragma once

// A TTL-honouring cache of DNS responses for the DNS proxy, keyed by (qname, qtype, qclass).
// Positive answers live for the smallest answer TTL, negative ones (NXDOMAIN, NODATA) for the SOA
// rule of RFC 2308 §5 capped at 5 minutes. A hit is rewritten for the asking client: its id, its
// question (case included, for 0x20 randomisation) and TTLs reduced by the entry's age.

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "proxy/dns_message.h"

namespace tollgate::proxy {

class DnsCache {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Clock = std::function<TimePoint()>;

  struct Options {
    size_t maxEntries = 10000;
    std::chrono::seconds maxNegativeTtl{300};  // RFC 2308 §5 suggests 1-3 hours; we keep it short
    std::chrono::seconds maxTtl{86400};        // RFC 2181 §8 allows 2^31-1; a day is plenty
  };

  explicit DnsCache(Options options, Clock clock = &std::chrono::steady_clock::now);

  // Stores `response` under its first question. Not cached (returns false): parse errors, TC set,
  // RCODEs other than NOERROR/NXDOMAIN, no question, a zero TTL, negative answers without an SOA.
  bool insert(std::span<const uint8_t> response);

  // The cached response for `query`'s first question with `query`'s id and question, TTLs aged;
  // nullopt on a miss or an expired entry (which is dropped).
  std::optional<std::vector<uint8_t>> lookup(const DnsMessage& query);
  std::optional<std::vector<uint8_t>> lookup(std::span<const uint8_t> query);

  size_t size() const;
  void clear();

 private:
  struct Entry {
    DnsMessage response;
    TimePoint stored;
    TimePoint expires;
    std::list<std::string>::iterator lru;
  };
  static std::string key(std::string_view name, uint16_t qtype, uint16_t qclass);

  Options options_;
  Clock clock_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // most recently used first
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace tollgate::proxy
