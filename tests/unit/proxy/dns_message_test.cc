#include "proxy/dns_message.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::proxy {
namespace {

using Bytes = std::vector<uint8_t>;

// Hand-assembled wire bytes, so tests can say exactly what a hostile message contains.
struct Raw {
  Bytes b;
  Raw& u8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Raw& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
  Raw& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v)); }
  Raw& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  Raw& label(std::string_view l) {
    u8(static_cast<uint8_t>(l.size()));
    b.insert(b.end(), l.begin(), l.end());
    return *this;
  }
  // Labels of a dotted name, then the root label.
  Raw& name(std::string_view dotted) {
    size_t start = 0;
    while (start < dotted.size()) {
      size_t dot = dotted.find('.', start);
      if (dot == std::string_view::npos) dot = dotted.size();
      label(dotted.substr(start, dot - start));
      start = dot + 1;
    }
    return u8(0);
  }
  Raw& ptr(uint16_t offset) { return u16(static_cast<uint16_t>(0xc000 | offset)); }
  Raw& bytes(const Bytes& v) {
    b.insert(b.end(), v.begin(), v.end());
    return *this;
  }
  size_t size() const { return b.size(); }
};

constexpr uint16_t kResponseFlags = 0x8180;  // QR RD RA, NOERROR

// "www.Example.com" A: CNAME to cdn.example.net, which has A 93.184.216.34 and 169.254.169.254,
// and an AAAA ::1. Names after the question are compressed.
Bytes cnameResponse() {
  Raw r;
  r.header(0xbeef, kResponseFlags, 1, 4, 0, 0);
  const uint16_t qname = static_cast<uint16_t>(r.size());
  r.name("www.Example.com").u16(dnstype::kA).u16(1);
  // CNAME www.Example.com -> cdn.example.net
  r.ptr(qname).u16(dnstype::kCname).u16(1).u32(300);
  const size_t rdlenAt = r.size();
  r.u16(0);
  const uint16_t target = static_cast<uint16_t>(r.size());
  r.label("cdn").label("example").label("net").u8(0);
  const size_t rdlen = r.size() - rdlenAt - 2;
  r.b[rdlenAt] = 0;
  r.b[rdlenAt + 1] = static_cast<uint8_t>(rdlen);
  r.ptr(target).u16(dnstype::kA).u16(1).u32(60).u16(4).bytes({93, 184, 216, 34});
  r.ptr(target).u16(dnstype::kA).u16(1).u32(60).u16(4).bytes({169, 254, 169, 254});
  Bytes loopback6(16, 0);
  loopback6[15] = 1;
  r.ptr(target).u16(dnstype::kAaaa).u16(1).u32(60).u16(16).bytes(loopback6);
  return r.b;
}

TEST(DnsMessage, QueryRoundTripsWithCaseAndEdns) {
  auto q = buildDnsQuery(0x1234, "Example.COM.", dnstype::kAaaa, {.ednsUdpSize = 1232});
  ASSERT_TRUE(q) << q.error().str();
  auto m = parseDnsMessage(*q);
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_EQ(m->header.id, 0x1234);
  EXPECT_TRUE(m->header.rd());
  EXPECT_FALSE(m->header.qr());
  ASSERT_EQ(m->questions.size(), 1u);
  EXPECT_EQ(m->questions[0].name, "example.com");
  EXPECT_EQ(m->questions[0].originalName, "Example.COM");
  EXPECT_EQ(m->questions[0].qtype, dnstype::kAaaa);
  EXPECT_EQ(m->ednsUdpSize(), 1232);
  EXPECT_EQ(maxUdpResponseBytes(*m), 1232u);
}

TEST(DnsMessage, QueryWithoutEdnsOrRd) {
  auto q = buildDnsQuery(7, "a.b", dnstype::kA, {.recursionDesired = false});
  ASSERT_TRUE(q);
  auto m = parseDnsMessage(*q);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->header.rd());
  EXPECT_FALSE(m->ednsUdpSize());
  EXPECT_EQ(maxUdpResponseBytes(*m), 512u);
  // 12 header + (1+1+1+1+1) name + 4
  EXPECT_EQ(q->size(), 12u + 5 + 4);
}

TEST(DnsMessage, QueryRejectsBadNames) {
  EXPECT_FALSE(buildDnsQuery(1, "a..b", dnstype::kA));
  EXPECT_FALSE(buildDnsQuery(1, std::string(64, 'a') + ".com", dnstype::kA));
  EXPECT_TRUE(buildDnsQuery(1, std::string(63, 'a') + ".com", dnstype::kA));
  std::string longName;
  for (int i = 0; i < 4; ++i) longName += std::string(63, 'a') + ".";
  EXPECT_FALSE(buildDnsQuery(1, longName + "com", dnstype::kA));  // 4*64+4+1 > 255
  EXPECT_FALSE(buildDnsQuery(1, "bad\\", dnstype::kA));
}

TEST(DnsMessage, ParsesCompressedCnameChain) {
  const Bytes wire = cnameResponse();
  auto m = parseDnsMessage(wire);
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_TRUE(m->header.qr());
  EXPECT_EQ(m->header.rcode(), 0);
  ASSERT_EQ(m->answers.size(), 4u);
  EXPECT_EQ(m->answers[0].name, "www.example.com");
  EXPECT_EQ(m->answers[0].originalName, "www.Example.com");
  EXPECT_EQ(m->answers[0].type, dnstype::kCname);
  EXPECT_EQ(m->answers[0].target, "cdn.example.net");
  EXPECT_EQ(m->answers[1].name, "cdn.example.net");
  ASSERT_TRUE(m->answers[1].address());
  EXPECT_EQ(m->answers[1].address()->str(), "93.184.216.34");
  EXPECT_EQ(m->answers[3].address()->str(), "::1");
  EXPECT_EQ(m->answers[1].ttl, 60u);
}

TEST(DnsMessage, EveryStrictPrefixIsAnError) {
  const Bytes wire = cnameResponse();
  for (size_t n = 0; n < wire.size(); ++n) {
    EXPECT_FALSE(parseDnsMessage(std::span(wire).first(n))) << "prefix of " << n << " bytes";
  }
}

TEST(DnsMessage, RejectsTrailingBytesAndOversize) {
  Bytes wire = cnameResponse();
  wire.push_back(0);
  EXPECT_FALSE(parseDnsMessage(wire));
  Bytes huge(kDnsMaxMessageBytes + 1, 0);
  auto r = parseDnsMessage(huge);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("65535"), std::string::npos);
}

TEST(DnsMessage, RejectsCountsBeyondTheMessage) {
  Raw r;
  r.header(1, kResponseFlags, 1, 0xffff, 0, 0).name("a.com").u16(1).u16(1);
  auto m = parseDnsMessage(r.b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().str().find("counts"), std::string::npos);
}

TEST(DnsMessage, RejectsSelfAndForwardPointers) {
  {
    Raw r;  // the question name is a pointer to itself
    r.header(1, 0, 1, 0, 0, 0).ptr(12).u16(1).u16(1);
    auto m = parseDnsMessage(r.b);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().str().find("backwards"), std::string::npos) << m.error().str();
  }
  {
    Raw r;  // label "a" then a pointer back to the start of the same name: a loop
    r.header(1, 0, 1, 0, 0, 0).label("a").ptr(12).u16(1).u16(1);
    EXPECT_FALSE(parseDnsMessage(r.b));
  }
  {
    Raw r;  // the question points forward at a name in the answer
    r.header(1, kResponseFlags, 1, 1, 0, 0).ptr(18).u16(1).u16(1);
    r.name("x.com").u16(1).u16(1).u32(1).u16(4).bytes({1, 2, 3, 4});
    EXPECT_FALSE(parseDnsMessage(r.b));
  }
  {
    Raw r;  // into the header
    r.header(1, 0, 1, 0, 0, 0).label("a").ptr(2).u16(1).u16(1);
    EXPECT_FALSE(parseDnsMessage(r.b));
  }
}

// Question i is a pointer to question i-1, so resolving question i takes i jumps.
Bytes pointerChain(size_t questions) {
  Raw r;
  r.header(1, 0, static_cast<uint16_t>(questions), 0, 0, 0);
  uint16_t prev = static_cast<uint16_t>(r.size());
  r.u8(0).u16(1).u16(1);
  for (size_t i = 1; i < questions; ++i) {
    const uint16_t here = static_cast<uint16_t>(r.size());
    r.ptr(prev).u16(1).u16(1);
    prev = here;
  }
  return r.b;
}

TEST(DnsMessage, CapsPointerJumps) {
  EXPECT_TRUE(parseDnsMessage(pointerChain(kDnsMaxPointerJumps + 1)));  // last takes 128 jumps
  auto m = parseDnsMessage(pointerChain(kDnsMaxPointerJumps + 2));
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().str().find("too many"), std::string::npos) << m.error().str();
}

TEST(DnsMessage, RejectsLongLabelsAndNames) {
  {
    Raw r;  // a length byte of 64 has the reserved 0x40 label type bits
    r.header(1, 0, 1, 0, 0, 0).label(std::string(64, 'a')).u8(0).u16(1).u16(1);
    EXPECT_FALSE(parseDnsMessage(r.b));
  }
  {
    Raw r;  // 4 labels of 63: 256 bytes on the wire
    r.header(1, 0, 1, 0, 0, 0);
    for (int i = 0; i < 4; ++i) r.label(std::string(63, 'a'));
    r.u8(0).u16(1).u16(1);
    auto m = parseDnsMessage(r.b);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().str().find("255"), std::string::npos);
  }
  {
    Raw r;  // 3 x 63 + 61: exactly 255 bytes
    r.header(1, 0, 1, 0, 0, 0);
    for (int i = 0; i < 3; ++i) r.label(std::string(63, 'a'));
    r.label(std::string(61, 'b')).u8(0).u16(1).u16(1);
    EXPECT_TRUE(parseDnsMessage(r.b));
  }
}

TEST(DnsMessage, EscapesDotsInsideLabels) {
  Raw r;  // one label "evil.com" must not read as the two-label name evil.com
  r.header(1, 0, 1, 0, 0, 0).label("evil.com").u8(0).u16(1).u16(1);
  auto m = parseDnsMessage(r.b);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->questions[0].name, "evil\\.com");
  auto back = serializeDnsMessage(*m);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r.b);
}

TEST(DnsMessage, TxtOptAndUnknownTypes) {
  Raw r;
  r.header(9, kResponseFlags, 1, 2, 0, 1).name("t.example").u16(dnstype::kTxt).u16(1);
  r.ptr(12).u16(dnstype::kTxt).u16(1).u32(5).u16(6).label("ab").label("cd");
  r.ptr(12).u16(99).u16(1).u32(5).u16(3).bytes({0xc0, 0x0c, 0xff});  // raw, not a name
  r.u8(0).u16(dnstype::kOpt).u16(4096).u32(0).u16(0);
  auto m = parseDnsMessage(r.b);
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_EQ(m->answers[0].txt(), (std::vector<std::string>{"ab", "cd"}));
  EXPECT_EQ(m->answers[1].rdata, (Bytes{0xc0, 0x0c, 0xff}));
  EXPECT_EQ(m->ednsUdpSize(), 4096);
  EXPECT_FALSE(m->answers[1].txt());
  auto back = serializeDnsMessage(*m);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r.b);  // same compression choices, byte for byte
}

TEST(DnsMessage, ExpandsCompressedNamesInMxAndSoa) {
  Raw r;
  r.header(3, 0x8183, 1, 1, 1, 0).name("mail.test").u16(dnstype::kMx).u16(1);
  r.ptr(12).u16(dnstype::kMx).u16(1).u32(60).u16(7).u16(10).label("mx").ptr(12);
  // SOA for "test" (offset 17): mname ns.<test>, rname <mail.test>, then 5 x u32.
  r.ptr(17).u16(dnstype::kSoa).u16(1).u32(3600).u16(5 + 2 + 20).label("ns").ptr(17).ptr(12);
  for (uint32_t v : {1u, 2u, 3u, 4u, 77u}) r.u32(v);
  auto m = parseDnsMessage(r.b);
  ASSERT_TRUE(m) << m.error().str();
  // MX RDATA: preference then mx.mail.test uncompressed.
  Raw mx;
  mx.u16(10).name("mx.mail.test");
  EXPECT_EQ(m->answers[0].rdata, mx.b);
  EXPECT_EQ(m->authority[0].name, "test");
  EXPECT_EQ(m->authority[0].soaMinimum(), 77u);
  EXPECT_FALSE(m->answers[0].soaMinimum());
  auto back = serializeDnsMessage(*m);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r.b);  // recompressed exactly as the original
}

TEST(DnsMessage, RejectsMalformedKnownRdata) {
  Raw r;
  r.header(1, kResponseFlags, 1, 1, 0, 0).name("a.b").u16(1).u16(1);
  r.ptr(12).u16(dnstype::kA).u16(1).u32(5).u16(3).bytes({1, 2, 3});
  EXPECT_FALSE(parseDnsMessage(r.b));
  Raw c;  // CNAME whose name runs beyond its RDLENGTH
  c.header(1, kResponseFlags, 1, 1, 0, 0).name("a.b").u16(5).u16(1);
  c.ptr(12).u16(dnstype::kCname).u16(1).u32(5).u16(2).label("xy").u8(0);
  EXPECT_FALSE(parseDnsMessage(c.b));
}

TEST(DnsMessage, SerializeCompressesRepeatedNames) {
  auto m = parseDnsMessage(cnameResponse());
  ASSERT_TRUE(m);
  auto out = serializeDnsMessage(*m);
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, cnameResponse());
}

TEST(DnsMessage, ErrorResponsesCopyIdAndQuestion) {
  auto q = buildDnsQuery(0x4242, "Blocked.Test", dnstype::kA, {.ednsUdpSize = 4096});
  ASSERT_TRUE(q);
  struct Case {
    Result<Bytes> wire;
    DnsRcode rcode;
  };
  Case cases[] = {{buildNxDomain(*q), DnsRcode::NxDomain},
                  {buildServFail(*q), DnsRcode::ServFail},
                  {buildRefused(*q), DnsRcode::Refused}};
  for (auto& c : cases) {
    ASSERT_TRUE(c.wire) << c.wire.error().str();
    auto m = parseDnsMessage(*c.wire);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->header.id, 0x4242);
    EXPECT_TRUE(m->header.qr());
    EXPECT_TRUE(m->header.ra());
    EXPECT_TRUE(m->header.rd());
    EXPECT_FALSE(m->header.tc());
    EXPECT_EQ(m->header.rcode(), static_cast<uint8_t>(c.rcode));
    ASSERT_EQ(m->questions.size(), 1u);
    EXPECT_EQ(m->questions[0].originalName, "Blocked.Test");
    EXPECT_EQ(m->questions[0].qtype, dnstype::kA);
    EXPECT_TRUE(m->answers.empty());
    EXPECT_TRUE(m->ednsUdpSize());  // EDNS query -> OPT in the response
  }
  auto noEdns = buildDnsQuery(1, "x.test", dnstype::kA);
  ASSERT_TRUE(noEdns);
  auto nx = buildNxDomain(*noEdns);
  ASSERT_TRUE(nx);
  EXPECT_FALSE(parseDnsMessage(*nx)->ednsUdpSize());
}

TEST(DnsMessage, ErrorResponseRefusesResponsesAndGarbage) {
  EXPECT_FALSE(buildNxDomain(cnameResponse()));  // QR set
  EXPECT_FALSE(buildServFail(Bytes{1, 2, 3}));
  Raw noQuestion;
  noQuestion.header(1, 0, 0, 0, 0, 0);
  EXPECT_FALSE(buildRefused(noQuestion.b));
}

TEST(DnsMessage, TruncatedResponseSetsTc) {
  auto q = buildDnsQuery(5, "big.test", dnstype::kTxt);
  ASSERT_TRUE(q);
  EXPECT_FALSE(isTruncated(*q));
  auto tc = buildTruncatedResponse(*q);
  ASSERT_TRUE(tc);
  EXPECT_TRUE(isTruncated(*tc));
  EXPECT_EQ(parseDnsMessage(*tc)->header.rcode(), 0);
  EXPECT_FALSE(isTruncated(Bytes{0, 0, 0x02}));  // shorter than a header
}

TEST(DnsMessage, FilterDropsBadAddressesKeepsCname) {
  auto keep = [](const policy::IpAddress& ip) {
    const auto s = ip.str();
    return s != "169.254.169.254" && s != "::1" && s.rfind("127.", 0) != 0;
  };
  auto f = filterDnsAnswers(cnameResponse(), keep);
  ASSERT_TRUE(f) << f.error().str();
  EXPECT_EQ(f->removed, 2u);
  auto m = parseDnsMessage(f->wire);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->answers.size(), 2u);  // ANCOUNT recomputed
  EXPECT_EQ(m->answers[0].type, dnstype::kCname);
  EXPECT_EQ(m->answers[0].originalName, "www.Example.com");
  EXPECT_EQ(m->answers[0].target, "cdn.example.net");
  EXPECT_EQ(m->answers[1].address()->str(), "93.184.216.34");
  EXPECT_EQ(m->header.id, 0xbeef);
  EXPECT_EQ(m->questions[0].originalName, "www.Example.com");

  auto all = filterDnsAnswers(cnameResponse(), [](const policy::IpAddress&) { return true; });
  ASSERT_TRUE(all);
  EXPECT_EQ(all->removed, 0u);
  EXPECT_EQ(all->wire, cnameResponse());
  EXPECT_FALSE(filterDnsAnswers(Bytes{1, 2}, keep));
}

TEST(DnsMessage, TcpFraming) {
  auto a = buildDnsQuery(1, "a.test", dnstype::kA);
  auto b = buildDnsQuery(2, "b.test", dnstype::kA);
  ASSERT_TRUE(a && b);
  auto fa = frameDnsTcp(*a);
  auto fb = frameDnsTcp(*b);
  ASSERT_TRUE(fa && fb);
  EXPECT_EQ(fa->size(), a->size() + 2);
  Bytes stream = *fa;
  stream.insert(stream.end(), fb->begin(), fb->end() - 1);  // second one incomplete

  auto first = nextDnsTcpFrame(stream);
  ASSERT_EQ(first.consumed, fa->size());
  EXPECT_EQ(Bytes(first.message.begin(), first.message.end()), *a);
  auto second = nextDnsTcpFrame(std::span(stream).subspan(first.consumed));
  EXPECT_EQ(second.consumed, 0u);
  EXPECT_FALSE(second.invalid);
  EXPECT_EQ(nextDnsTcpFrame(Bytes{0}).consumed, 0u);
  EXPECT_TRUE(nextDnsTcpFrame(Bytes{0, 0, 1}).invalid);

  EXPECT_FALSE(frameDnsTcp(Bytes{}));
  EXPECT_FALSE(frameDnsTcp(Bytes(65536, 0)));
  EXPECT_TRUE(frameDnsTcp(Bytes(65535, 0)));
}

}  // namespace
}  // namespace tollgate::proxy
