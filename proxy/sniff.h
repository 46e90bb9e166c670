#pragma once

// First-bytes protocol classification for the transparent proxy. Pure functions over bytes, no I/O:
// the listener peeks at what the client sent and picks the sniffer (tls_client_hello.h,
// http1_sniffer.h) or treats the flow as opaque TCP, decided by destination address alone.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace tollgate::proxy {

// What a sniffer concluded from the bytes it was given. Sniffers are monotonic: once a prefix
// yields Done, Invalid or NotThisProtocol, every longer buffer yields the same answer.
enum class SniffStatus {
  NeedMore,         // well-formed so far; call again with more bytes
  Done,             // a complete message was parsed
  NotThisProtocol,  // the bytes cannot be this protocol: try another sniffer or treat as opaque
  Invalid,          // this protocol, but malformed or over a limit: refuse the flow
};

enum class Protocol { NeedMore, Tls, Http, Opaque };

// Request methods that start an HTTP/1 request. A closed list rather than any token, so an opaque
// protocol is recognised as such from its first byte or two instead of being held until a line
// ends. An unlisted method is opaque TCP (decided by address, never by a Host it might carry).
// CONNECT is listed so that it is recognised and then refused by the HTTP sniffer.
inline constexpr std::string_view kHttpMethods[] = {
    "GET",   "HEAD",    "POST",     "PUT",       "DELETE",     "OPTIONS", "TRACE",
    "PATCH", "CONNECT", "PROPFIND", "PROPPATCH", "MKCOL",      "COPY",    "MOVE",
    "LOCK",  "UNLOCK",  "SEARCH",   "REPORT",    "MKCALENDAR", "PURGE",   "QUERY",
};

enum class MethodMatch { NeedMore, Match, NoMatch };

struct MethodPrefix {
  MethodMatch match = MethodMatch::NoMatch;
  size_t length = 0;  // length of the method (without the SP) when match == Match
};

// Whether `bytes` start with "<method> " for a listed method, could still become one, or cannot.
inline MethodPrefix matchHttpMethod(std::span<const uint8_t> bytes) {
  bool partial = false;
  for (std::string_view method : kHttpMethods) {
    const size_t want = method.size() + 1;
    const size_t n = std::min(bytes.size(), want);
    bool same = true;
    for (size_t i = 0; i < n && same; ++i) {
      const char expected = i < method.size() ? method[i] : ' ';
      same = bytes[i] == static_cast<uint8_t>(expected);
    }
    if (!same) continue;
    if (n == want) return {MethodMatch::Match, method.size()};
    partial = true;
  }
  return {partial ? MethodMatch::NeedMore : MethodMatch::NoMatch, 0};
}

// Classifies a connection from its first bytes: a TLS handshake record (0x16 0x03), an HTTP/1
// request (a listed method followed by SP), or opaque. NeedMore only while the bytes are a
// strict prefix of one of those.
inline Protocol classify(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return Protocol::NeedMore;
  if (bytes[0] == 0x16) {
    if (bytes.size() < 2) return Protocol::NeedMore;
    return bytes[1] == 0x03 ? Protocol::Tls : Protocol::Opaque;
  }
  switch (matchHttpMethod(bytes).match) {
    case MethodMatch::Match:
      return Protocol::Http;
    case MethodMatch::NeedMore:
      return Protocol::NeedMore;
    case MethodMatch::NoMatch:
      break;
  }
  return Protocol::Opaque;
}

}  // namespace tollgate::proxy
