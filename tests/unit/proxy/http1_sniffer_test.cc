#include "proxy/http1_sniffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::proxy {
namespace {

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

HttpSniffResult sniff(std::string_view s, size_t max = kMaxHttpHeaderBytes) {
  return sniffHttpRequest(bytes(s), max);
}

HttpRequestHead done(std::string_view s) {
  const auto r = sniff(s);
  EXPECT_EQ(r.status, SniffStatus::Done) << r.error << "\n" << s;
  return r.head;
}

void expectInvalid(std::string_view s, std::string_view errorPart = {}) {
  const auto r = sniff(s);
  EXPECT_EQ(r.status, SniffStatus::Invalid) << s;
  EXPECT_NE(r.error.find(errorPart), std::string::npos) << r.error;
}

TEST(HttpSniffer, ParsesRequestHead) {
  const std::string req =
      "GET /path?q=1 HTTP/1.1\r\nHost: Example.com:8080\r\nUser-Agent: t\r\n\r\nBODY";
  const auto h = done(req);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/path?q=1");
  EXPECT_EQ(h.version, "HTTP/1.1");
  EXPECT_EQ(h.host, "Example.com:8080");  // as written, port kept
  EXPECT_EQ(h.headerBytes, req.size() - 4);
  EXPECT_TRUE(h.keepAlive);
  EXPECT_FALSE(h.contentLength);
  EXPECT_FALSE(h.chunked);
  EXPECT_FALSE(h.upgrade);
}

TEST(HttpSniffer, ByteByByteIsNeedMoreUntilTheEmptyLine) {
  const std::string req = "POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\n";
  for (size_t n = 0; n < req.size(); ++n) {
    const auto r = sniff(std::string_view(req).substr(0, n));
    ASSERT_EQ(r.status, SniffStatus::NeedMore) << "prefix " << n << ": " << r.error;
  }
  const auto h = done(req + "abc");
  EXPECT_EQ(h.headerBytes, req.size());
  EXPECT_EQ(h.contentLength, 3u);
}

TEST(HttpSniffer, HostValueTrimmedAndCaseInsensitiveName) {
  EXPECT_EQ(done("GET / HTTP/1.1\r\nhOsT: \t a.example \t\r\n\r\n").host, "a.example");
  EXPECT_EQ(done("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n").host, "[2001:db8::1]:8443");
}

TEST(HttpSniffer, LoneLfIsALineTerminator) {
  const std::string req = "GET / HTTP/1.1\nHost: lf.example\n\n";
  const auto h = done(req + "body");
  EXPECT_EQ(h.host, "lf.example");
  EXPECT_EQ(h.headerBytes, req.size());
  EXPECT_EQ(done("GET / HTTP/1.1\r\nHost: mixed.example\n\r\n").host, "mixed.example");
}

TEST(HttpSniffer, BareCrIsInvalid) {
  expectInvalid("GET / HTTP/1.1\r\nHost: a\rX-Evil: b\r\n\r\n", "bare CR");
  // Known before the line ends.
  EXPECT_EQ(sniff("GET / HTTP/1.1\r\nHost: a\rX").status, SniffStatus::Invalid);
  EXPECT_EQ(sniff("GET / HTTP/1.1\r\nHost: a\r").status, SniffStatus::NeedMore);
}

TEST(HttpSniffer, NotHttpIsDecidedFromTheFirstBytes) {
  EXPECT_EQ(sniff("").status, SniffStatus::NeedMore);
  EXPECT_EQ(sniff("P").status, SniffStatus::NeedMore);
  EXPECT_EQ(sniff("X").status, SniffStatus::NotThisProtocol);
  EXPECT_EQ(sniff("\x16\x03\x01").status, SniffStatus::NotThisProtocol);
  EXPECT_EQ(sniff("SSH-2.0-x\r\n").status, SniffStatus::NotThisProtocol);
  EXPECT_EQ(sniff("GETX / HTTP/1.1").status, SniffStatus::NotThisProtocol);
  EXPECT_EQ(sniff("get / HTTP/1.1").status, SniffStatus::NotThisProtocol);
  // Control bytes after a method fail fast instead of waiting for the cap.
  EXPECT_EQ(sniff(std::string_view("GET /\0\x01\x02", 8)).status, SniffStatus::Invalid);
}

TEST(HttpSniffer, HostRules) {
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "duplicate Host");
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "duplicate Host");
  expectInvalid("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "without Host");
  expectInvalid("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host");
  expectInvalid("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", "invalid Host");
  expectInvalid("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid Host");
  expectInvalid("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", "invalid Host");
  expectInvalid("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", "invalid Host");
  expectInvalid("GET / HTTP/1.1\r\nHost: caf\xc3\xa9.example\r\n\r\n", "invalid Host");
  // HTTP/1.0 may omit Host; an empty Host is allowed and left to the policy.
  EXPECT_EQ(done("GET / HTTP/1.0\r\n\r\n").host, "");
  EXPECT_EQ(done("GET / HTTP/1.1\r\nHost:\r\n\r\n").host, "");
}

TEST(HttpSniffer, AbsoluteFormMustAgreeWithHost) {
  expectInvalid("GET http://evil.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n", "disagrees");
  expectInvalid("GET http://good.example:8080/ HTTP/1.1\r\nHost: good.example\r\n\r\n",
                "disagrees");
  expectInvalid("GET http://good.example/ HTTP/1.1\r\nHost: good.example:443\r\n\r\n", "disagrees");
  expectInvalid("GET http://good.example/ HTTP/1.1\r\nHost:\r\n\r\n", "disagrees");
  expectInvalid("GET http://user@good.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n", "userinfo");
  expectInvalid("GET ftp://good.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n", "scheme");
  expectInvalid("GET http:///x HTTP/1.1\r\nHost: good.example\r\n\r\n", "authority");
  // Same authority: case-insensitive, default port or empty port equal to none.
  EXPECT_EQ(done("GET HTTP://Good.Example:80/a HTTP/1.1\r\nHost: good.example\r\n\r\n").host,
            "good.example");
  EXPECT_EQ(done("GET http://good.example/a HTTP/1.1\r\nHost: GOOD.example:80\r\n\r\n").host,
            "GOOD.example:80");
  EXPECT_EQ(done("GET http://good.example:/a HTTP/1.1\r\nHost: good.example\r\n\r\n").host,
            "good.example");
  EXPECT_EQ(done("GET https://good.example:443?x HTTP/1.1\r\nHost: good.example\r\n\r\n").host,
            "good.example");
  EXPECT_EQ(done("GET http://a.example:8080 HTTP/1.1\r\nHost: a.example:8080\r\n\r\n").target,
            "http://a.example:8080");
  // HTTP/1.0 without Host: the target's authority is the name.
  EXPECT_EQ(done("GET http://old.example:81/ HTTP/1.0\r\n\r\n").host, "old.example:81");
}

TEST(HttpSniffer, RequestLineRules) {
  expectInvalid("CONNECT good.example:443 HTTP/1.1\r\nHost: good.example:443\r\n\r\n", "CONNECT");
  expectInvalid("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "request line");
  expectInvalid("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "request line");
  expectInvalid("GET /\r\n\r\n", "request line");  // HTTP/0.9
  expectInvalid("GET / HTTP/2.0\r\nHost: a\r\n\r\n", "version");
  expectInvalid("GET / http/1.1\r\nHost: a\r\n\r\n", "version");
  expectInvalid("GET * HTTP/1.1\r\nHost: a\r\n\r\n", "asterisk");
  expectInvalid("GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n", "target");
  expectInvalid("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "target");
  EXPECT_EQ(done("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target, "*");
  EXPECT_EQ(done("GET / HTTP/1.2\r\nHost: a\r\n\r\n").version, "HTTP/1.2");
}

TEST(HttpSniffer, FieldLineRules) {
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n", "folding");
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n\ttwo\r\n\r\n", "folding");
  expectInvalid("GET / HTTP/1.1\r\n Host: a\r\n\r\n", "folding");
  expectInvalid("GET / HTTP/1.1\r\nHost : a\r\n\r\n", "whitespace in field name");
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", "whitespace in field name");
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\nX-Y\t: x\r\n\r\n", "whitespace in field name");
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", "colon");
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", "empty field name");
  expectInvalid("GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", "field name");
  expectInvalid(std::string_view("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35), "control");
  // obs-text in a value is allowed.
  EXPECT_EQ(done("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n").host, "a");
}

TEST(HttpSniffer, BodyFramingRules) {
  expectInvalid(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "both Content-Length and Transfer-Encoding");
  expectInvalid(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
      "both Content-Length and Transfer-Encoding");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                "differing Content-Length");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
                "differing Content-Length");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "Content-Length");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "Content-Length");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", "Content-Length");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", "Content-Length");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", "Content-Length");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "Content-Length");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "chunked");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                "chunked");
  expectInvalid(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      "chunked");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", "chunked");
  expectInvalid("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", "Transfer-Encoding");
  expectInvalid("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0");

  EXPECT_EQ(done("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n")
                .contentLength,
            5u);
  const auto te = done(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
      "Transfer-Encoding: CHUNKED\r\n\r\n");
  EXPECT_TRUE(te.chunked);
  EXPECT_FALSE(te.contentLength);
}

TEST(HttpSniffer, KeepAliveFollowsVersionAndConnection) {
  EXPECT_TRUE(done("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keepAlive);
  EXPECT_FALSE(done("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keepAlive);
  EXPECT_FALSE(
      done("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n").keepAlive);
  EXPECT_FALSE(done("GET / HTTP/1.0\r\nHost: a\r\n\r\n").keepAlive);
  EXPECT_TRUE(done("GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n").keepAlive);
  EXPECT_FALSE(
      done("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n").keepAlive);
}

TEST(HttpSniffer, UpgradeNeedsConnectionTokenAndUpgradeField) {
  EXPECT_TRUE(done("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                  .upgrade);
  EXPECT_FALSE(done("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").upgrade);
}

TEST(HttpSniffer, OversizeHeadIsInvalid) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(200, 'p') + "\r\n\r\n";
  EXPECT_EQ(sniff(head, head.size()).status, SniffStatus::Done);
  const auto r = sniff(head, head.size() - 1);
  EXPECT_EQ(r.status, SniffStatus::Invalid);
  EXPECT_NE(r.error.find("too large"), std::string::npos) << r.error;
  // A head that never ends is refused once the cap is reached, not buffered forever.
  const std::string endless = "GET / HTTP/1.1\r\nHost: a\r\n" + std::string(100, 'x');
  EXPECT_EQ(sniff(endless, 200).status, SniffStatus::NeedMore);
  EXPECT_EQ(sniff(endless, endless.size()).status, SniffStatus::Invalid);
}

// --- HttpRequestStream ---

struct Collected {
  std::vector<HttpRequestStream::Request> requests;
  HttpRequestStream::FeedResult last;
};

// Feeds `data` in pieces of `step` bytes (0: all at once) and collects every reported request.
Collected feedAll(std::string_view data, size_t step = 0, size_t max = kMaxHttpHeaderBytes) {
  HttpRequestStream stream(max);
  Collected c;
  if (step == 0) step = data.size() == 0 ? 1 : data.size();
  for (size_t off = 0; off < data.size(); off += step) {
    c.last = stream.feed(bytes(data.substr(off, step)));
    for (auto& r : c.last.requests) c.requests.push_back(std::move(r));
    if (c.last.status != SniffStatus::NeedMore) break;
  }
  return c;
}

std::vector<std::string> hosts(const Collected& c) {
  std::vector<std::string> out;
  for (const auto& r : c.requests) out.push_back(r.head.host);
  return out;
}

TEST(HttpRequestStream, ReportsEveryPipelinedRequest) {
  const std::string a = "GET /1 HTTP/1.1\r\nHost: one.example\r\n\r\n";
  const std::string b = "GET /2 HTTP/1.1\r\nHost: two.example\r\n\r\n";
  const std::string c = "GET /3 HTTP/1.1\r\nHost: three.example\r\nConnection: close\r\n\r\n";
  const auto got = feedAll(a + b + c);
  EXPECT_EQ(got.last.status, SniffStatus::NeedMore) << got.last.error;
  ASSERT_EQ(hosts(got), (std::vector<std::string>{"one.example", "two.example", "three.example"}));
  EXPECT_EQ(got.requests[0].offset, 0u);
  EXPECT_EQ(got.requests[1].offset, a.size());
  EXPECT_EQ(got.requests[2].offset, a.size() + b.size());
  EXPECT_FALSE(got.requests[2].head.keepAlive);
}

TEST(HttpRequestStream, ContentLengthBodyIsSkippedNotParsed) {
  // The body looks like a request for another host; it must not be mistaken for one, and the
  // request after the body must be seen.
  const std::string hidden = "GET /x HTTP/1.1\r\nHost: evil.example\r\n\r\n";
  const std::string first = "POST /up HTTP/1.1\r\nHost: good.example\r\nContent-Length: " +
                            std::to_string(hidden.size()) + "\r\n\r\n" + hidden;
  const std::string second = "GET /next HTTP/1.1\r\nHost: next.example\r\n\r\n";
  for (size_t step : {0, 1, 7}) {
    const auto got = feedAll(first + second, step);
    EXPECT_EQ(got.last.status, SniffStatus::NeedMore) << got.last.error;
    ASSERT_EQ(hosts(got), (std::vector<std::string>{"good.example", "next.example"}))
        << "step " << step;
    EXPECT_EQ(got.requests[1].offset, first.size());
  }
}

TEST(HttpRequestStream, ChunkedBodyWithExtensionsAndTrailersIsSkipped) {
  const std::string first =
      "POST /c HTTP/1.1\r\nHost: chunk.example\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value;quoted=\"a \\\" b\"\r\nhello\r\n"
      "1A ; bws = x\r\n" +
      std::string(26, 'z') +
      "\r\n"
      "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
  const std::string second = "GET /after HTTP/1.1\r\nHost: after.example\r\n\r\n";
  for (size_t step : {0, 1, 3, 11}) {
    HttpRequestStream stream;
    std::vector<HttpRequestStream::Request> seen;
    const std::string all = first + second;
    for (size_t off = 0; off < all.size(); off += step == 0 ? all.size() : step) {
      auto r = stream.feed(bytes(std::string_view(all).substr(off, step == 0 ? all.size() : step)));
      ASSERT_EQ(r.status, SniffStatus::NeedMore) << r.error << " step " << step;
      for (auto& req : r.requests) seen.push_back(std::move(req));
      if (off + (step == 0 ? all.size() : step) == first.size()) {
        EXPECT_TRUE(stream.atMessageBoundary());
      }
    }
    ASSERT_EQ(seen.size(), 2u) << "step " << step;
    EXPECT_TRUE(seen[0].head.chunked);
    EXPECT_EQ(seen[1].head.host, "after.example");
    EXPECT_EQ(seen[1].offset, first.size());
    EXPECT_TRUE(stream.atMessageBoundary());
  }
}

TEST(HttpRequestStream, ByteByByteMatchesWholeBuffer) {
  const std::string data =
      "GET /a HTTP/1.1\nHost: lf.example\n\n"
      "\r\n"  // an empty line between requests is skipped
      "PUT /b HTTP/1.1\r\nHost: b.example\r\nContent-Length: 4\r\n\r\n1234"
      "POST /c HTTP/1.1\r\nHost: c.example\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n"
      "GET /d HTTP/1.0\r\n\r\n";
  const auto whole = feedAll(data);
  const auto single = feedAll(data, 1);
  EXPECT_EQ(whole.last.status, SniffStatus::NeedMore) << whole.last.error;
  EXPECT_EQ(single.last.status, SniffStatus::NeedMore) << single.last.error;
  ASSERT_EQ(hosts(whole), (std::vector<std::string>{"lf.example", "b.example", "c.example", ""}));
  ASSERT_EQ(hosts(single), hosts(whole));
  for (size_t i = 0; i < whole.requests.size(); ++i) {
    EXPECT_EQ(single.requests[i].offset, whole.requests[i].offset) << i;
  }
}

TEST(HttpRequestStream, BadRequestAfterGoodOnesIsInvalidAtItsOffset) {
  const std::string good = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string smuggle =
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
  HttpRequestStream stream;
  auto r = stream.feed(bytes(good + smuggle));
  EXPECT_EQ(r.status, SniffStatus::Invalid);
  ASSERT_EQ(r.requests.size(), 1u);
  EXPECT_EQ(r.errorOffset, good.size());
  // Failure is final.
  r = stream.feed(bytes(good));
  EXPECT_EQ(r.status, SniffStatus::Invalid);
  EXPECT_TRUE(r.requests.empty());
}

TEST(HttpRequestStream, GarbageAfterARequestIsInvalidNotOpaque) {
  const auto first = feedAll("\x16\x03\x01\x00");
  EXPECT_EQ(first.last.status, SniffStatus::NotThisProtocol);
  const auto later = feedAll("GET / HTTP/1.1\r\nHost: a\r\n\r\n\x16\x03\x01\x00");
  EXPECT_EQ(later.last.status, SniffStatus::Invalid);
  EXPECT_EQ(later.requests.size(), 1u);
}

TEST(HttpRequestStream, MalformedChunkedFramingIsInvalid) {
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"data not followed by CRLF", "3\r\nabcX\r\n0\r\n\r\n"},
      {"bare LF after chunk size", "3\nabc\r\n0\r\n\r\n"},
      {"bare LF after data", "3\r\nabc\n0\r\n\r\n"},
      {"bare CR in chunk line", "3\r;x\r\nabc\r\n"},
      {"missing size", "\r\nabc\r\n"},
      {"non-hex size", "g\r\n"},
      {"negative size", "-3\r\nabc\r\n"},
      {"size overflow", "10000000000000000\r\n"},
      {"junk after size", "3 x\r\nabc\r\n"},
      {"extension without name", "3;\r\nabc\r\n"},
      {"unterminated quoted extension", "3;a=\"x\r\nabc\r\n"},
      {"folded trailer", "0\r\nX-T: a\r\n b\r\n\r\n"},
      {"trailer name with space", "0\r\nX T: a\r\n\r\n"},
  };
  for (const auto& [what, body] : cases) {
    for (size_t step : {0, 1}) {
      const auto got = feedAll(head + body, step);
      EXPECT_EQ(got.last.status, SniffStatus::Invalid) << what << " step " << step;
      EXPECT_EQ(got.requests.size(), 1u) << what;
      EXPECT_GE(got.last.errorOffset, head.size()) << what;
    }
  }
}

TEST(HttpRequestStream, OversizeTrailersAndChunkLinesAreInvalid) {
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string trailers = "0\r\n";
  for (int i = 0; i < 20; ++i) trailers += "X-T: " + std::string(20, 'v') + "\r\n";
  EXPECT_EQ(feedAll(head + trailers + "\r\n", 0, 4096).last.status, SniffStatus::NeedMore);
  EXPECT_EQ(feedAll(head + trailers + "\r\n", 0, 256).last.status, SniffStatus::Invalid);
  const std::string longExt = "5;x=" + std::string(300, 'e') + "\r\nhello\r\n0\r\n\r\n";
  EXPECT_EQ(feedAll(head + longExt, 1, 256).last.status, SniffStatus::Invalid);
}

TEST(HttpRequestStream, PassThroughStopsParsingAfterUpgrade) {
  const std::string upgrade =
      "GET /ws HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  HttpRequestStream stream;
  auto r = stream.feed(bytes(upgrade));
  ASSERT_EQ(r.requests.size(), 1u);
  EXPECT_TRUE(r.requests[0].head.upgrade);
  stream.passThrough();  // the proxy saw 101 Switching Protocols
  r = stream.feed(bytes("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"));
  EXPECT_EQ(r.status, SniffStatus::NeedMore);
  EXPECT_TRUE(r.requests.empty());
  EXPECT_TRUE(stream.atMessageBoundary());
}

TEST(HttpSniffer, UpgradeProtocolsAreKeptAndOnlyWebSocketIsAccepted) {
  auto ws = done("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_EQ(ws.upgradeProtocols, "websocket");
  EXPECT_FALSE(refusedUpgrade(ws));
  auto h2c = done("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
  EXPECT_EQ(refusedUpgrade(h2c), "h2c_upgrade");
  // Hidden in a list, in another case, or in a second field: still h2c.
  auto listed = done("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
                     "Upgrade: websocket\r\nUpgrade: H2C\r\n\r\n");
  EXPECT_EQ(listed.upgradeProtocols, "websocket, H2C");
  EXPECT_EQ(refusedUpgrade(listed), "h2c_upgrade");
  EXPECT_EQ(refusedUpgrade(done("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
                                "Upgrade: TLS/1.2\r\n\r\n")),
            "upgrade_not_allowed");
  EXPECT_EQ(refusedUpgrade(done("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
                                "Upgrade: websocket\r\nContent-Length: 3\r\n\r\nabc")),
            "upgrade_with_body");
  // No upgrade asked (Upgrade without the Connection token): nothing to refuse.
  EXPECT_FALSE(refusedUpgrade(done("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n")));
}

TEST(HttpStatusLine, CodeOfAStatusLine) {
  EXPECT_EQ(httpStatusCode("HTTP/1.1 101 Switching Protocols\r\n"), 101);
  EXPECT_EQ(httpStatusCode("HTTP/1.0 200\r\n"), 200);
  EXPECT_EQ(httpStatusCode("HTTP/1.1 101\n"), 101);
  EXPECT_FALSE(httpStatusCode("HTTP/2 101 x\r\n"));
  EXPECT_FALSE(httpStatusCode("HTTP/1.1 1010 x\r\n"));
  EXPECT_FALSE(httpStatusCode("HTTP/1.1 10a x\r\n"));
  EXPECT_FALSE(httpStatusCode("SSH-2.0-OpenSSH\r\n"));
  EXPECT_FALSE(httpStatusCode(""));
}

TEST(HttpRequestStream, PartialHeadIsBufferedAcrossFeeds) {
  const std::string first = "GET / HTTP/1.1\r\nHost: split.example\r\n\r\n";
  const std::string second = "GET /2 HTTP/1.1\r\nHost: s2\r\n\r\n";
  HttpRequestStream stream;
  auto r = stream.feed(bytes(first.substr(0, 18)));
  EXPECT_EQ(r.status, SniffStatus::NeedMore);
  EXPECT_TRUE(r.requests.empty());
  EXPECT_FALSE(stream.atMessageBoundary());
  r = stream.feed(bytes(first.substr(18) + second.substr(0, second.size() - 2)));
  ASSERT_EQ(r.requests.size(), 1u);
  EXPECT_EQ(r.requests[0].head.host, "split.example");
  EXPECT_FALSE(stream.atMessageBoundary());
  r = stream.feed(bytes("\r\n"));
  ASSERT_EQ(r.requests.size(), 1u);
  EXPECT_EQ(r.requests[0].head.host, "s2");
  EXPECT_EQ(r.requests[0].offset, first.size());
  EXPECT_EQ(stream.bytesFed(), first.size() + second.size());
  EXPECT_TRUE(stream.atMessageBoundary());
}

}  // namespace
}  // namespace tollgate::proxy
