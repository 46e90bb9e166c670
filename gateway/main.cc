// tollgate-gateway: the egress gateway (DESIGN.md "Tunnels and identity").
#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <thread>

#include "common/fd_limit.h"
#include "common/log.h"
#include "gateway/gateway_metrics.h"
#include "gateway/gateway_server.h"
#include "gateway/kube_source.h"
#include "gateway/options.h"
#include "gateway/reloader.h"
#include "proxy/access_log.h"
#include "proxy/resolver.h"
#include "proxy/status_server.h"

namespace tollgate::gateway {
namespace {

int run(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  auto opts = parseOptions(args);
  if (!opts) {
    fmt::print(stderr, "tollgate-gateway: {}\n{}", opts.error().str(), usage());
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Every tunnel and every upstream connection is a descriptor: as the agent does, use the limit
  // the node allows rather than the runtime's soft default.
  if (auto lim = raiseFdLimitToHard(); !lim) {
    log::warn("gateway", "open files limit not raised: {}", lim.error().str());
  } else if (lim->first != lim->second) {
    log::info("gateway", "open files limit raised from {} to {} (the hard limit)", lim->first,
              lim->second);
  }

  // Data-plane threads, each with its own io_context: a connection and all its streams stay on
  // one thread (nghttp2 sessions are single-threaded); the main context accepts, reloads and
  // serves metrics. They are declared first so they are destroyed last: the resolver's pool
  // resumes lookups on them, and an accept pending on the main context holds one of their
  // sockets.
  unsigned nThreads = opts->threads;
  if (nThreads == 0) nThreads = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
  std::vector<std::unique_ptr<proxy::asio::io_context>> workers;
  std::vector<proxy::asio::io_context*> workerPtrs;
  using WorkGuard = proxy::asio::executor_work_guard<proxy::asio::io_context::executor_type>;
  std::vector<WorkGuard> guards;
  for (unsigned i = 0; i < nThreads; ++i) {
    workers.push_back(std::make_unique<proxy::asio::io_context>(1));
    workerPtrs.push_back(workers.back().get());
    guards.emplace_back(workers.back()->get_executor());
  }
  proxy::asio::io_context io(1);
  StateHolder state;
  GatewayMetrics metrics;
  proxy::AccessLog accessLog;
  if (auto st = accessLog.open(opts->accessLogPath, opts->logFormat); !st) {
    log::error("gateway", "{}", st.error().str());
    return 1;
  }
  proxy::Resolver resolver(io);
  GatewayInputs in{io, *opts, state, metrics, accessLog, resolver, opts->labels};
  GatewayServer server(in);
  server.setWorkers(workerPtrs);
  Reloader reloader(in, server);
  // Files: the first config must load. Kubernetes: tunnels are refused (503 no_config) and
  // /healthz/ready says why until the first complete list is installed.
  if (auto st = reloader.loadInitial(); !st) {
    log::error("gateway", "{}", st.error().str());
    return 1;
  }
  std::unique_ptr<KubeSource> kube;
  std::string sourceName = "files " + opts->configDir;
  if (opts->configSource == "kubernetes") {
    auto k = KubeSource::create(in);
    if (!k) {
      log::error("gateway", "{}", k.error().str());
      return 1;
    }
    kube = std::move(*k);
    sourceName = kube->name();
  }
  if (auto st = server.listen(opts->listenIp, opts->listenPort); !st) {
    log::error("gateway", "{}", st.error().str());
    return 1;
  }
  reloader.start();
  if (kube) kube->start();

  auto ready = [&]() -> proxy::StatusServer::Response {
    proxy::StatusServer::Response r;
    r.contentType = "text/plain";
    std::string why = server.draining()          ? "draining"
                      : kube                     ? kube->notReadyReason()
                      : state.load() == nullptr  ? "no valid config loaded"
                                                 : "";
    r.status = why.empty() ? 200 : 503;
    r.body = why.empty() ? "ready\n" : "not ready: " + why + "\n";
    return r;
  };
  proxy::StatusServer metricsServer(io);
  metricsServer.route("/metrics", [&] {
    proxy::StatusServer::Response r;
    r.body = metrics.render();
    if (kube) r.body += kube->metrics();
    return r;
  });
  // Liveness: the status io thread answers (not readiness: waiting for the API server or
  // draining is not a reason to be restarted).
  auto live = [] { return proxy::StatusServer::Response{200, "text/plain", "alive\n"}; };
  metricsServer.route("/healthz/ready", ready);
  metricsServer.route("/healthz/live", live);
  std::optional<proxy::StatusServer> healthServer;
  if (auto st = metricsServer.listen(opts->statusIp, opts->metricsPort); !st) {
    log::error("gateway", "{}", st.error().str());
    return 1;
  }
  if (opts->healthPort != opts->metricsPort) {
    healthServer.emplace(io);
    healthServer->route("/healthz/ready", ready);
    healthServer->route("/healthz/live", live);
    if (auto st = healthServer->listen(opts->statusIp, opts->healthPort); !st) {
      log::error("gateway", "{}", st.error().str());
      return 1;
    }
  }
  log::info("gateway", "listening on {}:{} (metrics :{}, health :{}), config source {}",
            opts->listenIp, server.port(), metricsServer.port(),
            healthServer ? healthServer->port() : 0, sourceName);

  // SIGTERM: stop accepting, GOAWAY, let tunnels drain up to --drain-seconds, exit 0.
  proxy::asio::signal_set signals(io, SIGTERM, SIGINT);
  proxy::asio::steady_timer drainTimer(io);
  std::chrono::steady_clock::time_point drainDeadline;
  std::function<void()> pollDrain = [&] {
    if (metrics.tlsConnectionsActive.load() <= 0 ||
        std::chrono::steady_clock::now() >= drainDeadline) {
      log::info("gateway", "drained ({} connections left), exiting",
                metrics.tlsConnectionsActive.load());
      io.stop();
      return;
    }
    drainTimer.expires_after(std::chrono::milliseconds(100));
    drainTimer.async_wait([&](boost::system::error_code ec) {
      if (!ec) pollDrain();
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    drainDeadline = std::chrono::steady_clock::now() + opts->drain;
    server.startDrain();
    reloader.stop();
    if (kube) kube->stop();  // the last state stays installed for the draining tunnels
    log::info("gateway", "signal {}: stopped accepting, draining for up to {}s", sig,
              opts->drain.count());
    pollDrain();
  });
  auto runLoop = [](proxy::asio::io_context& ctx) {
    for (;;) {
      try {
        ctx.run();
        return;
      } catch (const std::exception& e) {
        // A handler threw past every session boundary: log it and keep serving.
        log::error("gateway", "uncaught: {}", e.what());
      }
    }
  };
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&runLoop, ctx = w.get()] { runLoop(*ctx); });
  runLoop(io);
  // Drained (or out of time): stop the data plane.
  guards.clear();
  for (auto& w : workers) w->stop();
  for (auto& t : threads) t.join();
  return 0;
}

}  // namespace
}  // namespace tollgate::gateway

int main(int argc, char** argv) { return tollgate::gateway::run(argc, argv); }
