#include "proxy/pod_dns_table.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <utility>

namespace tollgate::proxy {
namespace {

std::string normalized(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

}  // namespace

size_t PodDnsTable::recordResponse(const DnsMessage& response, TimePoint now) {
  if (!response.header.qr() || response.questions.empty()) return 0;
  if (response.header.rcode() != static_cast<uint8_t>(DnsRcode::NoError)) return 0;

  // Walk the CNAME chain from the question, remembering the smallest TTL so far for each name.
  // The chain is bounded by the answer count and a visited set, so a CNAME loop ends.
  std::map<std::string, uint32_t> chain;  // name -> min TTL of the CNAMEs leading to it
  std::vector<std::string> order;
  std::string current = response.questions.front().name;
  uint32_t chainTtl = UINT32_MAX;
  chain.emplace(current, chainTtl);
  order.push_back(current);
  for (size_t step = 0; step < response.answers.size(); ++step) {
    const DnsRecord* next = nullptr;
    for (const auto& rr : response.answers) {
      if (rr.type == dnstype::kCname && rr.name == current) {
        next = &rr;
        break;
      }
    }
    if (!next || chain.contains(next->target)) break;
    chainTtl = std::min(chainTtl, next->ttl);
    current = next->target;
    chain.emplace(current, chainTtl);
    order.push_back(current);
  }

  size_t added = 0;
  std::unique_lock lock(mu_);
  for (const auto& rr : response.answers) {
    const auto ip = rr.address();
    if (!ip) continue;
    auto owner = chain.find(rr.name);
    if (owner == chain.end()) continue;
    const uint32_t ttl = std::min(owner->second, rr.ttl);
    const auto life = std::min<std::chrono::seconds>(std::chrono::seconds(ttl), options_.maxTtl);
    const TimePoint expires = now + life + options_.grace;
    // Every name on the chain up to and including the record's owner names this address.
    for (const auto& name : order) {
      recordLocked(*ip, name, expires);
      ++added;
      if (name == rr.name) break;
    }
  }
  return added;
}

void PodDnsTable::record(const policy::IpAddress& ip, std::string_view name,
                         std::chrono::seconds ttl, TimePoint now) {
  const auto life = std::min(ttl, options_.maxTtl);
  std::unique_lock lock(mu_);
  recordLocked(ip, normalized(name), now + life + options_.grace);
}

void PodDnsTable::recordLocked(const policy::IpAddress& rawIp, std::string name,
                               TimePoint expires) {
  if (options_.maxAddresses == 0 || options_.maxNamesPerAddress == 0) return;
  const policy::IpAddress ip = rawIp.unmapped();
  auto it = entries_.find(ip);
  if (it == entries_.end()) {
    while (entries_.size() >= options_.maxAddresses) {
      entries_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(ip);
    it = entries_.emplace(ip, Entry{{}, std::prev(order_.end())}).first;
  } else {
    order_.splice(order_.end(), order_, it->second.order);
  }
  auto& names = it->second.names;
  if (auto n = names.find(name); n != names.end()) {
    n->second = std::max(n->second, expires);
    return;
  }
  if (names.size() >= options_.maxNamesPerAddress) {
    auto soonest = std::min_element(names.begin(), names.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;
    });
    names.erase(soonest);
  }
  names.emplace(std::move(name), expires);
}

std::vector<std::string> PodDnsTable::namesFor(const policy::IpAddress& ip, TimePoint now) const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  auto it = entries_.find(ip.unmapped());
  if (it == entries_.end()) return out;
  for (const auto& [name, expires] : it->second.names) {
    if (now < expires) out.push_back(name);
  }
  return out;  // std::map order: already sorted
}

bool PodDnsTable::resolvedAs(const policy::IpAddress& ip, std::string_view name,
                             TimePoint now) const {
  const std::string want = normalized(name);
  std::shared_lock lock(mu_);
  auto it = entries_.find(ip.unmapped());
  if (it == entries_.end()) return false;
  auto n = it->second.names.find(want);
  return n != it->second.names.end() && now < n->second;
}

size_t PodDnsTable::expire(TimePoint now) {
  std::unique_lock lock(mu_);
  size_t dropped = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    std::erase_if(it->second.names, [now](const auto& kv) { return now >= kv.second; });
    if (it->second.names.empty()) {
      order_.erase(it->second.order);
      it = entries_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

size_t PodDnsTable::addressCount() const {
  std::shared_lock lock(mu_);
  return entries_.size();
}

}  // namespace tollgate::proxy
