#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "common/error.h"
#include "gateway/gateway_context.h"

namespace tollgate::gateway {

class GatewayServer;

// Keeps the gateway's config and certificates current: every second it fingerprints the config
// tree and the certificate files (path -> mtime, size) and rebuilds what changed. A bad config
// or an unloadable certificate keeps the previous one (and is counted and logged). With
// --config-source kubernetes it polls the certificates only (KubeSource installs the config).
class Reloader {
 public:
  using Fingerprint = std::map<std::string, std::pair<int64_t, int64_t>>;

  Reloader(GatewayInputs& in, GatewayServer& server) : in_(in), server_(server), timer_(in.io) {}

  // Loads config and certificates once; fails when either is unusable (startup only).
  Status loadInitial();
  // Starts the 1 s poll on the io_context.
  void start();
  void stop();
  // One poll: reload whatever changed since the last one. Runs on the io_context thread.
  void pollOnce();

  static Fingerprint scan(const std::string& path);

 private:
  bool pollsConfig() const { return in_.options.configSource == "files"; }
  Status reloadConfig();
  Status reloadCertificates();
  void schedule();

  GatewayInputs& in_;
  GatewayServer& server_;
  asio::steady_timer timer_;
  Fingerprint config_;
  Fingerprint certs_;
  bool stopped_ = false;
};

// Compiles a loaded config (either source) into gateway state. NetworkPolicies are dropped: the
// gateway re-checks the registry and AuthorizationPolicy, the node proxy NetworkPolicy. `from`
// names the source in errors.
Result<GatewayStatePtr> compileGatewayState(policy::Config config, const std::string& from,
                                            const std::string& ns, const policy::Labels& labels);
// Loads and compiles a config directory into gateway state.
Result<GatewayStatePtr> loadGatewayState(const std::string& dir, const std::string& ns,
                                         const policy::Labels& labels);
// The swap both sources share: the state's DNS upstreams, then the state itself. Any thread.
void installGatewayState(GatewayInputs& in, GatewayStatePtr state);

}  // namespace tollgate::gateway
