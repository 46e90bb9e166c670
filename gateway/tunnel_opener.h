#pragma once

#include <functional>
#include <memory>

#include <memory>
#include <string>
#include <string_view>

#include "gateway/gateway_context.h"
#include "identity/spiffe_id.h"
#include "gateway/upstream.h"
#include "proxy/access_log.h"

namespace tollgate::gateway {

// The response header carrying why a tunnel was refused, for policy (400/403) and upstream
// (502/503/504) refusals alike: the node's tunnel client passes it on to the app as is.
inline constexpr std::string_view kDeniedHeader = "x-tollgate-denied";

// Lets the client side abandon an open() in flight (the h2 stream was reset, the connection
// went away): the upstream connect or TLS handshake in progress is cancelled, so a flood of
// HEADERS + RST_STREAM (CVE-2023-44487) does not leave upstream dials running. Same thread as
// open(): no locking.
struct OpenCancel {
  bool cancelled = false;
  std::function<void()> hook;  // cancels the operation in progress; set by open()
  void cancel() {
    cancelled = true;
    if (hook) hook();
  }
};

struct TunnelRequest {
  identity::SpiffeId peer;
  std::string authority;  // CONNECT target, untrusted
  std::string protocol;   // "h2" or "http/1.1", for logs and metrics
  std::shared_ptr<OpenCancel> cancel;  // optional
};

// What opening a tunnel produced: either a connected upstream (status 200) or a refusal.
struct TunnelOutcome {
  int status = 0;      // 200, 400, 403, 502, 503, 504
  std::string reason;  // stable code: decision reason, "authz", "special_address", "dns", ...
  std::string detail;  // for the log line only (never sent to the client)
  std::unique_ptr<Upstream> upstream;
  proxy::AccessRecord record;

  bool ok() const { return status == 200; }
  // The header that carries `reason` in a refusal.
  std::string_view reasonHeader() const { return kDeniedHeader; }
};

// Authorizes, resolves and connects one CONNECT request (DESIGN.md "Tunnels and identity"):
// registry decision for the peer identity, AuthorizationPolicy, the gateway's own resolution
// with special-use addresses refused, and TLS origination per DestinationRule.
class TunnelOpener {
 public:
  explicit TunnelOpener(GatewayInputs& in) : in_(in) {}

  awaitable<TunnelOutcome> open(TunnelRequest request);

  // Logs a finished tunnel and counts it. result: "allow" (relayed), "deny", "error".
  void finish(TunnelOutcome& outcome, std::string_view protocol);

  const Options& options() const { return in_.options; }

 private:
  GatewayInputs& in_;
};

}  // namespace tollgate::gateway
