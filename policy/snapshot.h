#pragma once

#include <memory>
#include <vector>

#include "common/error.h"
#include "policy/decision.h"
#include "policy/model.h"

namespace tollgate::policy {

class RegistryIndex;
class NetworkPolicyIndex;

// The compiled, immutable form of a Config. Built once per (re)load and shared as
// std::shared_ptr<const Snapshot>; connections keep the snapshot they started with.
class Snapshot {
 public:
  // Validates cross-object rules (at most one TollgateConfig, one default gateway, ...) and
  // builds every lookup structure.
  static Result<std::shared_ptr<const Snapshot>> compile(Config config);

  ~Snapshot();

  // The one decision function (DESIGN.md "Decisions"). Pure; never scans the registry.
  Decision decide(const FlowQuery& query) const;

  // Looks up a pod by namespace/name (standalone pods), nullptr when unknown.
  const Pod* findPod(std::string_view ns, std::string_view name) const;
  const Pod* findPodByIp(const IpAddress& ip) const;
  // Labels of a namespace (empty when the namespace has no Namespace object).
  const Labels& namespaceLabels(std::string_view ns) const;
  // Identity of a known pod, for building FlowQuery.source.
  std::optional<PodIdentity> identityOf(std::string_view ns, std::string_view name) const;

  const Config& config() const { return config_; }
  const TollgateConfig& mesh() const { return mesh_; }
  bool isInCluster(const IpAddress& ip) const;
  // Whether `name` (normalised) is the host of a ServiceEntry visible to `source`, exact or
  // wildcard, on any port: the DNS proxy's strict mode answers NXDOMAIN for everything else.
  bool nameVisible(const PodIdentity& source, std::string_view name) const;
  uint64_t generation() const { return generation_; }

 private:
  Snapshot() = default;
  struct Impl;
  Config config_;
  TollgateConfig mesh_;
  uint64_t generation_ = 0;
  std::unique_ptr<Impl> impl_;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace tollgate::policy
