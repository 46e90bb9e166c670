#include "kube/resource.h"

#include <fmt/format.h>

namespace tollgate::kube {

std::string ResourceType::collectionPath() const {
  if (group.empty()) return fmt::format("/api/{}/{}", version, plural);
  return fmt::format("/apis/{}/{}/{}", group, version, plural);
}

ResourceType serviceEntries() { return {"networking.istio.io", "v1", "serviceentries", "ServiceEntry"}; }
ResourceType destinationRules() {
  return {"networking.istio.io", "v1", "destinationrules", "DestinationRule"};
}
ResourceType sidecars() { return {"networking.istio.io", "v1", "sidecars", "Sidecar"}; }
ResourceType authorizationPolicies() {
  return {"security.istio.io", "v1", "authorizationpolicies", "AuthorizationPolicy"};
}
ResourceType networkPolicies() { return {"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"}; }
ResourceType namespaces() { return {"", "v1", "namespaces", "Namespace"}; }
ResourceType pods(std::string fieldSelector, std::string labelSelector) {
  return {"", "v1", "pods", "Pod", std::move(labelSelector), std::move(fieldSelector)};
}
ResourceType tollgateConfigs() { return {"tollgate.io", "v1alpha1", "tollgateconfigs", "TollgateConfig"}; }

std::string urlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace tollgate::kube
