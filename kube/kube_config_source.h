#pragma once

#include <utility>  // before <boost/asio/awaitable.hpp> with Boost 1.74

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kube/api_client.h"
#include "kube/reflector.h"
#include "policy/config_loader.h"
#include "policy/model.h"

namespace tollgate::kube {

struct KubeSourceStatus {
  bool ready = false;      // every resource listed once and one config loaded (/healthz/ready)
  bool connected = false;  // every reflector's last request was answered
  uint64_t relists = 0, gone = 0, errors = 0, events = 0;  // summed over the reflectors
  uint64_t loads = 0;        // configs loaded and handed on
  uint64_t loadFailures = 0; // rebuilds refused by the loader (the last good config stays)
  std::chrono::system_clock::time_point lastSync{};  // last config handed on
  std::string lastError;     // the last load failure's first diagnostic, or a reflector's error
  std::vector<std::pair<std::string, ReflectorStatus>> resources;
};

// The `kubernetes` config source: one Reflector per resource type; once every one has its first
// complete list, and after every change, the objects (JSON documents, which are YAML) go through
// policy::ConfigLoader::loadString exactly like the files source's, and a config that loads is
// handed to onConfig. A config that does not load is logged (each diagnostic names the object
// Kind/ns/name) and counted, and the last good one stays. Changes that arrive while a load runs
// are coalesced into one more load.
class KubeConfigSource {
 public:
  using OnConfig = std::function<void(std::shared_ptr<const policy::Config>,
                                      const std::vector<policy::Diagnostic>& warnings)>;

  KubeConfigSource(asio::any_io_executor ex, std::shared_ptr<ApiClient> client,
                   std::vector<ResourceType> resources, OnConfig onConfig,
                   ReflectorOptions base = {});
  ~KubeConfigSource();
  KubeConfigSource(const KubeConfigSource&) = delete;
  KubeConfigSource& operator=(const KubeConfigSource&) = delete;

  void start();
  void stop();
  KubeSourceStatus status() const;
  std::shared_ptr<const policy::Config> current() const;

  // What the agent reads: its node's Pods, Namespaces, ServiceEntry, DestinationRule, Sidecar,
  // NetworkPolicy, TollgateConfig.
  static std::vector<ResourceType> agentResources(const std::string& nodeName);
  // What the gateway reads: TollgateConfig (trust domain, DNS, cluster CIDRs), ServiceEntry,
  // DestinationRule, Sidecar (its registry re-check applies a namespace's outbound mode and egress
  // hosts, as the node did) and AuthorizationPolicy. No Pods or Namespaces: its own labels come
  // from --label, and NetworkPolicy, the only reader of namespace labels, is the node's to enforce.
  static std::vector<ResourceType> gatewayResources();

  // The documents of the stores, one JSON object per line between `---`, and for each document
  // its "Kind/ns/name" (index = line / 2). Pure; public for tests.
  struct Documents {
    std::string text;
    std::vector<std::string> objects;
  };
  static Documents render(const std::vector<std::shared_ptr<const Reflector::Store>>& stores);
  // The loader's diagnostics, named by object instead of line of the rendered text.
  static void nameDiagnostics(std::vector<policy::Diagnostic>& diags, const Documents& docs);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace tollgate::kube
