#include "proxy/dns_cache.h"

#include <algorithm>
#include <utility>

namespace tollgate::proxy {
namespace {

using std::chrono::seconds;

// RFC 2308 §5: a negative answer lives for min(SOA TTL, SOA MINIMUM).
std::optional<uint32_t> negativeTtl(const DnsMessage& m) {
  for (const auto& rr : m.authority) {
    if (auto minimum = rr.soaMinimum()) return std::min(rr.ttl, *minimum);
  }
  return std::nullopt;
}

std::optional<uint32_t> positiveTtl(const DnsMessage& m) {
  std::optional<uint32_t> ttl;
  for (const auto& rr : m.answers) ttl = std::min(ttl.value_or(rr.ttl), rr.ttl);
  return ttl;
}

}  // namespace

DnsCache::DnsCache(Options options, Clock clock) : options_(options), clock_(std::move(clock)) {}

std::string DnsCache::key(std::string_view name, uint16_t qtype, uint16_t qclass) {
  std::string k(name);
  k.push_back('\0');
  k.push_back(static_cast<char>(qtype >> 8));
  k.push_back(static_cast<char>(qtype));
  k.push_back(static_cast<char>(qclass >> 8));
  k.push_back(static_cast<char>(qclass));
  return k;
}

bool DnsCache::insert(std::span<const uint8_t> response) {
  auto msg = parseDnsMessage(response);
  if (!msg || !msg->header.qr() || msg->header.tc() || msg->questions.empty()) return false;
  const auto rcode = static_cast<DnsRcode>(msg->header.rcode());
  std::optional<uint32_t> ttl;
  seconds cap = options_.maxTtl;
  if (rcode == DnsRcode::NoError && !msg->answers.empty()) {
    ttl = positiveTtl(*msg);
  } else if (rcode == DnsRcode::NoError || rcode == DnsRcode::NxDomain) {
    ttl = negativeTtl(*msg);
    cap = options_.maxNegativeTtl;
  }
  if (!ttl || *ttl == 0) return false;
  const seconds life = std::min<seconds>(seconds(*ttl), cap);
  if (life.count() <= 0) return false;

  const auto& q = msg->questions.front();
  std::string k = key(q.name, q.qtype, q.qclass);
  const TimePoint now = clock_();
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(k); it != entries_.end()) {
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  while (!entries_.empty() && entries_.size() >= options_.maxEntries) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  if (options_.maxEntries == 0) return false;
  lru_.push_front(k);
  entries_.emplace(std::move(k), Entry{std::move(*msg), now, now + life, lru_.begin()});
  return true;
}

std::optional<std::vector<uint8_t>> DnsCache::lookup(std::span<const uint8_t> query) {
  auto msg = parseDnsMessage(query);
  if (!msg) return std::nullopt;
  return lookup(*msg);
}

std::optional<std::vector<uint8_t>> DnsCache::lookup(const DnsMessage& query) {
  if (query.questions.empty()) return std::nullopt;
  const auto& q = query.questions.front();
  const TimePoint now = clock_();
  DnsMessage out;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key(q.name, q.qtype, q.qclass));
    if (it == entries_.end()) return std::nullopt;
    if (now >= it->second.expires) {
      lru_.erase(it->second.lru);
      entries_.erase(it);
      return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    out = it->second.response;
    const auto age = std::chrono::duration_cast<seconds>(now - it->second.stored).count();
    const auto aged = [age](uint32_t ttl) {
      return ttl > age ? static_cast<uint32_t>(ttl - age) : 0u;
    };
    for (auto* section : {&out.answers, &out.authority, &out.additional}) {
      for (auto& rr : *section) {
        if (rr.type != dnstype::kOpt) rr.ttl = aged(rr.ttl);
      }
    }
  }
  out.header.id = query.header.id;
  // The client's RD bit is echoed (RFC 1035 §4.1.1); the rest of the flags are the upstream's.
  out.header.flags = (out.header.flags & ~DnsHeader::kRd) | (query.header.flags & DnsHeader::kRd);
  out.questions.front().originalName = q.originalName;
  auto wire = serializeDnsMessage(out);
  if (!wire) return std::nullopt;
  return std::move(*wire);
}

size_t DnsCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void DnsCache::clear() {
  std::lock_guard lock(mu_);
  entries_.clear();
  lru_.clear();
}

}  // namespace tollgate::proxy
