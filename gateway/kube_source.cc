#include "gateway/kube_source.h"

#include "common/log.h"
#include "gateway/gateway_metrics.h"
#include "gateway/reloader.h"
#include "kube/client_config.h"
#include "kube/source_metrics.h"

namespace tollgate::gateway {
namespace {
constexpr std::string_view kLog = "gateway";
}  // namespace

Result<std::unique_ptr<KubeSource>> KubeSource::create(GatewayInputs& in) {
  auto cfg = in.options.kubeconfig.empty() ? kube::inClusterConfigFromEnvironment()
                                           : kube::loadKubeconfig(in.options.kubeconfig);
  if (!cfg) return std::unexpected(cfg.error().wrap("kubernetes config source"));
  auto client = kube::ApiClient::create(*cfg);
  if (!client) return std::unexpected(client.error().wrap("kubernetes config source"));
  return std::unique_ptr<KubeSource>(new KubeSource(in, *client, "kubernetes (" + cfg->source + ")"));
}

KubeSource::KubeSource(GatewayInputs& in, std::shared_ptr<kube::ApiClient> client, std::string name)
    : in_(in), name_(std::move(name)) {
  // The source calls back on a strand of io_: the compile runs on this thread, never on the
  // acceptor's or a tunnel's.
  source_ = std::make_unique<kube::KubeConfigSource>(
      io_.get_executor(), std::move(client), kube::KubeConfigSource::gatewayResources(),
      [this](std::shared_ptr<const policy::Config> config,
             const std::vector<policy::Diagnostic>& /*warnings: logged by the source*/) {
        install(*config);
      });
}

KubeSource::~KubeSource() { stop(); }

void KubeSource::start() {
  source_->start();
  if (!thread_.joinable()) {
    thread_ = std::thread([this] {
      for (;;) {
        try {
          io_.run();
          return;
        } catch (const std::exception& e) {
          log::error(kLog, "kubernetes source: uncaught: {}", e.what());
        }
      }
    });
  }
}

void KubeSource::stop() {
  source_->stop();
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void KubeSource::install(const policy::Config& config) {
  auto st = compileGatewayState(config, name_, in_.options.ns, in_.labels);
  if (!st) {
    in_.metrics.reloadsFailed++;
    log::error(kLog, "config from {} rejected, keeping the previous one: {}", name_,
               st.error().str());
    return;
  }
  uint64_t generation = (*st)->snapshot->generation();
  size_t authz = (*st)->snapshot->config().authorizationPolicies.size();
  installGatewayState(in_, std::move(*st));
  in_.metrics.reloadsOk++;
  log::info(kLog, "config from {} installed (generation {}, {} AuthorizationPolicies){}", name_,
            generation, authz, installed_ ? "" : ": first complete list");
  installed_ = true;
}

std::string KubeSource::notReadyReason() const {
  // The source is ready once it handed a config on; one that loads but does not compile leaves
  // no state installed.
  std::string why = kube::notReadyReason(source_->status());
  if (why.empty() && in_.state.load() == nullptr) {
    why = "the config from the kubernetes API does not compile";
  }
  return why;
}

std::string KubeSource::metrics() const { return kube::renderSourceMetrics(source_->status()); }

}  // namespace tollgate::gateway
