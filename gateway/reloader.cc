#include "gateway/reloader.h"

#include <fmt/format.h>

#include <filesystem>

#include "common/log.h"
#include "gateway/gateway_metrics.h"
#include "gateway/gateway_server.h"
#include "policy/config_loader.h"
#include "proxy/resolver.h"

namespace tollgate::gateway {
namespace {

constexpr std::string_view kLog = "gateway";
namespace fs = std::filesystem;

void addFile(Reloader::Fingerprint& fp, const fs::path& p) {
  std::error_code ec;
  auto status = fs::status(p, ec);  // follows symlinks (ConfigMap/Secret ..data swaps)
  if (ec || !fs::is_regular_file(status)) return;
  auto mtime = fs::last_write_time(p, ec);
  auto size = fs::file_size(p, ec);
  if (ec) return;
  fp[p.string()] = {static_cast<int64_t>(mtime.time_since_epoch().count()),
                    static_cast<int64_t>(size)};
}

}  // namespace

Reloader::Fingerprint Reloader::scan(const std::string& path) {
  Fingerprint fp;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    addFile(fp, path);
    return fp;
  }
  for (fs::recursive_directory_iterator
           it(path, fs::directory_options::follow_directory_symlink, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    addFile(fp, it->path());
  }
  return fp;
}

Result<GatewayStatePtr> compileGatewayState(policy::Config config, const std::string& from,
                                            const std::string& ns, const policy::Labels& labels) {
  // NetworkPolicy is the node proxy's to enforce: it knows the pod's labels and address, the
  // gateway only the workload identity. Evaluated here with neither, a policy selecting every
  // pod of a namespace would refuse flows the node correctly allowed.
  config.networkPolicies.clear();
  auto snap = policy::Snapshot::compile(std::move(config));
  if (!snap) return std::unexpected(snap.error().wrap("config " + from));
  return makeGatewayState(std::move(*snap), ns, labels);
}

Result<GatewayStatePtr> loadGatewayState(const std::string& dir, const std::string& ns,
                                         const policy::Labels& labels) {
  auto loaded = policy::ConfigLoader::loadPath(dir);
  if (!loaded) {
    std::string msg = fmt::format("config {}:", dir);
    for (const auto& d : loaded.error()) msg += "\n  " + d.str();
    return fail(msg);
  }
  for (const auto& w : loaded->warnings) log::warn(kLog, "config: {}", w.str());
  return compileGatewayState(std::move(loaded->config), dir, ns, labels);
}

void installGatewayState(GatewayInputs& in, GatewayStatePtr state) {
  in.resolver.setUpstreams(state->snapshot->mesh().dnsUpstreams);
  in.state.store(std::move(state));
}

Status Reloader::reloadConfig() {
  auto st = loadGatewayState(in_.options.configDir, in_.options.ns, in_.labels);
  if (!st) return std::unexpected(st.error());
  installGatewayState(in_, std::move(*st));
  return {};
}

Status Reloader::reloadCertificates() {
  auto ctx =
      makeServerContext(in_.options.certFile, in_.options.keyFile, in_.options.trustBundleFile);
  if (!ctx) return std::unexpected(ctx.error());
  server_.setServerContext(std::move(*ctx));
  return {};
}

Status Reloader::loadInitial() {
  certs_ = scan(in_.options.certFile);
  certs_.merge(scan(in_.options.keyFile));
  certs_.merge(scan(in_.options.trustBundleFile));
  if (pollsConfig()) {
    config_ = scan(in_.options.configDir);
    if (auto st = reloadConfig(); !st) return st;
  }
  return reloadCertificates();
}

void Reloader::start() {
  stopped_ = false;
  schedule();
}

void Reloader::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Reloader::schedule() {
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    pollOnce();
    schedule();
  });
}

void Reloader::pollOnce() {
  if (!pollsConfig()) {
    // The kubernetes source installs configs itself (gateway/kube_source.h).
  } else if (auto config = scan(in_.options.configDir); config != config_) {
    config_ = std::move(config);
    if (auto st = reloadConfig(); st) {
      in_.metrics.reloadsOk++;
      log::info(kLog, "config reloaded (generation {})", in_.state.load()->snapshot->generation());
    } else {
      in_.metrics.reloadsFailed++;
      log::error(kLog, "config reload rejected, keeping the previous one: {}", st.error().str());
    }
  }
  auto certs = scan(in_.options.certFile);
  certs.merge(scan(in_.options.keyFile));
  certs.merge(scan(in_.options.trustBundleFile));
  if (certs != certs_) {
    certs_ = std::move(certs);
    if (auto st = reloadCertificates(); st) {
      log::info(kLog, "certificates reloaded");
    } else {
      // A half-written rotation is retried on the next change; the old context stays.
      log::error(kLog, "certificate reload failed, keeping the previous one: {}", st.error().str());
    }
  }
}

}  // namespace tollgate::gateway
