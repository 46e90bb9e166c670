#pragma once

#include <string>

namespace tollgate::kube {

// One kind of object the API serves, and how it is listed: all namespaces, optional selectors.
struct ResourceType {
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string plural;   // "serviceentries"
  std::string kind;     // "ServiceEntry": list items lack kind/apiVersion, the reflector adds them
  std::string labelSelector;
  std::string fieldSelector;  // "spec.nodeName=node-1"

  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
  // "/api/v1/pods" or "/apis/networking.istio.io/v1/serviceentries"
  std::string collectionPath() const;
  std::string name() const { return group.empty() ? plural : plural + "." + group; }
};

// The kinds the config loader reads, at the versions the lab's CRDs and Kubernetes serve.
ResourceType serviceEntries();
ResourceType destinationRules();
ResourceType sidecars();
ResourceType authorizationPolicies();
ResourceType networkPolicies();
ResourceType namespaces();
ResourceType pods(std::string fieldSelector = "", std::string labelSelector = "");
ResourceType tollgateConfigs();

// Percent-encodes a query value (RFC 3986 unreserved characters stay).
std::string urlEncode(const std::string& s);

}  // namespace tollgate::kube
