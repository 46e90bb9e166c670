#include "policy/authorization.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

namespace tollgate::policy {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equal(std::string_view a, std::string_view b, bool caseInsensitive) {
  if (a.size() != b.size()) return false;
  if (!caseInsensitive) return a == b;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool anyMatches(const std::vector<std::string>& patterns, std::string_view value,
                bool caseInsensitive) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return matchesValue(p, value, caseInsensitive); });
}

// A positive list must contain a match; a negative list must not. Absent lists impose nothing.
bool fieldMatches(const std::vector<std::string>& values, const std::vector<std::string>& notValues,
                  std::string_view value, bool caseInsensitive = false) {
  if (!values.empty() && !anyMatches(values, value, caseInsensitive)) return false;
  if (!notValues.empty() && anyMatches(notValues, value, caseInsensitive)) return false;
  return true;
}

// Ports are written as strings ("443"); compare numerically when the pattern is a number so that
// "0443" cannot silently fail to match, and fall back to the string forms otherwise.
bool portMatches(std::string_view pattern, uint16_t port) {
  uint32_t n = 0;
  auto [end, ec] = std::from_chars(pattern.data(), pattern.data() + pattern.size(), n);
  if (ec == std::errc() && end == pattern.data() + pattern.size()) return n == port;
  return matchesValue(pattern, std::to_string(port));
}

bool portField(const std::vector<std::string>& ports, const std::vector<std::string>& notPorts,
               uint16_t port) {
  auto any = [&](const std::vector<std::string>& list) {
    return std::any_of(list.begin(), list.end(),
                       [&](const std::string& p) { return portMatches(p, port); });
  };
  if (!ports.empty() && !any(ports)) return false;
  if (!notPorts.empty() && any(notPorts)) return false;
  return true;
}

bool selectorMatches(const std::optional<Labels>& selector, const Labels& labels) {
  if (!selector) return true;
  for (const auto& [k, v] : *selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

bool matchesValue(std::string_view pattern, std::string_view value, bool caseInsensitive) {
  // Istio's "*" is a presence match: it never matches an absent (empty) value, which is what
  // keeps `principals: ["*"]` from admitting unauthenticated peers.
  if (pattern == "*") return !value.empty();
  if (pattern.size() > 1 && pattern.back() == '*') {
    auto prefix = pattern.substr(0, pattern.size() - 1);
    return value.size() >= prefix.size() &&
           equal(value.substr(0, prefix.size()), prefix, caseInsensitive);
  }
  if (pattern.size() > 1 && pattern.front() == '*') {
    auto suffix = pattern.substr(1);
    return value.size() >= suffix.size() &&
           equal(value.substr(value.size() - suffix.size()), suffix, caseInsensitive);
  }
  return equal(pattern, value, caseInsensitive);
}

bool matchesRule(const AuthorizationRule& rule, const AuthorizationRequest& request) {
  return fieldMatches(rule.principals, rule.notPrincipals, request.principal) &&
         fieldMatches(rule.namespaces, rule.notNamespaces, request.sourceNamespace) &&
         fieldMatches(rule.hosts, rule.notHosts, request.host, /*caseInsensitive=*/true) &&
         portField(rule.ports, rule.notPorts, request.port);
}

Authorizer::Authorizer(const std::vector<AuthorizationPolicy>& policies, GatewayWorkload gateway)
    : gateway_(std::move(gateway)) {
  for (const auto& p : policies) {
    bool inScope = p.meta.ns == gateway_.rootNamespace || p.meta.ns == gateway_.ns;
    if (!inScope || !selectorMatches(p.selector, gateway_.labels)) continue;
    Applied a{"AuthorizationPolicy/" + p.meta.ns + "/" + p.meta.name, p.rules};
    (p.action == AuthorizationPolicy::Action::Deny ? deny_ : allow_).push_back(std::move(a));
  }
}

bool Authorizer::matches(const Applied& policy, const AuthorizationRequest& request) {
  return std::any_of(policy.rules.begin(), policy.rules.end(),
                     [&](const AuthorizationRule& r) { return matchesRule(r, request); });
}

AuthorizationResult Authorizer::authorize(const AuthorizationRequest& request) const {
  for (const auto& p : deny_) {
    if (matches(p, request)) return {false, p.ref, "authz"};
  }
  if (allow_.empty()) return {true, "-", "authz"};
  for (const auto& p : allow_) {
    if (matches(p, request)) return {true, p.ref, "authz"};
  }
  return {false, "-", "authz"};
}

}  // namespace tollgate::policy
