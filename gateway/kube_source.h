#pragma once

#include <utility>  // before <boost/asio/awaitable.hpp> with Boost 1.74

#include <memory>
#include <string>
#include <thread>

#include "common/error.h"
#include "gateway/gateway_context.h"
#include "kube/kube_config_source.h"

namespace tollgate::gateway {

// --config-source kubernetes: a KubeConfigSource over gatewayResources() on a control-plane
// thread of its own (neither the acceptor's nor a tunnel's), and the same compile and swap as a
// files reload: each config from the API becomes a GatewayState (snapshot + Authorizer) stored
// in one atomic swap; one that does not compile keeps the last good state, logged and counted
// in tollgate_gateway_config_reloads_failed_total.
class KubeSource {
 public:
  // Reads --kubeconfig (or the in-cluster service account); fails when either is unusable.
  static Result<std::unique_ptr<KubeSource>> create(GatewayInputs& in);
  ~KubeSource();
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  void start();
  // Stops the watches and joins the control-plane thread; the last state stays installed.
  void stop();

  // "kubernetes (kubeconfig /path)" or "kubernetes (in-cluster)", for the start-up log.
  const std::string& name() const { return name_; }
  kube::KubeSourceStatus status() const { return source_->status(); }
  // "" once every resource was listed and a config installed, else why not.
  std::string notReadyReason() const;
  // tollgate_config_source_* for the gateway's /metrics.
  std::string metrics() const;

 private:
  KubeSource(GatewayInputs& in, std::shared_ptr<kube::ApiClient> client, std::string name);
  void install(const policy::Config& config);

  GatewayInputs& in_;
  std::string name_;
  asio::io_context io_{1};  // declared before the source: its handlers die with it
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<kube::KubeConfigSource> source_;
  std::thread thread_;
  bool installed_ = false;  // on the control-plane thread
};

}  // namespace tollgate::gateway
