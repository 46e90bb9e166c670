// libFuzzer target for the HTTP/1.1 request head on the gateway's tunnel port
// (gateway/http1_connect.cc): CONNECT requests and absolute-form forward requests. Whatever the
// bytes: a value or an error with a message. An accepted head has a method and target of token
// bytes; a forward request rewritten to origin form is a well-formed head that ends in CRLFCRLF,
// has no bare CR or LF and no NUL (nothing can be smuggled past the rewrite), carries exactly
// one Host header, the one taken from the URI, and ends with "Connection: close".
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/http1_connect.h"

namespace gw = tollgate::gateway;

namespace {

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "http1_connect_fuzz: property failed: %s\n", what);
  std::abort();
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

void checkOriginHead(const gw::ForwardRequest& f) {
  const std::string& h = f.head;
  check(h.ends_with("Connection: close\r\n\r\n"), "origin head ends with Connection: close");
  for (size_t i = 0; i < h.size(); ++i) {
    check(h[i] != '\0', "no NUL in origin head");
    if (h[i] == '\n') check(i > 0 && h[i - 1] == '\r', "no bare LF in origin head");
    if (h[i] == '\r') check(i + 1 < h.size() && h[i + 1] == '\n', "no bare CR in origin head");
  }
  check(!f.authority.empty(), "authority non-empty");
  // The head must parse as a request again, and hold one Host line.
  check(gw::parseHttp1Request(h).has_value(), "origin head parses again");
  size_t hosts = 0, pos = h.find("\r\n") + 2;
  while (pos < h.size()) {
    size_t e = h.find("\r\n", pos);
    std::string line = h.substr(pos, e - pos);
    pos = e + 2;
    if (line.empty()) break;
    std::string name = line.substr(0, line.find(':'));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "host") ++hosts;
  }
  check(hosts == 1, "exactly one Host header");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  auto r = gw::parseHttp1Request(head);
  if (!r) {
    check(!r.error().str().empty(), "error has a message");
  } else {
    check(isToken(r->method) && isToken(r->target), "method and target are tokens");
  }
  auto f = gw::toOriginForm(head);
  if (!f) {
    check(!f.error().str().empty(), "forward error has a message");
    return 0;
  }
  check(r.has_value(), "a forward request is a valid request");
  checkOriginHead(*f);
  (void)gw::http1Response(static_cast<int>(size % 600), "x-tollgate-denied", r->method);
  return 0;
}
