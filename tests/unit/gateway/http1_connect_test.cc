#include "gateway/http1_connect.h"

#include <gtest/gtest.h>

namespace tollgate::gateway {
namespace {

TEST(Http1Connect, ParsesConnect) {
  auto r = parseHttp1Request(
      "CONNECT svc.test:80 HTTP/1.1\r\nHost: svc.test:80\r\nUser-Agent: curl/7.88.1\r\n"
      "Proxy-Connection: Keep-Alive\r\n\r\n");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->method, "CONNECT");
  EXPECT_EQ(r->target, "svc.test:80");
}

TEST(Http1Connect, OtherMethodsParseButAreNotConnect) {
  auto r = parseHttp1Request("GET http://svc.test/ HTTP/1.1\r\nHost: svc.test\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->method, "GET");
}

TEST(Http1Connect, RejectsMalformedHeads) {
  for (const char* bad :
       {"CONNECT svc.test:80\r\n\r\n", "CONNECT  svc.test:80 HTTP/1.1\r\n\r\n",
        "CONNECT svc.test:80 HTTP/2\r\n\r\n", "CONNECT svc.test:80 HTTP/1.1 x\r\n\r\n",
        "CONNECT svc.test:80 HTTP/1.1\r\n folded\r\n\r\n",
        "CONNECT svc.test:80 HTTP/1.1\r\nno-colon\r\n\r\n",
        "CONNECT svc.test:80 HTTP/1.1\r\n: empty-name\r\n\r\n", "CONNECT svc.test:80 HTTP/1.1"}) {
    EXPECT_FALSE(parseHttp1Request(bad)) << bad;
  }
}

TEST(Http1Connect, Responses) {
  EXPECT_EQ(http1Response(200), "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(http1Response(403, "x-tollgate-denied", "not_in_registry"),
            "HTTP/1.1 403 Forbidden\r\nx-tollgate-denied: not_in_registry\r\n"
            "content-length: 0\r\nconnection: close\r\n\r\n");
}

}  // namespace
}  // namespace tollgate::gateway

namespace tollgate::gateway {
namespace {

TEST(Http1Forward, AbsoluteFormBecomesOriginForm) {
  auto f = toOriginForm(
      "GET http://svc.test/a/b?q=1 HTTP/1.1\r\nHost: evil.test\r\nUser-Agent: curl\r\n"
      "Proxy-Connection: Keep-Alive\r\nProxy-Authorization: Basic eA==\r\n"
      "Connection: keep-alive\r\nAccept: */*\r\n\r\n");
  ASSERT_TRUE(f) << f.error().str();
  EXPECT_EQ(f->authority, "svc.test:80");
  // Host comes from the URI (what was authorized), never from the client's Host header.
  EXPECT_EQ(f->head,
            "GET /a/b?q=1 HTTP/1.1\r\nHost: svc.test\r\nUser-Agent: curl\r\nAccept: */*\r\n"
            "Connection: close\r\n\r\n");
}

TEST(Http1Forward, PortsAndEmptyPaths) {
  auto f = toOriginForm("POST http://svc.test:8080 HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->authority, "svc.test:8080");
  EXPECT_TRUE(f->head.starts_with("POST / HTTP/1.1\r\nHost: svc.test:8080\r\n")) << f->head;
  auto q = toOriginForm("GET HTTP://[2001:db8::1]?x HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->authority, "[2001:db8::1]:80");
  EXPECT_TRUE(q->head.starts_with("GET /?x HTTP/1.1\r\n")) << q->head;
}

TEST(Http1Forward, ControlCharactersInHeaderValuesCannotSmuggleAHeader) {
  // A bare LF ends the line for many origins: "X: a\nHost: evil" would be a second Host after
  // the rewrite. Every control byte but HTAB in a value refuses the request.
  for (std::string bad : {std::string("X: a\nHost: evil.test"), std::string("X: a\rHost: evil.test"),
                          std::string("X: a\0b", 7), std::string("X: \x7f")}) {
    std::string head = "GET http://svc.test/ HTTP/1.1\r\n" + bad + "\r\n\r\n";
    auto f = toOriginForm(head);
    ASSERT_FALSE(f) << f->head;
    EXPECT_NE(f.error().str().find("in header value"), std::string::npos) << f.error().str();
  }
  EXPECT_TRUE(toOriginForm("GET http://svc.test/ HTTP/1.1\r\nX: a\tb\r\n\r\n"));
}

TEST(Http1Forward, RejectsOriginFormAndOtherSchemes) {
  EXPECT_FALSE(toOriginForm("GET / HTTP/1.1\r\nHost: svc.test\r\n\r\n"));
  EXPECT_FALSE(toOriginForm("GET https://svc.test/ HTTP/1.1\r\n\r\n"));
  EXPECT_FALSE(toOriginForm("GET http:///x HTTP/1.1\r\n\r\n"));
}

}  // namespace
}  // namespace tollgate::gateway
