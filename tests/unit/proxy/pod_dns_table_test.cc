#include "proxy/pod_dns_table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "proxy/dns_message.h"

namespace tollgate::proxy {
namespace {

using namespace std::chrono_literals;
using policy::IpAddress;

const PodDnsTable::TimePoint kT0{std::chrono::hours(10)};

IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }

DnsRecord addr(const std::string& owner, uint32_t ttl, const char* text) {
  DnsRecord rr;
  rr.name = owner;
  rr.originalName = owner;
  const IpAddress a = ip(text);
  rr.type = a.isV4() ? dnstype::kA : dnstype::kAaaa;
  rr.ttl = ttl;
  rr.rdata.assign(a.bytes.begin(), a.bytes.begin() + (a.isV4() ? 4 : 16));
  return rr;
}

DnsRecord cname(const std::string& owner, uint32_t ttl, const std::string& target) {
  DnsRecord rr;
  rr.name = owner;
  rr.type = dnstype::kCname;
  rr.ttl = ttl;
  rr.target = target;
  return rr;
}

DnsMessage answer(const std::string& qname, std::vector<DnsRecord> answers) {
  DnsMessage m;
  m.header.flags = DnsHeader::kQr | DnsHeader::kRa;
  m.questions.push_back({.name = qname, .originalName = qname, .qtype = dnstype::kA});
  m.answers = std::move(answers);
  return m;
}

TEST(PodDnsTable, BindsQueriedNameAndCnameTargets) {
  PodDnsTable t;
  auto m = answer("api.example.com", {cname("api.example.com", 300, "edge.cdn.net"),
                                      cname("edge.cdn.net", 300, "lb.cdn.net"),
                                      addr("lb.cdn.net", 60, "198.18.0.10")});
  EXPECT_EQ(t.recordResponse(m, kT0), 3u);
  EXPECT_EQ(t.namesFor(ip("198.18.0.10"), kT0),
            (std::vector<std::string>{"api.example.com", "edge.cdn.net", "lb.cdn.net"}));
  EXPECT_TRUE(t.resolvedAs(ip("198.18.0.10"), "API.Example.com.", kT0));
  EXPECT_FALSE(t.resolvedAs(ip("198.18.0.10"), "other.example.com", kT0));
  EXPECT_FALSE(t.resolvedAs(ip("198.18.0.11"), "api.example.com", kT0));
}

TEST(PodDnsTable, IgnoresRecordsOffTheChain) {
  PodDnsTable t;
  // An upstream adding an unrelated owner must not bind that address to anything.
  auto m =
      answer("a.test", {addr("a.test", 60, "198.18.0.1"), addr("bank.test", 60, "198.18.0.2")});
  EXPECT_EQ(t.recordResponse(m, kT0), 1u);
  EXPECT_TRUE(t.namesFor(ip("198.18.0.2"), kT0).empty());
  EXPECT_EQ(t.addressCount(), 1u);
}

TEST(PodDnsTable, CnameLoopTerminates) {
  PodDnsTable t;
  auto m = answer("a.test", {cname("a.test", 60, "b.test"), cname("b.test", 60, "a.test"),
                             addr("b.test", 60, "198.18.0.3")});
  EXPECT_EQ(t.recordResponse(m, kT0), 2u);
  EXPECT_TRUE(t.resolvedAs(ip("198.18.0.3"), "a.test", kT0));
}

TEST(PodDnsTable, ExpiresAfterTtlPlusGrace) {
  PodDnsTable t({.grace = 30s});
  // The chain TTL is the smallest along it: CNAME 20 s, A 300 s.
  auto m = answer("a.test", {cname("a.test", 20, "b.test"), addr("b.test", 300, "198.18.0.4")});
  t.recordResponse(m, kT0);
  EXPECT_TRUE(t.resolvedAs(ip("198.18.0.4"), "a.test", kT0 + 49s));
  EXPECT_FALSE(t.resolvedAs(ip("198.18.0.4"), "a.test", kT0 + 50s));
  EXPECT_TRUE(t.namesFor(ip("198.18.0.4"), kT0 + 50s).empty());
  EXPECT_EQ(t.expire(kT0 + 50s), 1u);
  EXPECT_EQ(t.addressCount(), 0u);
}

TEST(PodDnsTable, RefreshExtendsAndNeverShortens) {
  PodDnsTable t({.grace = 0s});
  t.record(ip("198.18.0.5"), "a.test", 100s, kT0);
  t.record(ip("198.18.0.5"), "a.test", 10s, kT0 + 1s);
  EXPECT_TRUE(t.resolvedAs(ip("198.18.0.5"), "a.test", kT0 + 99s));
  t.record(ip("198.18.0.5"), "a.test", 100s, kT0 + 50s);
  EXPECT_TRUE(t.resolvedAs(ip("198.18.0.5"), "a.test", kT0 + 149s));
}

TEST(PodDnsTable, IgnoresErrorsAndQueries) {
  PodDnsTable t;
  auto nx = answer("a.test", {addr("a.test", 60, "198.18.0.6")});
  nx.header.setRcode(DnsRcode::NxDomain);
  EXPECT_EQ(t.recordResponse(nx, kT0), 0u);
  auto q = answer("a.test", {addr("a.test", 60, "198.18.0.6")});
  q.header.flags = 0;
  EXPECT_EQ(t.recordResponse(q, kT0), 0u);
  EXPECT_EQ(t.addressCount(), 0u);
}

TEST(PodDnsTable, EvictsOldestAddressAtCapacity) {
  PodDnsTable t({.maxAddresses = 2});
  t.record(ip("198.18.0.1"), "one.test", 60s, kT0);
  t.record(ip("198.18.0.2"), "two.test", 60s, kT0);
  t.record(ip("198.18.0.1"), "one.test", 60s, kT0 + 1s);  // refreshed: now the newest
  t.record(ip("198.18.0.3"), "three.test", 60s, kT0 + 2s);
  EXPECT_EQ(t.addressCount(), 2u);
  EXPECT_TRUE(t.resolvedAs(ip("198.18.0.1"), "one.test", kT0 + 2s));
  EXPECT_FALSE(t.resolvedAs(ip("198.18.0.2"), "two.test", kT0 + 2s));
  EXPECT_TRUE(t.resolvedAs(ip("198.18.0.3"), "three.test", kT0 + 2s));
}

TEST(PodDnsTable, CapsNamesPerAddress) {
  PodDnsTable t({.maxNamesPerAddress = 2});
  t.record(ip("198.18.0.7"), "short.test", 10s, kT0);
  t.record(ip("198.18.0.7"), "long.test", 100s, kT0);
  t.record(ip("198.18.0.7"), "new.test", 50s, kT0);  // drops short.test, the first to expire
  EXPECT_EQ(t.namesFor(ip("198.18.0.7"), kT0), (std::vector<std::string>{"long.test", "new.test"}));
}

TEST(PodDnsTable, V4MappedV6FoldsToV4) {
  PodDnsTable t;
  t.record(ip("198.18.0.8"), "a.test", 60s, kT0);
  EXPECT_TRUE(t.resolvedAs(ip("::ffff:198.18.0.8"), "a.test", kT0));
  auto m = answer("v6.test", {addr("v6.test", 60, "2001:db8::1")});
  t.recordResponse(m, kT0);
  EXPECT_TRUE(t.resolvedAs(ip("2001:db8::1"), "v6.test", kT0));
}

TEST(PodDnsTable, ConcurrentRecordAndLookup) {
  PodDnsTable t({.maxAddresses = 64});
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      t.record(IpAddress::v4(0xc6120000u + static_cast<uint32_t>(i % 128)), "w.test", 60s, kT0);
    }
  });
  size_t seen = 0;
  for (int i = 0; i < 2000; ++i) {
    seen += t.namesFor(IpAddress::v4(0xc6120000u + static_cast<uint32_t>(i % 128)), kT0).size();
  }
  writer.join();
  EXPECT_LE(t.addressCount(), 64u);
  EXPECT_LE(seen, 2000u);
}

}  // namespace
}  // namespace tollgate::proxy
