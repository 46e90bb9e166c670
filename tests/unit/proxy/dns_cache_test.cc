#include "proxy/dns_cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "proxy/dns_message.h"

namespace tollgate::proxy {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

struct FakeClock {
  DnsCache::TimePoint now{std::chrono::hours(1)};
  DnsCache::Clock fn() {
    return [this] { return now; };
  }
};

DnsRecord aRecord(const std::string& name, uint32_t ttl, std::vector<uint8_t> ip) {
  DnsRecord rr;
  rr.originalName = name;
  rr.type = dnstype::kA;
  rr.ttl = ttl;
  rr.rdata = std::move(ip);
  return rr;
}

// SOA with the given record TTL and MINIMUM field.
DnsRecord soa(const std::string& zone, uint32_t ttl, uint32_t minimum) {
  DnsRecord rr;
  rr.originalName = zone;
  rr.type = dnstype::kSoa;
  rr.ttl = ttl;
  for (const char* n : {"ns", "host"}) {
    rr.rdata.push_back(static_cast<uint8_t>(std::string(n).size()));
    rr.rdata.insert(rr.rdata.end(), n, n + std::string(n).size());
    rr.rdata.push_back(0);
  }
  for (uint32_t v : {1u, 2u, 3u, 4u, minimum}) {
    for (int s = 24; s >= 0; s -= 8) rr.rdata.push_back(static_cast<uint8_t>(v >> s));
  }
  return rr;
}

Bytes response(const std::string& qname, uint16_t qtype, DnsRcode rcode,
               std::vector<DnsRecord> answers, std::vector<DnsRecord> authority = {}) {
  DnsMessage m;
  m.header.id = 0x1111;
  m.header.flags = DnsHeader::kQr | DnsHeader::kRd | DnsHeader::kRa;
  m.header.setRcode(rcode);
  m.questions.push_back({.originalName = qname, .qtype = qtype});
  m.answers = std::move(answers);
  m.authority = std::move(authority);
  auto wire = serializeDnsMessage(m);
  EXPECT_TRUE(wire) << wire.error().str();
  return wire.value_or(Bytes{});
}

DnsMessage query(uint16_t id, const std::string& name, uint16_t qtype = dnstype::kA) {
  auto wire = buildDnsQuery(id, name, qtype);
  EXPECT_TRUE(wire);
  return parseDnsMessage(*wire).value();
}

TEST(DnsCache, HitRewritesIdQuestionCaseAndAgesTtls) {
  FakeClock clock;
  DnsCache cache({}, clock.fn());
  ASSERT_TRUE(cache.insert(response(
      "example.com", dnstype::kA, DnsRcode::NoError,
      {aRecord("example.com", 100, {1, 2, 3, 4}), aRecord("example.com", 300, {5, 6, 7, 8})})));
  clock.now += 30s;
  auto hit = cache.lookup(query(0x2222, "ExAmPle.COM"));
  ASSERT_TRUE(hit);
  auto m = parseDnsMessage(*hit);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->header.id, 0x2222);
  EXPECT_EQ(m->questions[0].originalName, "ExAmPle.COM");
  ASSERT_EQ(m->answers.size(), 2u);
  EXPECT_EQ(m->answers[0].ttl, 70u);
  EXPECT_EQ(m->answers[1].ttl, 270u);
  EXPECT_EQ(m->answers[0].address()->str(), "1.2.3.4");
}

TEST(DnsCache, ExpiresAtTheSmallestAnswerTtl) {
  FakeClock clock;
  DnsCache cache({}, clock.fn());
  ASSERT_TRUE(cache.insert(
      response("a.test", dnstype::kA, DnsRcode::NoError,
               {aRecord("a.test", 100, {1, 1, 1, 1}), aRecord("a.test", 10, {2, 2, 2, 2})})));
  clock.now += 9s;
  EXPECT_TRUE(cache.lookup(query(1, "a.test")));
  clock.now += 1s;
  EXPECT_FALSE(cache.lookup(query(1, "a.test")));
  EXPECT_EQ(cache.size(), 0u);  // expired entries are dropped on lookup
}

TEST(DnsCache, KeyIncludesTypeAndClass) {
  FakeClock clock;
  DnsCache cache({}, clock.fn());
  ASSERT_TRUE(cache.insert(
      response("a.test", dnstype::kA, DnsRcode::NoError, {aRecord("a.test", 100, {1, 1, 1, 1})})));
  EXPECT_FALSE(cache.lookup(query(1, "a.test", dnstype::kAaaa)));
  EXPECT_FALSE(cache.lookup(query(1, "b.test")));
  EXPECT_TRUE(cache.lookup(query(1, "A.TEST.")));
}

TEST(DnsCache, NegativeCachingUsesSoaMinimumCapped) {
  FakeClock clock;
  DnsCache cache({}, clock.fn());
  // NXDOMAIN: min(SOA TTL 3600, MINIMUM 60) = 60 s.
  ASSERT_TRUE(cache.insert(
      response("gone.test", dnstype::kA, DnsRcode::NxDomain, {}, {soa("test", 3600, 60)})));
  clock.now += 59s;
  auto hit = cache.lookup(query(3, "gone.test"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(parseDnsMessage(*hit)->header.rcode(), static_cast<uint8_t>(DnsRcode::NxDomain));
  clock.now += 1s;
  EXPECT_FALSE(cache.lookup(query(3, "gone.test")));

  // NODATA with a huge SOA minimum: capped at 300 s.
  ASSERT_TRUE(cache.insert(
      response("nodata.test", dnstype::kAaaa, DnsRcode::NoError, {}, {soa("test", 86400, 86400)})));
  clock.now += 299s;
  EXPECT_TRUE(cache.lookup(query(4, "nodata.test", dnstype::kAaaa)));
  clock.now += 1s;
  EXPECT_FALSE(cache.lookup(query(4, "nodata.test", dnstype::kAaaa)));
}

TEST(DnsCache, RefusesUncacheableResponses) {
  FakeClock clock;
  DnsCache cache({}, clock.fn());
  EXPECT_FALSE(cache.insert(response("x.test", dnstype::kA, DnsRcode::NxDomain, {})));  // no SOA
  EXPECT_FALSE(cache.insert(response("x.test", dnstype::kA, DnsRcode::ServFail, {})));
  EXPECT_FALSE(cache.insert(
      response("x.test", dnstype::kA, DnsRcode::NoError, {aRecord("x.test", 0, {1, 2, 3, 4})})));
  Bytes tc =
      response("x.test", dnstype::kA, DnsRcode::NoError, {aRecord("x.test", 5, {1, 2, 3, 4})});
  tc[2] |= 0x02;
  EXPECT_FALSE(cache.insert(tc));
  EXPECT_FALSE(cache.insert(Bytes{1, 2, 3}));
  auto q = buildDnsQuery(1, "x.test", dnstype::kA);
  EXPECT_FALSE(cache.insert(*q));  // a query, not a response
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DnsCache, EvictsLeastRecentlyUsed) {
  FakeClock clock;
  DnsCache cache({.maxEntries = 2}, clock.fn());
  auto put = [&](const std::string& name) {
    return cache.insert(
        response(name, dnstype::kA, DnsRcode::NoError, {aRecord(name, 100, {1, 2, 3, 4})}));
  };
  ASSERT_TRUE(put("a.test"));
  ASSERT_TRUE(put("b.test"));
  ASSERT_TRUE(cache.lookup(query(1, "a.test")));  // a is now the most recent
  ASSERT_TRUE(put("c.test"));                     // evicts b
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.lookup(query(1, "a.test")));
  EXPECT_FALSE(cache.lookup(query(1, "b.test")));
  EXPECT_TRUE(cache.lookup(query(1, "c.test")));
}

TEST(DnsCache, ReinsertReplacesEntry) {
  FakeClock clock;
  DnsCache cache({}, clock.fn());
  ASSERT_TRUE(cache.insert(
      response("a.test", dnstype::kA, DnsRcode::NoError, {aRecord("a.test", 100, {1, 1, 1, 1})})));
  ASSERT_TRUE(cache.insert(
      response("a.test", dnstype::kA, DnsRcode::NoError, {aRecord("a.test", 100, {9, 9, 9, 9})})));
  EXPECT_EQ(cache.size(), 1u);
  auto hit = cache.lookup(query(1, "a.test"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(parseDnsMessage(*hit)->answers[0].address()->str(), "9.9.9.9");
}

}  // namespace
}  // namespace tollgate::proxy
