#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace tollgate::gateway {

// The parsed head of an HTTP/1.1 request on the tunnel port.
struct Http1Request {
  std::string method;
  std::string target;  // authority-form for CONNECT
};

// Parses a request head ending in CRLFCRLF (RFC 9112 3). Only the request line matters: headers
// are checked for well-formedness and size, never trusted (the :authority is the target).
Result<Http1Request> parseHttp1Request(std::string_view head);

// A forward-proxy request in absolute form ("GET http://svc.test/x HTTP/1.1", what curl sends
// through an HTTPS proxy for http:// URLs without --proxytunnel), rewritten for the origin.
struct ForwardRequest {
  std::string authority;  // host:port from the URI (port 80 when absent): what is authorized
  // Origin-form request line and headers: Host set from the URI (RFC 9112 3.2.2: a proxy
  // ignores the client's Host), proxy hop-by-hop headers dropped, "Connection: close" so the
  // tunnel carries exactly this one exchange.
  std::string head;
};
Result<ForwardRequest> toOriginForm(std::string_view head);

// "HTTP/1.1 <status> <text>\r\n" + optional reason header + "\r\n"; refusals close.
std::string http1Response(int status, std::string_view header = {}, std::string_view reason = {});

}  // namespace tollgate::gateway
