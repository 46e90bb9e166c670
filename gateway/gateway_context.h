#pragma once

#include <atomic>
#include <memory>

#include "gateway/options.h"
#include "policy/authorization.h"
#include "policy/snapshot.h"
#include "proxy/asio.h"

namespace tollgate::proxy {
class AccessLog;
class Resolver;
}  // namespace tollgate::proxy

namespace tollgate::gateway {

namespace asio = boost::asio;
using asio::awaitable;

class GatewayMetrics;

// One compiled config: the snapshot and the AuthorizationPolicy evaluator built from it, swapped
// together so a tunnel never sees the registry of one version and the policies of another.
struct GatewayState {
  policy::SnapshotPtr snapshot;
  std::shared_ptr<const policy::Authorizer> authorizer;
};
using GatewayStatePtr = std::shared_ptr<const GatewayState>;

// Builds the state for a snapshot; `ns`/`labels` identify this gateway to policy selectors.
GatewayStatePtr makeGatewayState(policy::SnapshotPtr snapshot, const std::string& ns,
                                 const policy::Labels& labels);

class StateHolder {
 public:
  GatewayStatePtr load() const { return current_.load(); }
  void store(GatewayStatePtr s) { current_.store(std::move(s)); }

 private:
  std::atomic<GatewayStatePtr> current_;
};

// Everything the server and its tunnels need, passed by reference (ztunnel's ProxyInputs).
struct GatewayInputs {
  proxy::asio::io_context& io;
  Options options;
  StateHolder& state;
  GatewayMetrics& metrics;
  proxy::AccessLog& accessLog;
  proxy::Resolver& resolver;
  policy::Labels labels;  // this gateway's pod labels, for AuthorizationPolicy selectors
};

}  // namespace tollgate::gateway
