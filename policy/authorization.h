#pragma once

// Istio AuthorizationPolicy evaluation for the egress gateway: who (the tunnel peer's identity)
// may reach what (host and port). Pure: no I/O, no clock, immutable after construction, so one
// Authorizer can be shared by every gateway thread inside a snapshot.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/model.h"

namespace tollgate::policy {

// Istio's root namespace: policies there apply mesh-wide.
inline constexpr std::string_view kIstioRootNamespace = "istio-system";

// The gateway whose policies are evaluated: a policy applies when it lives in the root namespace
// or in the gateway's namespace, and its selector (if any) matches the gateway's labels.
struct GatewayWorkload {
  std::string ns;
  Labels labels;
  std::string rootNamespace = std::string(kIstioRootNamespace);
};

// One request through the gateway.
struct AuthorizationRequest {
  // Istio's principal form: the SPIFFE id without "spiffe://" ("cluster.local/ns/default/sa/x").
  // Empty: unauthenticated (then only rules without principal/namespace conditions can match).
  std::string principal;
  std::string sourceNamespace;
  std::string host;  // normalised name (lower case, no port, no trailing dot)
  uint16_t port = 0;
};

struct AuthorizationResult {
  bool allowed = false;
  std::string policy = "-";      // "AuthorizationPolicy/<ns>/<name>" that decided, or "-"
  std::string reason = "authz";  // stable reason code for logs and metrics
};

// Istio matcher forms used by every string field: "*" (any non-empty value), "abc*" (prefix),
// "*abc" (suffix), otherwise exact. `caseInsensitive` is for hosts.
bool matchesValue(std::string_view pattern, std::string_view value, bool caseInsensitive = false);

// True when every field present in `rule` matches `request`. An empty rule matches everything.
bool matchesRule(const AuthorizationRule& rule, const AuthorizationRequest& request);

class Authorizer {
 public:
  // Keeps only the policies that apply to `gateway`. CUSTOM/AUDIT never reach here: the loader
  // rejects them.
  Authorizer(const std::vector<AuthorizationPolicy>& policies, GatewayWorkload gateway);

  // Istio order: any matching DENY policy denies; else no ALLOW policy allows; else any matching
  // ALLOW policy allows; else deny. A policy without rules matches nothing (so an ALLOW policy
  // without rules denies everything by existing).
  AuthorizationResult authorize(const AuthorizationRequest& request) const;

  size_t denyPolicies() const { return deny_.size(); }
  size_t allowPolicies() const { return allow_.size(); }

 private:
  struct Applied {
    std::string ref;
    std::vector<AuthorizationRule> rules;
  };
  static bool matches(const Applied& policy, const AuthorizationRequest& request);

  GatewayWorkload gateway_;
  std::vector<Applied> deny_;
  std::vector<Applied> allow_;
};

}  // namespace tollgate::policy
