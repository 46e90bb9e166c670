#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "identity/certificate_authority.h"
#include "agent/bpf_redirect.h"
#include "common/latest_worker.h"
#include "common/shared_slot.h"
#include "agent/admin_server.h"
#include "agent/config_watcher.h"
#include "agent/enroll_server.h"
#include "agent/fence.h"
#include "agent/handoff.h"
#include "agent/netns.h"
#include "agent/options.h"
#include "agent/pod_manager.h"
#include "agent/reconciler.h"
#include "identity/svid_manager.h"
#include "kube/kube_config_source.h"
#include "common/error.h"
#include "policy/snapshot.h"
#include "proxy/access_log.h"
#include "proxy/asio.h"
#include "proxy/connection_budget.h"
#include "proxy/metrics.h"
#include "proxy/proxy_context.h"
#include "proxy/resolver.h"
#include "proxy/socket_registry.h"
#include "proxy/status_server.h"
#include "proxy/tunnel_pool.h"

#include <boost/asio/executor_work_guard.hpp>

namespace tollgate::agent {

// The standalone node agent: config from a watched directory, the enrollment server, per-pod
// redirect + capture listeners, the host fence, metrics and health. One io_context run by
// options.threads threads carries every proxy connection.
class Agent {
 public:
  explicit Agent(AgentOptions options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Brings everything up. A config that does not load is not fatal (the agent is not ready and
  // refuses enrollment until a good one appears); a socket that cannot be bound is.
  Status start();
  void stop();
  // start(), wait for SIGTERM/SIGINT, stop(). Returns the process exit code.
  int run();

  // Loads and compiles the config directory; on success swaps the snapshot and applies its mesh
  // settings (resolvers, redirect, fence). On failure keeps the old snapshot and logs every error.
  bool reload();
  // Compiles and installs a loaded config (either source); false (old snapshot kept) if it
  // does not compile. `from` names the source in log lines.
  bool install(policy::Config config, const std::string& from);
  bool ready() const;
  // Null with --config-source files.
  kube::KubeConfigSource* kubeSource() { return kubeSource_.get(); }
  // "nftables", "ebpf", or "none" while no redirect could be loaded (status, tollgatectl).
  std::string redirectMode() const { return redirectMode_.load(); }

  proxy::Metrics& metrics() { return metrics_; }
  PodManager& pods() { return *pods_; }
  policy::SnapshotPtr snapshot() const { return snapshots_.load(); }
  uint16_t metricsPort() const { return metricsServer_ ? metricsServer_->port() : 0; }
  uint16_t healthPort() const { return healthServer_ ? healthServer_->port() : 0; }
  // Null without --ca-cert/--ca-key.
  identity::SvidManager* svids() { return svids_.get(); }
  proxy::TunnelPool* tunnels() { return tunnels_.get(); }
  // Null when --reconcile-interval is 0.
  Reconciler* reconciler() { return reconciler_.get(); }

  // Listener handoff (agent/handoff.h). start() takes the sockets over from an agent answering
  // on <run-dir>/handoff.sock; once running, this agent answers there itself. retired(): this
  // agent handed everything to a newer one and finished draining (run() then returns).
  std::string handoffPath() const;
  bool retired() const;
  bool waitRetired(std::chrono::milliseconds timeout);
  const HandoffCounters& handoffCounters() const { return handoffCounters_; }
  proxy::SocketRegistry& sockets() { return sockets_; }

 private:
  void apply(const policy::Snapshot& snapshot);
  // Loads the CA (when configured) and sets up SVID issuance and the tunnel pool.
  Status startIdentity();
  proxy::awaitable<void> rotateLoop();
  // The listening socket of the agent's own `key` ("node" sockets), through the registry.
  Result<int> nodeSocket(proxy::SocketTransport transport, const std::string& local,
                         const std::function<Result<int>()>& make);
  // Commits a takeover (if this agent started by one) and starts serving handoff.sock.
  Status startHandoff();
  // The admin socket's answers (tollgatectl), on the admin server's thread.
  admin::AdminReply handleAdmin(const admin::AdminRequest& req);
  admin::AgentStatus status() const;
  std::vector<admin::CertInfo> certs() const;
  // tollgatectl verify: every check and bypass vector for one pod (agent/pod_verifier.h).
  admin::AdminReply verify(const admin::VerifyRequest& req);
  // --max-connections-per-node, lowered to what the open files limit can hold.
  size_t nodeConnectionLimit() const;
  // The serving side's hooks (agent/handoff.h).
  void pauseForHandoff();
  void resumeAfterHandoff();
  void stopAccepting();
  void retire();

  AgentOptions options_;
  // inputs_.budget, sized in start(). Declared before io_ so it outlives it: listeners still
  // queued in io_ give their pod back to the budget when io_ destroys them.
  std::unique_ptr<proxy::ConnectionBudget> budget_;
  proxy::asio::io_context io_;
  proxy::asio::executor_work_guard<proxy::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  proxy::SnapshotHolder snapshots_;
  // The snapshot whose mesh settings (redirect, fence, resolvers) are in place: stored after
  // apply(). Readiness and a handoff's wait go by this one, not by snapshots_: between the two
  // stores the proxy has a config but an ADD or a verify would find no redirect (loading the
  // eBPF programs takes a while).
  proxy::SnapshotHolder applied_;
  proxy::Metrics metrics_;
  proxy::SocketRegistry sockets_;
  HandoffCounters handoffCounters_;
  proxy::AccessLog accessLog_;
  proxy::EventJournal events_;
  proxy::Resolver resolver_;
  proxy::ProxyInputs inputs_;
  std::unique_ptr<PodManager> pods_;
  std::unique_ptr<EnrollServer> enroll_;
  std::unique_ptr<AdminServer> admin_;
  std::chrono::steady_clock::time_point startedAt_ = std::chrono::steady_clock::now();
  std::atomic<int64_t> configLoadedUnix_{0};
  std::unique_ptr<Reconciler> reconciler_;
  std::unique_ptr<ConfigWatcher> watcher_;
  // --config-source kubernetes: the API client and the list+watch source feeding install().
  std::shared_ptr<kube::ApiClient> kubeClient_;
  std::unique_ptr<kube::KubeConfigSource> kubeSource_;
  // The source's configs are compiled and applied (nft/BPF work) here, not on the io thread
  // that delivers them and carries proxied connections.
  std::unique_ptr<LatestWorker<std::shared_ptr<const policy::Config>>> kubeInstaller_;
  Status startKubeSource();
  std::string configSourceName() const;
  std::string kubeMetrics() const;
  std::unique_ptr<proxy::StatusServer> metricsServer_;
  std::unique_ptr<proxy::StatusServer> healthServer_;
  std::optional<Netns> nodeNetns_;
  std::mutex reloadMu_;
  std::mutex fenceMu_;
  std::shared_ptr<const HostFence> fence_;  // as installed; a verify holds its copy
  // The eBPF redirect once the mode was ebpf (kept across reloads that do not change its ports,
  // so programs are loaded once); the proxy asks it for original destinations. SharedSlot: read
  // by every accepted connection, swapped by apply().
  SharedSlot<const BpfRedirect> bpf_;
  // What apply() installed last (status): "nftables", "ebpf", or "none" while no redirect
  // could be loaded (CNI ADDs are refused then).
  std::atomic<const char*> redirectMode_{"none"};
  std::shared_ptr<const identity::CertificateAuthority> ca_;
  std::unique_ptr<identity::SvidManager> svids_;
  std::unique_ptr<proxy::TunnelPool> tunnels_;
  std::unique_ptr<proxy::asio::steady_timer> rotateTimer_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::unique_ptr<HandoffClient> takeover_;  // until committed
  std::unique_ptr<HandoffServer> handoffServer_;
  mutable std::mutex retireMu_;
  std::condition_variable retireCv_;
  bool retired_ = false;
};

}  // namespace tollgate::agent
