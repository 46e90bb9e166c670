#include "agent/agent.h"

#include <fmt/format.h>
#include <signal.h>

#include <filesystem>

#include "agent/memory.h"
#include "agent/pod_verifier.h"
#include "agent/tunnel_identity.h"
#include "common/fd_limit.h"
#include "proxy/connection_budget.h"
#include "common/framing.h"
#include "common/log.h"
#include "identity/svid.h"
#include "kube/client_config.h"
#include "kube/source_metrics.h"
#include "policy/config_loader.h"
#include "proxy/socket_util.h"

namespace tollgate::agent {
namespace {
constexpr std::string_view kLog = "agent";

log::Level parseLevel(const std::string& s) {
  if (s == "debug") return log::Level::Debug;
  if (s == "warn") return log::Level::Warn;
  if (s == "error") return log::Level::Error;
  return log::Level::Info;
}
}  // namespace

Agent::Agent(AgentOptions options)
    : options_(std::move(options)),
      work_(io_.get_executor()),
      resolver_(io_),
      inputs_{io_, proxy::ProxyOptions{}, snapshots_, metrics_, accessLog_, resolver_} {
  inputs_.sockets = &sockets_;
  inputs_.events = &events_;
  inputs_.options.sniffTimeout = options_.sniffTimeout;
  inputs_.options.maxConnectionsPerPod = options_.maxConnectionsPerPod;
  // The eBPF mode's record first (a connection it redirected has no conntrack entry), then
  // SO_ORIGINAL_DST: pods still under nftables during a mode change keep working.
  inputs_.originalDst = [this](int fd, const proxy::Endpoint& local) -> Result<proxy::Endpoint> {
    auto bpf = bpf_.load();
    if (bpf) {
      if (auto o = bpf->originalDst(fd)) return o;
    }
    auto orig = proxy::originalDestination(fd, local.ip.isV4() ? AF_INET : AF_INET6);
    // No redirect record and no NAT: nothing rewrote this connection, so it went where it
    // arrived, the proxy's own port (refused as a loop).
    if (!orig && bpf) return local;
    return orig;
  };
  // The same order for a QUIC datagram's destination; an error sends the telemetry to conntrack.
  inputs_.quicOriginalDst = [this](int fd,
                                   const proxy::Endpoint& from) -> Result<proxy::Endpoint> {
    auto bpf = bpf_.load();
    if (!bpf) return fail("not in ebpf mode");
    return bpf->quicOriginalDst(fd, from);
  };
}

Agent::~Agent() { stop(); }

bool Agent::ready() const {
  if (kubeSource_ && !kubeSource_->status().ready) return false;
  // A config whose redirect could not be loaded (and no earlier one to keep) leaves ADDs refused.
  return applied_.load() != nullptr && std::string_view(redirectMode_.load()) != "none" &&
         enroll_ != nullptr && enroll_->up();
}

bool Agent::reload() {
  std::lock_guard lock(reloadMu_);
  auto loaded = policy::ConfigLoader::loadPath(options_.configDir);
  if (!loaded) {
    metrics_.reloadsFailed++;
    for (const auto& d : loaded.error()) log::error("config", "{}", d.str());
    log::error("config", "reload of {} rejected ({} errors); keeping the previous config",
               options_.configDir, loaded.error().size());
    return false;
  }
  for (const auto& d : loaded->warnings) log::warn("config", "{}", d.str());
  return install(std::move(loaded->config), options_.configDir);
}

bool Agent::install(policy::Config config, const std::string& from) {
  auto compiled = policy::Snapshot::compile(std::move(config));
  if (!compiled) {
    metrics_.reloadsFailed++;
    log::error("config", "reload of {} rejected: {}; keeping the previous config", from,
               compiled.error().str());
    return false;
  }
  snapshots_.store(*compiled);
  configLoadedUnix_ = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  metrics_.reloadsOk++;
  log::info("config", "loaded {} (generation {})", from, (*compiled)->generation());
  apply(**compiled);
  applied_.store(*compiled);
  if (pods_) pods_->syncIdentities();
  return true;
}

std::string Agent::configSourceName() const {
  if (options_.configSource == "files") return "files:" + options_.configDir;
  return "kubernetes:" + (options_.kubeconfig.empty() ? std::string("in-cluster") : options_.kubeconfig) +
         " node " + options_.nodeName;
}

Status Agent::startKubeSource() {
  if (options_.configSource != "kubernetes") return {};
  auto cfg = options_.kubeconfig.empty() ? kube::inClusterConfigFromEnvironment()
                                         : kube::loadKubeconfig(options_.kubeconfig);
  if (!cfg) return std::unexpected(cfg.error().wrap("kubernetes config source"));
  auto client = kube::ApiClient::create(*cfg);
  if (!client) return std::unexpected(client.error().wrap("kubernetes config source"));
  kubeClient_ = *client;
  std::string from = "kubernetes (" + cfg->source + ")";
  kubeInstaller_ = std::make_unique<LatestWorker<std::shared_ptr<const policy::Config>>>(
      [this, from](std::shared_ptr<const policy::Config> config) {
        std::lock_guard lock(reloadMu_);
        install(*config, from);
      });
  kubeSource_ = std::make_unique<kube::KubeConfigSource>(
      io_.get_executor(), kubeClient_, kube::KubeConfigSource::agentResources(options_.nodeName),
      [this](std::shared_ptr<const policy::Config> config,
             const std::vector<policy::Diagnostic>& warnings) {
        for (const auto& d : warnings) log::warn("config", "{}", d.str());
        kubeInstaller_->post(std::move(config));
      });
  metrics_.addCollector([this] { return kubeMetrics(); });
  kubeSource_->start();
  log::info(kLog, "config source: {}, Pods of node {} only", from, options_.nodeName);
  return {};
}

std::string Agent::kubeMetrics() const {
  if (!kubeSource_) return {};
  std::string out = kube::renderSourceMetrics(kubeSource_->status());
  if (kubeInstaller_) {
    out += "# HELP tollgate_config_source_installs_coalesced_total Configs from the API replaced by "
           "a newer one before their install began (only the newest of a burst is installed).\n"
           "# TYPE tollgate_config_source_installs_coalesced_total counter\n";
    out += proxy::formatSample("tollgate_config_source_installs_coalesced_total", {},
                               static_cast<double>(kubeInstaller_->replaced()));
  }
  return out;
}

void Agent::apply(const policy::Snapshot& snapshot) {
  const policy::TollgateConfig& mesh = snapshot.mesh();
  resolver_.setUpstreams(mesh.dnsUpstreams);

  std::vector<std::string> resolverIps;
  RedirectParams rp;
  rp.mark = mesh.packetMark;
  for (const auto& u : mesh.dnsUpstreams) {
    auto ep = proxy::parseResolverAddress(u);
    if (!ep) continue;  // already warned by the resolver
    resolverIps.push_back(ep->ip.str());
    (ep->ip.isV4() ? rp.resolversV4 : rp.resolversV6).push_back(ep->ip.str());
    rp.dnsPort = ep->port;  // one DNS port for all resolvers: the last one given wins
  }
  // With the per-pod DNS proxy, every udp/tcp 53 from a pod (to any address) goes to it and
  // the proxy forwards from this (node) netns: pods reach no resolver themselves.
  rp.dnsProxyPort = inputs_.options.dnsProxyPort;
  rp.quicPort = inputs_.options.quicPort;
  if (rp.dnsProxyPort != 0) rp.dnsPort = 53;  // what pods send to, whatever the upstream port
  // The flag wins over the config: the node knows what its kernel runs.
  std::string mode = options_.redirectMode;
  if (mode.empty() && mesh.redirectMode) {
    mode = *mesh.redirectMode == policy::RedirectMode::Ebpf ? "ebpf" : "nftables";
  }
  if (mode.empty()) mode = "nftables";
  if (mode == "ebpf") {
    auto current = bpf_.load();
    const auto& cp = current ? current->params() : rp;
    if (current && cp.proxyPort == rp.proxyPort && cp.dnsProxyPort == rp.dnsProxyPort &&
        cp.quicPort == rp.quicPort) {
      pods_->setRedirect(current);
    } else if (auto r = BpfRedirect::create(rp, options_.bpfPinDir)) {
      bpf_.store(*r);
      pods_->setRedirect(*r);
      log::info(kLog, "redirect mode ebpf: programs loaded, pinned under {}", options_.bpfPinDir);
    } else {
      metrics_.redirectLoadFailures++;
      log::error(kLog, "ebpf redirect: {}; keeping the previous redirect (without one, ADDs are "
                 "refused: agent not ready)", r.error().str());
      mode = redirectMode_.load();
    }
  } else if (auto r = NftRedirect::create(rp)) {
    pods_->setRedirect(std::make_shared<const NftRedirect>(std::move(*r)));
  } else {
    metrics_.redirectLoadFailures++;
    log::error(kLog, "redirect rules from config: {}; keeping the previous rules", r.error().str());
    mode = redirectMode_.load();
  }
  redirectMode_ = mode == "ebpf" ? "ebpf" : mode == "nftables" ? "nftables" : "none";

  FenceParams fp;
  fp.podInterfaces = options_.podInterfaces;
  for (const auto& c : mesh.podCidrs) fp.podCidrs.push_back(c.str());
  for (const auto& c : mesh.serviceCidrs) fp.serviceCidrs.push_back(c.str());
  for (const auto& g : mesh.gateways) {
    if (!policy::IpAddress::parse(g.address)) {
      log::warn(kLog, "host fence: gateway {} address '{}' is not an IP: not opened in the fence",
                g.name, g.address);
      continue;
    }
    fp.gateways.push_back({g.address, g.port});
  }
  // The fence filters what arrives from pod interfaces, not the agent's own output: with the DNS
  // proxy, the resolvers stay reachable for the agent and are closed to pods.
  if (rp.dnsProxyPort == 0) fp.resolvers = resolverIps;
  fp.dnsPort = rp.dnsPort;
  auto fence = HostFence::create(fp);
  if (!fence) {
    log::error(kLog, "host fence from config: {}; keeping the previous fence", fence.error().str());
    return;
  }
  std::lock_guard lock(fenceMu_);
  if (fence_ && fence_->ruleset() == fence->ruleset()) return;
  if (!nodeNetns_) return;
  if (auto st = fence->install(*nodeNetns_); !st) {
    log::error(kLog, "host fence: install: {}", st.error().str());
    return;
  }
  log::info(kLog, "host fence installed (interfaces {})", fmt::join(fp.podInterfaces, ","));
  fence_ = std::make_shared<const HostFence>(std::move(*fence));
}

Status Agent::startIdentity() {
  if (options_.caCert.empty()) {
    log::warn(kLog,
              "no CA configured ({} / {}): gateway routes fail closed with "
              "gateway_unavailable",
              flags::kCaCert, flags::kCaKey);
    return {};
  }
  auto ca =
      identity::CertificateAuthority::fromFiles(options_.caCert, options_.caKey, options_.caChain);
  if (!ca) return std::unexpected(ca.error().wrap("load CA"));
  ca_ = std::make_shared<const identity::CertificateAuthority>(std::move(*ca));
  // The trust domain is fixed for the agent's life: SVIDs already issued carry it.
  auto snap = snapshots_.load();
  std::string trustDomain = snap ? snap->mesh().trustDomain : policy::TollgateConfig{}.trustDomain;
  svids_ = std::make_unique<identity::SvidManager>(ca_, trustDomain, identity::systemClock(),
                                                   options_.svidLifetime);
  pods_->setSvids(svids_.get());

  proxy::TunnelPoolOptions po;
  po.pooling = options_.tunnelConnections > 0;
  po.connectionsPerKey = static_cast<size_t>(std::max(1, options_.tunnelConnections));
  po.limits.connectTimeout = inputs_.options.connectTimeout;
  tunnels_ = std::make_unique<proxy::TunnelPool>(io_, makeSvidSource(*svids_), &metrics_, po);
  inputs_.tunnels = tunnels_.get();
  rotateTimer_ = std::make_unique<proxy::asio::steady_timer>(io_);
  proxy::asio::co_spawn(io_, rotateLoop(), proxy::asio::detached);
  log::info(kLog, "identity: CA {} (trust domain {}), SVID lifetime {}s, tunnel pool {}",
            options_.caCert, trustDomain, options_.svidLifetime.count(),
            po.pooling ? fmt::format("{} connections per key", po.connectionsPerKey)
                       : std::string("off"));
  return {};
}

proxy::awaitable<void> Agent::rotateLoop() {
  // Rotation replaces SVIDs in the manager only: tunnels already up keep their TLS session,
  // new ones present the new certificate.
  while (!stopping_) {
    rotateTimer_->expires_after(std::chrono::seconds(1));
    boost::system::error_code ec;
    co_await rotateTimer_->async_wait(proxy::asio::redirect_error(proxy::use_awaitable, ec));
    if (stopping_ || ec == proxy::asio::error::operation_aborted) co_return;
    auto now = std::chrono::system_clock::now();
    if (!svids_->needsRotation(now)) continue;
    if (auto st = svids_->rotate(now); !st) {
      log::error(kLog, "SVID rotation: {} (old SVIDs stay until they expire)", st.error().str());
    } else {
      log::info(kLog, "SVIDs rotated");
    }
  }
}

Status Agent::start() {
  log::setLevel(parseLevel(options_.logLevel));
  if (auto st = accessLog_.open(options_.accessLog, options_.logFormat); !st) return st;
  auto node = Netns::current();
  if (!node) return std::unexpected(node.error().wrap("node netns"));
  nodeNetns_.emplace(std::move(*node));

  std::error_code ec;
  std::filesystem::create_directories(options_.runDir, ec);
  if (ec) return fail(fmt::format("create {}: {}", options_.runDir, ec.message()));
  // An agent already serving hands its listening sockets over before this one binds anything
  // (listener handoff); it keeps serving if anything below fails.
  auto takeover = HandoffClient::takeover(handoffPath(), sockets_, handoffCounters_);
  if (!takeover) return std::unexpected(takeover.error());
  takeover_ = std::move(*takeover);
  metrics_.addCollector([this] { return handoffCounters_.prometheus(); });
  budget_ = std::make_unique<proxy::ConnectionBudget>(nodeConnectionLimit());
  inputs_.budget = budget_.get();
  pods_ = std::make_unique<PodManager>(inputs_, options_.runDir);
  if (auto st = pods_->init(); !st) return st;
  if (options_.configSource == "kubernetes") pods_->requirePodObjects(std::chrono::seconds(3));

  if (options_.configSource == "files" && !reload()) {
    log::error(kLog, "no valid config in {}: not ready", options_.configDir);
  }
  if (auto st = startIdentity(); !st) return st;

  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { io_.run(); });
  started_ = true;
  if (auto st = startKubeSource(); !st) return st;
  if (takeover_ && kubeSource_) {
    // The running agent serves until this one commits, and this one's listeners accept from
    // readopt() on: without a config they would refuse what the running agent allows. Wait for
    // the first list; without one the upgrade is given up and the running agent carries on.
    log::info(kLog, "handoff: waiting for the first config from the kubernetes API (up to {} ms) "
              "before taking the pods over", options_.handoffConfigWait.count());
    if (!applied_.waitFor([](const policy::Snapshot&) { return true; },
                          std::chrono::steady_clock::now() + options_.handoffConfigWait)) {
      std::string why = kube::notReadyReason(kubeSource_->status());
      log::error(kLog, "handoff: no config from the kubernetes API within {} ms ({}): upgrade "
                 "given up, the running agent carries on", options_.handoffConfigWait.count(), why);
      return fail(fmt::format("handoff: no config from the kubernetes API within {} ms: {}",
                              options_.handoffConfigWait.count(), why));
    }
  }

  pods_->readopt();
  // Config load and re-adoption free most of what they allocate: give the pages back now, not
  // only at the first reconcile pass (agent/memory.h).
  releaseFreedMemory();

  metrics_.addCollector([this] { return pods_->collectMetrics(); });
  if (options_.reconcileInterval.count() > 0) {
    reconciler_ = std::make_unique<Reconciler>(*pods_, options_.reconcileInterval, &events_);
    metrics_.addCollector([this] { return reconciler_->collectMetrics(); });
    reconciler_->start();
  }
  metrics_.addCollector([this]() -> std::string {
    std::lock_guard lock(fenceMu_);
    if (!fence_ || !nodeNetns_) return "";
    auto c = fence_->counters(*nodeNetns_);
    if (!c) return "";
    std::string out =
        "# HELP tollgate_fence_packets_total Packets counted by the host fence.\n"
        "# TYPE tollgate_fence_packets_total counter\n";
    for (const auto& [name, v] : *c) {
      out += proxy::formatSample("tollgate_fence_packets_total", {{"counter", name}},
                                 static_cast<double>(v.packets));
    }
    return out;
  });

  enroll_ = std::make_unique<EnrollServer>(
      (std::filesystem::path(options_.runDir) / "cni.sock").string(),
      [this](const enroll::EnrollRequest& req, int fd) { return pods_->handle(req, fd); });
  auto cniFd = nodeSocket(proxy::SocketTransport::Unix, enroll_->path(),
                          [this] { return listenUnix(enroll_->path(), 0600); });
  if (!cniFd) return std::unexpected(cniFd.error().wrap("enrollment socket"));
  if (auto st = enroll_->start(*cniFd); !st) return st;

  admin_ = std::make_unique<AdminServer>(
      (std::filesystem::path(options_.runDir) / "admin.sock").string(),
      [this](const admin::AdminRequest& req) { return handleAdmin(req); });
  auto adminFd = nodeSocket(proxy::SocketTransport::Unix, admin_->path(),
                            [this] { return listenUnix(admin_->path(), 0600); });
  if (!adminFd) return std::unexpected(adminFd.error().wrap("admin socket"));
  if (auto st = admin_->start(*adminFd); !st) return st;
  metrics_.addCollector([this] { return admin_ ? admin_->collectMetrics() : std::string(); });

  if (options_.configSource == "files") {
    watcher_ = std::make_unique<ConfigWatcher>(options_.configDir, [this] { reload(); });
    if (auto st = watcher_->start(); !st) return st;
  }

  if (options_.metricsPort != 0) {
    metricsServer_ = std::make_unique<proxy::StatusServer>(io_);
    metricsServer_->route("/metrics", [this] {
      return proxy::StatusServer::Response{200, "text/plain; version=0.0.4", metrics_.render()};
    });
    uint16_t port = options_.metricsPort;
    auto fd = nodeSocket(proxy::SocketTransport::Tcp, fmt::format("0.0.0.0:{}", port), [port] {
      return proxy::makeListener(proxy::Endpoint{policy::IpAddress::v4(0), port});
    });
    if (!fd) return std::unexpected(fd.error().wrap("metrics listener"));
    if (auto st = metricsServer_->listenFd(*fd); !st) return st;
  }
  if (options_.healthPort != 0) {
    healthServer_ = std::make_unique<proxy::StatusServer>(io_);
    healthServer_->route("/healthz/ready", [this] {
      if (ready()) return proxy::StatusServer::Response{200, "text/plain", "ready\n"};
      std::string why = kubeSource_ && !kubeSource_->status().ready
                            ? kube::notReadyReason(kubeSource_->status()) + "\n"
                        : snapshots_.load() == nullptr ? "no valid config loaded\n"
                        : applied_.load() == nullptr    ? "config loaded, redirect not yet in place\n"
                        : std::string_view(redirectMode_.load()) == "none"
                            ? "no redirect could be loaded (tollgate_redirect_load_failures_total)\n"
                                                       : "enrollment socket is down\n";
      return proxy::StatusServer::Response{503, "text/plain", why};
    });
    // Liveness: the io threads answer. Not readiness: an agent that cannot reach the API server
    // yet is waiting, not wedged, and a restart would only drop its pods' open connections.
    healthServer_->route("/healthz/live", [] {
      return proxy::StatusServer::Response{200, "text/plain", "alive\n"};
    });
    uint16_t port = options_.healthPort;
    auto fd = nodeSocket(proxy::SocketTransport::Tcp, fmt::format("0.0.0.0:{}", port), [port] {
      return proxy::makeListener(proxy::Endpoint{policy::IpAddress::v4(0), port});
    });
    if (!fd) return std::unexpected(fd.error().wrap("health listener"));
    if (auto st = healthServer_->listenFd(*fd); !st) return st;
  }
  if (auto st = startHandoff(); !st) return st;
  log::info(kLog, "started: config {}, run dir {}, {} threads, {} pods adopted", configSourceName(),
            options_.runDir, options_.threads, pods_->size());
  return {};
}

void Agent::stop() {
  stopping_ = true;
  // First: a drain in progress ends, and no takeover starts while this agent goes down.
  if (handoffServer_) handoffServer_->stop();
  takeover_.reset();
  if (rotateTimer_) {
    proxy::asio::post(io_, [t = rotateTimer_.get()] { t->cancel(); });
  }
  if (tunnels_) tunnels_->shutdown();
  if (enroll_) enroll_->stop();
  if (admin_) admin_->stop();
  if (watcher_) watcher_->stop();
  if (kubeSource_) kubeSource_->stop();
  if (kubeInstaller_) kubeInstaller_->stop();  // after the source: nothing posts any more
  // Before the listeners close, or it would re-create them.
  if (reconciler_) reconciler_->stop();
  // Listeners close; the rules stay in every pod netns, so the pods stay closed (fail closed).
  if (pods_) pods_->shutdown();
  if (metricsServer_) metricsServer_->close();
  if (healthServer_) healthServer_->close();
  if (started_) {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    started_ = false;
  }
}

admin::AdminReply Agent::handleAdmin(const admin::AdminRequest& req) {
  admin::AdminReply r;
  r.set_ok(true);
  if (auto snap = snapshots_.load()) r.set_config_generation(snap->generation());
  switch (req.request_case()) {
    case admin::AdminRequest::kStatus:
      *r.mutable_status() = status();
      break;
    case admin::AdminRequest::kPods:
      for (auto& p : pods_->describe(req.pods().namespace_())) *r.add_pods() = std::move(p);
      break;
    case admin::AdminRequest::kRules: {
      auto v = pods_->rulesOf(req.rules().namespace_(), req.rules().name());
      if (!v) {
        r.set_ok(false);
        r.set_error(v.error().str());
        break;
      }
      r.set_text(v->installed.value_or(""));
      r.set_expected(v->expected);
      admin::PodStatus* p = r.add_pods();
      p->set_namespace_(req.rules().namespace_());
      p->set_name(req.rules().name());
      p->set_rules_ok(v->drift.ok());
      for (const auto& d : v->drift.differences) p->add_drift(d);
      break;
    }
    case admin::AdminRequest::kConns: {
      auto conns = pods_->connections(req.conns().namespace_(), req.conns().name());
      if (!conns) {
        r.set_ok(false);
        r.set_error(conns.error().str());
        break;
      }
      for (auto& c : *conns) *r.add_conns() = std::move(c);
      break;
    }
    case admin::AdminRequest::kLog: {
      const auto& q = req.log();
      size_t max = q.max() == 0 ? 1000 : std::min<size_t>(q.max(), 1000);
      auto page = events_.read(q.after(), q.namespace_(), q.name(), max);
      r.set_next_seq(page.next);
      r.set_missed(page.missed);
      for (auto& e : page.events) {
        admin::LogEvent* out = r.add_events();
        out->set_seq(e.seq);
        out->set_unix_ms(e.unixMs);
        out->set_kind(std::move(e.kind));
        out->set_namespace_(std::move(e.ns));
        out->set_pod(std::move(e.pod));
        out->set_text(std::move(e.text));
        for (auto& [k, v] : e.fields) (*out->mutable_fields())[k] = std::move(v);
      }
      break;
    }
    case admin::AdminRequest::kVerify: {
      auto v = verify(req.verify());
      v.set_config_generation(r.config_generation());
      return v;
    }
    case admin::AdminRequest::kCerts:
      for (auto& c : certs()) *r.add_certs() = std::move(c);
      if (!svids_) {
        r.set_ok(false);
        r.set_error("no built-in CA: the agent runs without --ca-cert/--ca-key, so no SVIDs");
      }
      break;
    default:
      r.set_ok(false);
      r.set_error("this agent does not implement that request yet");
      break;
  }
  return r;
}

admin::AdminReply Agent::verify(const admin::VerifyRequest& req) {
  admin::AdminReply r;
  auto subject = pods_->verifySubject(req.namespace_(), req.name());
  if (!subject) {
    r.set_error(subject.error().str());
    return r;
  }
  PodVerifier::Inputs in;
  in.ns = req.namespace_();
  in.name = req.name();
  in.pod = subject->netns;
  in.redirect = subject->redirect;
  in.podKey = subject->key;
  in.podCgroup = subject->cgroup;
  if (subject->redirect) {
    // ebpf: the programs see only processes in the pod's cgroup, so the probes run there.
    auto cg = subject->redirect->probeCgroup(subject->target());
    if (!cg) {
      r.set_error("verify: the pod's cgroup: " + cg.error().str());
      return r;
    }
    in.probeCgroup = *cg;
  }
  std::shared_ptr<const HostFence> fence;
  {
    std::lock_guard lock(fenceMu_);
    fence = fence_;
  }
  in.fence = fence.get();
  in.node = nodeNetns_ ? &*nodeNetns_ : nullptr;
  in.journal = &events_;
  if (!req.target4().empty()) in.plan.target4 = req.target4();
  if (!req.target6().empty()) in.plan.target6 = req.target6();
  auto t4 = policy::IpAddress::parse(in.plan.target4);
  auto t6 = policy::IpAddress::parse(in.plan.target6);
  if (!t4 || !t4->isV4() || !t6 || t6->isV4()) {
    r.set_error(fmt::format("targets {} / {}: expected an IPv4 and an IPv6 address",
                            in.plan.target4, in.plan.target6));
    return r;
  }
  if (subject->redirect) {
    in.plan.mark = subject->redirect->params().mark;
    in.plan.proxyPort = subject->redirect->params().proxyPort;
  }
  if (req.pod_uid() != 0) in.podUid = req.pod_uid();
  log::info(kLog, "verify {}/{}: probing {} and {} as uid {}, 1337 and root", in.ns, in.name,
            in.plan.target4, in.plan.target6, in.podUid);
  for (auto& c : PodVerifier(std::move(in)).run()) *r.add_checks() = std::move(c);
  r.set_ok(true);
  return r;
}

admin::AgentStatus Agent::status() const {
  admin::AgentStatus s;
  s.set_version(TOLLGATE_VERSION);
  s.set_uptime_seconds(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                 std::chrono::steady_clock::now() - startedAt_)
                                                 .count()));
  s.set_redirect_mode(redirectMode_);
  s.set_config_source(configSourceName());
  auto snap = snapshots_.load();
  if (snap) {
    s.set_config_generation(snap->generation());
    for (const auto& g : snap->mesh().gateways) {
      admin::GatewayStatus* gs = s.add_gateways();
      gs->set_name(g.name);
      gs->set_address(g.address);
      gs->set_port(g.port);
      gs->set_is_default(g.isDefault);
    }
  }
  s.set_config_loaded_unix(configLoadedUnix_.load());
  s.set_reloads_ok(metrics_.reloadsOk.load());
  s.set_reloads_failed(metrics_.reloadsFailed.load());
  s.set_enrolled_pods(pods_ ? pods_->size() : 0);
  s.set_active_connections(metrics_.active.load());
  s.set_tunnel_connections_up(metrics_.tunnelConnectionsActive.load());
  s.set_identity_enabled(svids_ != nullptr);
  if (svids_) {
    if (auto next = svids_->nextRotation()) {
      s.set_svid_next_rotation_unix(
          std::chrono::duration_cast<std::chrono::seconds>(next->time_since_epoch()).count());
    }
  }
  if (reconciler_) {
    auto t = reconciler_->totals();
    s.set_drift_detected(t.detected);
    s.set_drift_repaired(t.repaired);
    s.set_drift_repair_failed(t.repairFailed);
  }
  for (const auto& [reason, n] : metrics_.connectionsByReason("deny")) {
    (*s.mutable_connections_denied())[reason] = n;
  }
  for (auto& line : log::recentProblems()) s.add_last_errors(std::move(line));
  return s;
}

std::vector<admin::CertInfo> Agent::certs() const {
  std::vector<admin::CertInfo> out;
  if (!svids_) return out;
  auto toUnix = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  for (const auto& [sa, svid] : svids_->issued()) {
    admin::CertInfo c;
    c.set_service_account(sa);
    if (svid) {
      c.set_spiffe_id(svid->spiffeId);
      if (auto serial = identity::serialHex(svid->certPem)) c.set_serial(*serial);
      c.set_not_before_unix(toUnix(svid->notBefore));
      c.set_not_after_unix(toUnix(svid->notAfter));
      c.set_rotate_at_unix(toUnix(svid->rotateAt()));
    }
    out.push_back(std::move(c));
  }
  return out;
}

size_t Agent::nodeConnectionLimit() const {
  size_t want = options_.maxConnectionsPerNode;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return want;
  // Two descriptors per proxied connection, and room for the per-pod ones (fd_limit.h).
  size_t reserve = std::min<size_t>(static_cast<size_t>(lim.rlim_cur) / 2, 4096);
  size_t fits = (static_cast<size_t>(lim.rlim_cur) - reserve) / 2;
  if (fits >= want) return want;
  fits = std::max<size_t>(fits, 1);
  log::warn(kLog, "{} {} does not fit the open files limit {}: using {}",
            flags::kMaxConnectionsPerNode, want, lim.rlim_cur, fits);
  return fits;
}

int Agent::run() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  // Block before any thread starts so that only sigwait() below sees them.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  if (auto lim = raiseFdLimitToHard(); !lim) {
    log::warn(kLog, "open files limit not raised: {}", lim.error().str());
  } else if (lim->first != lim->second) {
    log::info(kLog, "open files limit raised from {} to {} (the hard limit)", lim->first,
              lim->second);
  }
  if (auto st = start(); !st) {
    log::error(kLog, "start: {}", st.error().str());
    stop();
    return 1;
  }
  // A handoff ends this agent like a signal does, once it has drained.
  const timespec tick{0, 200 * 1000 * 1000};
  int sig = -1;
  while (!retired() && (sig = sigtimedwait(&set, nullptr, &tick)) < 0) {
  }
  if (sig > 0) {
    log::info(kLog, "signal {}: stopping (rules stay in place)", sig);
  } else {
    log::info(kLog, "handed over to a new agent and drained: exiting");
  }
  stop();
  return 0;
}

std::string Agent::handoffPath() const {
  return (std::filesystem::path(options_.runDir) / "handoff.sock").string();
}

Result<int> Agent::nodeSocket(proxy::SocketTransport transport, const std::string& local,
                              const std::function<Result<int>()>& make) {
  return sockets_.obtain(proxy::SocketKey{"node", transport, local}, make);
}

Status Agent::startHandoff() {
  if (takeover_) {
    if (auto st = takeover_->commit(); !st) return st;
    size_t taken = takeover_->socketCount();
    takeover_.reset();
    auto unclaimed = sockets_.dropUnclaimed();
    for (const auto& k : unclaimed) {
      log::info(kLog, "handoff: inherited socket {} not used here (pod gone or port changed)",
                k.str());
    }
    log::info(kLog, "handoff: took over {} listening sockets ({} not used); the previous agent "
              "drains and exits", taken - unclaimed.size(), unclaimed.size());
  }
  HandoffServer::Hooks hooks;
  hooks.pause = [this] { pauseForHandoff(); };
  hooks.resume = [this] { resumeAfterHandoff(); };
  hooks.stopAccepting = [this] { stopAccepting(); };
  hooks.retire = [this] { retire(); };
  handoffServer_ = std::make_unique<HandoffServer>(handoffPath(), sockets_, handoffCounters_,
                                                   std::move(hooks));
  if (auto st = handoffServer_->start(); !st) {
    // Not fatal: this agent serves; the next upgrade cannot hand over and will fail to start
    // while this one holds the ports (it keeps serving).
    log::error(kLog, "{}: listener handoff to a future agent is not possible", st.error().str());
    handoffServer_.reset();
  }
  return {};
}

void Agent::pauseForHandoff() {
  // The pods must not change while their sockets are handed over: enrollment requests wait in
  // cni.sock's backlog (the new agent serves them), the reconciler does not re-create sockets.
  if (enroll_) enroll_->pause();
  if (reconciler_) reconciler_->stop();
}

void Agent::resumeAfterHandoff() {
  if (stopping_) return;
  if (enroll_) enroll_->resume();
  if (reconciler_) reconciler_->start();
}

void Agent::stopAccepting() {
  log::info(kLog, "handoff: the new agent accepts; closing this agent's copies of the listeners");
  if (watcher_) watcher_->stop();
  if (kubeSource_) kubeSource_->stop();
  if (kubeInstaller_) kubeInstaller_->stop();  // the new agent applies configs from now on
  if (enroll_) enroll_->stop();
  // The new agent answers tollgatectl from here on (same listening socket).
  if (admin_) admin_->stop();
  // Sessions stay; the listening sockets live on in the new agent.
  if (pods_) pods_->shutdown(false);
  if (metricsServer_) metricsServer_->close();
  if (healthServer_) healthServer_->close();
  // The listeners close on their strands: wait until none is open here any more, so that once
  // the new agent's start() returns, it is the only one accepting.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  size_t open = 0;
  while ((open = sockets_.pruneClosed()) > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (open > 0) log::warn(kLog, "handoff: {} sockets still open here after 2 s", open);
}

void Agent::retire() {
  log::info(kLog, "handoff: draining open connections for up to {} ms",
            options_.drainTime.count());
  auto t0 = std::chrono::steady_clock::now();
  int64_t open = pods_ ? pods_->activeConnections() : 0;
  while (!stopping_ && pods_ && pods_->activeConnections() > 0 &&
         std::chrono::steady_clock::now() - t0 < options_.drainTime) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int64_t left = pods_ ? pods_->activeConnections() : 0;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0).count();
  handoffCounters_.drained += static_cast<uint64_t>(std::max<int64_t>(0, open - left));
  handoffCounters_.cut += static_cast<uint64_t>(std::max<int64_t>(0, left));
  log::info(kLog, "handoff: drained {} connections in {} ms; {} still open are closed",
            std::max<int64_t>(0, open - left), ms, std::max<int64_t>(0, left));
  {
    std::lock_guard lock(retireMu_);
    retired_ = true;
  }
  retireCv_.notify_all();
}

bool Agent::retired() const {
  std::lock_guard lock(retireMu_);
  return retired_;
}

bool Agent::waitRetired(std::chrono::milliseconds timeout) {
  std::unique_lock lock(retireMu_);
  return retireCv_.wait_for(lock, timeout, [this] { return retired_; });
}

}  // namespace tollgate::agent
