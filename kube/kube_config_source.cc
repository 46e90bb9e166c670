#include "kube/kube_config_source.h"

#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include "common/log.h"

namespace tollgate::kube {

struct KubeConfigSource::State : std::enable_shared_from_this<State> {
  asio::strand<asio::any_io_executor> strand;
  OnConfig onConfig;
  std::vector<std::shared_ptr<Reflector>> reflectors;
  std::vector<std::shared_ptr<const Reflector::Store>> stores;  // on the strand
  bool loadPosted = false;                                       // on the strand
  bool stopped = false;                                          // on the strand

  mutable std::mutex mu;
  std::shared_ptr<const policy::Config> current;
  uint64_t loads = 0, loadFailures = 0;
  std::chrono::system_clock::time_point lastSync{};
  std::string lastLoadError;

  explicit State(asio::any_io_executor ex) : strand(asio::make_strand(ex)) {}

  void changed(size_t i, std::shared_ptr<const Reflector::Store> store) {
    asio::post(strand, [self = shared_from_this(), i, store = std::move(store)]() mutable {
      self->stores[i] = std::move(store);
      if (self->loadPosted || self->stopped) return;
      self->loadPosted = true;
      asio::post(self->strand, [self] { self->load(); });
    });
  }

  void load() {
    loadPosted = false;
    if (stopped) return;
    for (const auto& s : stores) {
      if (!s) return;  // not every resource listed yet
    }
    auto docs = render(stores);
    auto result = policy::ConfigLoader::loadString(docs.text, "kubernetes");
    if (!result) {
      auto diags = std::move(result.error());
      nameDiagnostics(diags, docs);
      for (const auto& d : diags) log::error("kube", "config from the API refused: {}", d.str());
      std::lock_guard lock(mu);
      loadFailures++;
      lastLoadError = diags.empty() ? "load failed" : diags.front().str();
      return;
    }
    nameDiagnostics(result->warnings, docs);
    for (const auto& w : result->warnings) log::warn("kube", "{}", w.str());
    auto config = std::make_shared<const policy::Config>(std::move(result->config));
    {
      std::lock_guard lock(mu);
      current = config;
      loads++;
      lastSync = std::chrono::system_clock::now();
    }
    log::info("kube", "config from the API loaded: {} objects", docs.objects.size());
    if (onConfig) onConfig(config, result->warnings);
  }
};

KubeConfigSource::KubeConfigSource(asio::any_io_executor ex, std::shared_ptr<ApiClient> client,
                                   std::vector<ResourceType> resources, OnConfig onConfig,
                                   ReflectorOptions base)
    : state_(std::make_shared<State>(ex)) {
  state_->onConfig = std::move(onConfig);
  state_->stores.resize(resources.size());
  for (size_t i = 0; i < resources.size(); ++i) {
    ReflectorOptions o = base;
    o.type = resources[i];
    std::weak_ptr<State> weak = state_;
    state_->reflectors.push_back(Reflector::create(ex, client, o, [weak, i](const Reflector::Store& s) {
      if (auto st = weak.lock()) st->changed(i, std::make_shared<const Reflector::Store>(s));
    }));
  }
}

KubeConfigSource::~KubeConfigSource() { stop(); }

void KubeConfigSource::start() {
  for (auto& r : state_->reflectors) r->start();
}

void KubeConfigSource::stop() {
  for (auto& r : state_->reflectors) r->stop();
  asio::post(state_->strand, [s = state_] { s->stopped = true; });
}

std::shared_ptr<const policy::Config> KubeConfigSource::current() const {
  std::lock_guard lock(state_->mu);
  return state_->current;
}

KubeSourceStatus KubeConfigSource::status() const {
  KubeSourceStatus st;
  st.connected = true;
  bool synced = true;
  for (const auto& r : state_->reflectors) {
    auto rs = r->status();
    synced = synced && rs.synced;
    st.connected = st.connected && rs.connected;
    st.relists += rs.relists;
    st.gone += rs.gone;
    st.errors += rs.errors;
    st.events += rs.events;
    if (!rs.connected && !rs.lastError.empty()) st.lastError = rs.lastError;
    st.resources.emplace_back(r->options().type.name(), std::move(rs));
  }
  std::lock_guard lock(state_->mu);
  st.loads = state_->loads;
  st.loadFailures = state_->loadFailures;
  st.lastSync = state_->lastSync;
  st.ready = synced && state_->current != nullptr;
  if (st.lastError.empty()) st.lastError = state_->lastLoadError;
  return st;
}

std::vector<ResourceType> KubeConfigSource::agentResources(const std::string& nodeName) {
  return {tollgateConfigs(), namespaces(),       pods("spec.nodeName=" + nodeName),
          serviceEntries(),  destinationRules(), sidecars(),
          networkPolicies()};
}

std::vector<ResourceType> KubeConfigSource::gatewayResources() {
  return {tollgateConfigs(), serviceEntries(), destinationRules(), sidecars(),
          authorizationPolicies()};
}

KubeConfigSource::Documents KubeConfigSource::render(
    const std::vector<std::shared_ptr<const Reflector::Store>>& stores) {
  Documents d;
  for (const auto& s : stores) {
    if (!s) continue;
    for (const auto& [key, obj] : *s) {
      // One line per document: JSON is YAML, and the loader's line numbers name the document.
      d.text += "---\n";
      d.text += obj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      d.text += '\n';
      std::string kind = obj.contains("kind") && obj["kind"].is_string() ? obj["kind"].get<std::string>() : "?";
      d.objects.push_back(kind + "/" + key);
    }
  }
  return d;
}

void KubeConfigSource::nameDiagnostics(std::vector<policy::Diagnostic>& diags, const Documents& docs) {
  for (auto& d : diags) {
    if (d.line >= 2 && static_cast<size_t>(d.line / 2 - 1) < docs.objects.size()) {
      if (d.object.empty()) d.object = docs.objects[d.line / 2 - 1];
      d.file = "kubernetes";
      d.line = 0;
    }
  }
}

}  // namespace tollgate::kube
