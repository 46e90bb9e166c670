#include "gateway/http1_connect.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace tollgate::gateway {
namespace {

std::string_view statusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 405:
      return "Method Not Allowed";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

Result<Http1Request> parseHttp1Request(std::string_view head) {
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return fail("request line not terminated");
  std::string_view line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return fail("malformed request line");
  }
  Http1Request r;
  r.method = std::string(line.substr(0, sp1));
  r.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view version = line.substr(sp2 + 1);
  if (!isToken(r.method) || !isToken(r.target)) return fail("malformed request line");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return fail("unsupported HTTP version");
  // Header lines: name ":" value, no obs-fold (RFC 9112 5.2 lets a proxy reject it).
  std::string_view rest = head.substr(eol + 2);
  while (!rest.empty()) {
    auto e = rest.find("\r\n");
    if (e == std::string_view::npos) return fail("header not terminated");
    std::string_view h = rest.substr(0, e);
    rest.remove_prefix(e + 2);
    if (h.empty()) break;
    if (h.front() == ' ' || h.front() == '\t') return fail("obsolete header line folding");
    auto colon = h.find(':');
    if (colon == 0 || colon == std::string_view::npos || !isToken(h.substr(0, colon))) {
      return fail("malformed header line");
    }
    // RFC 9110 5.5: no CR, LF, NUL or other controls in a value (HTAB aside). A bare LF would
    // end the line for the origin and smuggle a header (a second Host) past the rewrite below.
    for (unsigned char c : h.substr(colon + 1)) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return fail(fmt::format("control character 0x{:02x} in header value", c));
      }
    }
  }
  return r;
}

Result<ForwardRequest> toOriginForm(std::string_view head) {
  auto req = parseHttp1Request(head);
  if (!req) return std::unexpected(req.error());
  constexpr std::string_view kScheme = "http://";
  std::string_view target = req->target;
  if (target.size() < kScheme.size() ||
      !std::equal(kScheme.begin(), kScheme.end(), target.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return fail("not an absolute http:// URI");
  }
  target.remove_prefix(kScheme.size());
  auto end = target.find_first_of("/?#");
  std::string_view authority = target.substr(0, end);
  std::string_view path = end == std::string_view::npos ? "" : target.substr(end);
  if (auto hash = path.find('#'); hash != std::string_view::npos) path = path.substr(0, hash);
  if (authority.empty()) return fail("absolute URI without a host");
  ForwardRequest out;
  bool hasPort = authority.back() != ']' && authority.find(':') != std::string_view::npos;
  out.authority = hasPort ? std::string(authority) : fmt::format("{}:80", authority);

  std::string originPath =
      path.empty() || path.front() == '?' ? "/" + std::string(path) : std::string(path);
  auto eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::string_view version = line.substr(line.rfind(' ') + 1);
  out.head = fmt::format("{} {} {}\r\nHost: {}\r\n", req->method, originPath, version, authority);
  std::string_view rest = head.substr(eol + 2);
  while (!rest.empty()) {
    auto e = rest.find("\r\n");
    std::string_view h = rest.substr(0, e);
    rest.remove_prefix(e + 2);
    if (h.empty()) break;
    std::string name(h.substr(0, h.find(':')));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "host" || name == "connection" || name == "proxy-connection" ||
        name == "proxy-authorization" || name == "keep-alive") {
      continue;
    }
    out.head += h;
    out.head += "\r\n";
  }
  out.head += "Connection: close\r\n\r\n";
  return out;
}

std::string http1Response(int status, std::string_view header, std::string_view reason) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status, statusText(status));
  if (status != 200) {
    if (!header.empty()) out += fmt::format("{}: {}\r\n", header, reason);
    out += "content-length: 0\r\nconnection: close\r\n";
  }
  out += "\r\n";
  return out;
}

}  // namespace tollgate::gateway
