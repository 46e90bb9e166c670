#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/decision.h"
#include "policy/ip.h"
#include "policy/model.h"

namespace tollgate::policy {

// Kubernetes NetworkPolicy egress semantics, compiled from a Config's NetworkPolicies, Pods and
// Namespaces. A pod is "isolated for egress" when at least one policy with Egress in its
// policyTypes selects it; then an egress flow is allowed only if some rule of some selecting
// policy allows it (union). Non-isolated pods are allowed everything.
class NetworkPolicyIndex {
 public:
  struct Result {
    bool isolated = false;  // some policy selects the source pod for egress
    bool allowed = true;    // !isolated, or a rule allowed the flow
    // The policy whose rule allowed the flow, or (denied) the first policy that selected the pod.
    const NetworkPolicy* decidedBy = nullptr;
  };

  // `config` must outlive the index (Snapshot owns both).
  explicit NetworkPolicyIndex(const Config& config);

  // dstIp is matched against known pods (podSelector/namespaceSelector peers and named ports)
  // and against ipBlock peers.
  Result evaluate(const PodIdentity& source, const IpAddress& dstIp, uint16_t dstPort,
                  L4Protocol protocol) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace tollgate::policy
