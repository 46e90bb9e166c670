#include "policy/authorization.h"

#include <gtest/gtest.h>

namespace tollgate::policy {
namespace {

using Action = AuthorizationPolicy::Action;

AuthorizationPolicy policy(std::string ns, std::string name, Action action,
                           std::vector<AuthorizationRule> rules,
                           std::optional<Labels> selector = std::nullopt) {
  AuthorizationPolicy p;
  p.meta.kind = "AuthorizationPolicy";
  p.meta.ns = std::move(ns);
  p.meta.name = std::move(name);
  p.action = action;
  p.rules = std::move(rules);
  p.selector = std::move(selector);
  return p;
}

AuthorizationRule fromPrincipal(std::string principal) {
  AuthorizationRule r;
  r.principals = {std::move(principal)};
  return r;
}

const GatewayWorkload kGateway{"tollgate", {{"app", "tollgate-gateway"}, {"tier", "egress"}}};

AuthorizationRequest request(std::string principal = "cluster.local/ns/default/sa/client",
                             std::string host = "httpbin.test", uint16_t port = 443,
                             std::string ns = "default") {
  return {std::move(principal), std::move(ns), std::move(host), port};
}

// ---- matchers -------------------------------------------------------------------------------

TEST(AuthorizationMatcherTest, ExactPrefixSuffixAndPresence) {
  EXPECT_TRUE(matchesValue("abc", "abc"));
  EXPECT_FALSE(matchesValue("abc", "abcd"));
  EXPECT_FALSE(matchesValue("abc", "ABC"));

  EXPECT_TRUE(matchesValue("cluster.local/ns/default/*", "cluster.local/ns/default/sa/x"));
  EXPECT_FALSE(matchesValue("cluster.local/ns/default/*", "cluster.local/ns/other/sa/x"));
  EXPECT_TRUE(matchesValue("abc*", "abc"));  // empty remainder is still a prefix match

  EXPECT_TRUE(matchesValue("*/sa/client", "cluster.local/ns/default/sa/client"));
  EXPECT_FALSE(matchesValue("*/sa/client", "cluster.local/ns/default/sa/client2"));
  EXPECT_TRUE(matchesValue("*.example.com", "api.example.com"));
  EXPECT_FALSE(matchesValue("*.example.com", "example.com"));

  EXPECT_TRUE(matchesValue("*", "anything"));
  EXPECT_FALSE(matchesValue("*", ""));  // presence: an unauthenticated peer has no principal
}

TEST(AuthorizationMatcherTest, CaseInsensitiveOnlyWhenAsked) {
  EXPECT_TRUE(matchesValue("HTTPBIN.test", "httpbin.TEST", true));
  EXPECT_TRUE(matchesValue("*.Example.COM", "api.example.com", true));
  EXPECT_TRUE(matchesValue("API.*", "api.example.com", true));
  EXPECT_FALSE(matchesValue("*.Example.COM", "api.example.com", false));
}

TEST(AuthorizationMatcherTest, EmptyRuleMatchesEverything) {
  EXPECT_TRUE(matchesRule({}, request()));
  EXPECT_TRUE(matchesRule({}, request("", "x.test", 1, "")));
}

TEST(AuthorizationMatcherTest, PrincipalsAndNotPrincipals) {
  AuthorizationRule r;
  r.principals = {"cluster.local/ns/default/sa/client", "cluster.local/ns/prod/*"};
  EXPECT_TRUE(matchesRule(r, request("cluster.local/ns/default/sa/client")));
  EXPECT_TRUE(matchesRule(r, request("cluster.local/ns/prod/sa/web")));
  EXPECT_FALSE(matchesRule(r, request("cluster.local/ns/default/sa/other")));
  EXPECT_FALSE(matchesRule(r, request("")));

  AuthorizationRule n;
  n.notPrincipals = {"*/sa/evil"};
  EXPECT_TRUE(matchesRule(n, request("cluster.local/ns/default/sa/client")));
  EXPECT_FALSE(matchesRule(n, request("cluster.local/ns/default/sa/evil")));
}

TEST(AuthorizationMatcherTest, NamespacesAndNotNamespaces) {
  AuthorizationRule r;
  r.namespaces = {"default", "team-*"};
  r.notNamespaces = {"team-banned"};
  EXPECT_TRUE(matchesRule(r, request({}, "h.test", 1, "default")));
  EXPECT_TRUE(matchesRule(r, request({}, "h.test", 1, "team-a")));
  EXPECT_FALSE(matchesRule(r, request({}, "h.test", 1, "team-banned")));
  EXPECT_FALSE(matchesRule(r, request({}, "h.test", 1, "kube-system")));
}

TEST(AuthorizationMatcherTest, HostsAreCaseInsensitive) {
  AuthorizationRule r;
  r.hosts = {"HttpBin.test", "*.Example.com"};
  r.notHosts = {"Admin.example.com"};
  EXPECT_TRUE(matchesRule(r, request({}, "httpbin.test")));
  EXPECT_TRUE(matchesRule(r, request({}, "api.example.com")));
  EXPECT_FALSE(matchesRule(r, request({}, "admin.example.com")));
  EXPECT_FALSE(matchesRule(r, request({}, "blocked.test")));
}

TEST(AuthorizationMatcherTest, PortsAndNotPorts) {
  AuthorizationRule r;
  r.ports = {"443", "8443"};
  EXPECT_TRUE(matchesRule(r, request({}, "h.test", 443)));
  EXPECT_TRUE(matchesRule(r, request({}, "h.test", 8443)));
  EXPECT_FALSE(matchesRule(r, request({}, "h.test", 80)));
  EXPECT_FALSE(matchesRule(r, request({}, "h.test", 44)));  // numeric, not a string prefix

  AuthorizationRule n;
  n.notPorts = {"22"};
  EXPECT_TRUE(matchesRule(n, request({}, "h.test", 443)));
  EXPECT_FALSE(matchesRule(n, request({}, "h.test", 22)));

  AuthorizationRule leadingZero;
  leadingZero.ports = {"0443"};
  EXPECT_TRUE(matchesRule(leadingZero, request({}, "h.test", 443)));
}

TEST(AuthorizationMatcherTest, EveryPresentFieldMustMatch) {
  AuthorizationRule r;
  r.principals = {"cluster.local/ns/default/sa/client"};
  r.hosts = {"httpbin.test"};
  r.ports = {"443"};
  EXPECT_TRUE(matchesRule(r, request()));
  EXPECT_FALSE(matchesRule(r, request("cluster.local/ns/default/sa/other")));
  EXPECT_FALSE(matchesRule(r, request({"cluster.local/ns/default/sa/client"}, "other.test")));
  EXPECT_FALSE(matchesRule(r, request({"cluster.local/ns/default/sa/client"}, "httpbin.test", 80)));
}

// ---- evaluation order -----------------------------------------------------------------------

TEST(AuthorizerTest, NoPoliciesAllows) {
  Authorizer a({}, kGateway);
  auto r = a.authorize(request());
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(r.policy, "-");
  EXPECT_EQ(r.reason, "authz");
}

TEST(AuthorizerTest, OnlyNonMatchingDenyPoliciesAllow) {
  Authorizer a({policy("tollgate", "no-evil", Action::Deny, {fromPrincipal("*/sa/evil")})},
               kGateway);
  EXPECT_TRUE(a.authorize(request()).allowed);
  auto r = a.authorize(request("cluster.local/ns/default/sa/evil"));
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.policy, "AuthorizationPolicy/tollgate/no-evil");
}

TEST(AuthorizerTest, MatchingAllowPolicyAllowsAndIsNamed) {
  Authorizer a({policy("tollgate", "clients", Action::Allow,
                       {fromPrincipal("cluster.local/ns/default/sa/client")})},
               kGateway);
  auto ok = a.authorize(request());
  EXPECT_TRUE(ok.allowed);
  EXPECT_EQ(ok.policy, "AuthorizationPolicy/tollgate/clients");
  auto no = a.authorize(request("cluster.local/ns/default/sa/other"));
  EXPECT_FALSE(no.allowed);  // ALLOW policies exist and none matched
  EXPECT_EQ(no.policy, "-");
  EXPECT_EQ(no.reason, "authz");
}

TEST(AuthorizerTest, DenyWinsOverAllow) {
  AuthorizationRule denyHost;
  denyHost.hosts = {"blocked.test"};
  Authorizer a({policy("tollgate", "allow-all", Action::Allow, {AuthorizationRule{}}),
                policy("tollgate", "deny-blocked", Action::Deny, {denyHost})},
               kGateway);
  EXPECT_TRUE(a.authorize(request()).allowed);
  auto r = a.authorize(request({"cluster.local/ns/default/sa/client"}, "BLOCKED.test"));
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.policy, "AuthorizationPolicy/tollgate/deny-blocked");
}

TEST(AuthorizerTest, AnyOfSeveralAllowPoliciesSuffices) {
  Authorizer a({policy("tollgate", "a", Action::Allow, {fromPrincipal("*/sa/a")}),
                policy("tollgate", "b", Action::Allow, {fromPrincipal("*/sa/b")})},
               kGateway);
  EXPECT_EQ(a.authorize(request("cluster.local/ns/x/sa/b")).policy,
            "AuthorizationPolicy/tollgate/b");
  EXPECT_FALSE(a.authorize(request("cluster.local/ns/x/sa/c")).allowed);
}

TEST(AuthorizerTest, AnyRuleOfAPolicySuffices) {
  AuthorizationRule port80;
  port80.ports = {"80"};
  Authorizer a({policy("tollgate", "p", Action::Allow, {fromPrincipal("*/sa/a"), port80})},
               kGateway);
  EXPECT_TRUE(a.authorize(request("cluster.local/ns/x/sa/a", "h.test", 443)).allowed);
  EXPECT_TRUE(a.authorize(request("cluster.local/ns/x/sa/z", "h.test", 80)).allowed);
  EXPECT_FALSE(a.authorize(request("cluster.local/ns/x/sa/z", "h.test", 443)).allowed);
}

TEST(AuthorizerTest, AllowWithoutRulesDeniesEverything) {
  Authorizer a({policy("tollgate", "deny-all", Action::Allow, {})}, kGateway);
  EXPECT_EQ(a.allowPolicies(), 1u);
  auto r = a.authorize(request());
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.policy, "-");
}

TEST(AuthorizerTest, DenyWithoutRulesMatchesNothing) {
  Authorizer a({policy("tollgate", "empty-deny", Action::Deny, {})}, kGateway);
  EXPECT_TRUE(a.authorize(request()).allowed);
}

TEST(AuthorizerTest, DenyWithEmptyRuleDeniesEverything) {
  Authorizer a({policy("tollgate", "deny-all", Action::Deny, {AuthorizationRule{}})}, kGateway);
  auto r = a.authorize(request());
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.policy, "AuthorizationPolicy/tollgate/deny-all");
}

// ---- which policies apply -------------------------------------------------------------------

TEST(AuthorizerTest, RootNamespacePoliciesApplyMeshWide) {
  Authorizer a({policy("istio-system", "mesh-deny", Action::Deny, {fromPrincipal("*/sa/evil")})},
               kGateway);
  EXPECT_EQ(a.denyPolicies(), 1u);
  EXPECT_EQ(a.authorize(request("cluster.local/ns/x/sa/evil")).policy,
            "AuthorizationPolicy/istio-system/mesh-deny");
}

TEST(AuthorizerTest, RootNamespaceIsConfigurable) {
  GatewayWorkload gw = kGateway;
  gw.rootNamespace = "mesh-root";
  Authorizer a({policy("mesh-root", "d", Action::Deny, {AuthorizationRule{}}),
                policy("istio-system", "ignored", Action::Deny, {AuthorizationRule{}})},
               gw);
  EXPECT_EQ(a.denyPolicies(), 1u);
  EXPECT_EQ(a.authorize(request()).policy, "AuthorizationPolicy/mesh-root/d");
}

TEST(AuthorizerTest, OtherNamespacesPoliciesAreIgnored) {
  Authorizer a({policy("default", "elsewhere", Action::Deny, {AuthorizationRule{}}),
                policy("default", "elsewhere-allow", Action::Allow, {})},
               kGateway);
  EXPECT_EQ(a.denyPolicies() + a.allowPolicies(), 0u);
  EXPECT_TRUE(a.authorize(request()).allowed);
}

TEST(AuthorizerTest, SelectorMustMatchGatewayLabels) {
  Authorizer a(
      {policy("tollgate", "selected", Action::Deny, {AuthorizationRule{}},
              Labels{{"app", "tollgate-gateway"}}),
       policy("tollgate", "other-workload", Action::Allow, {},
              Labels{{"app", "tollgate-gateway"}, {"tier", "frontend"}}),
       policy("istio-system", "mesh-other", Action::Allow, {}, Labels{{"app", "ingress"}})},
      kGateway);
  EXPECT_EQ(a.denyPolicies(), 1u);
  EXPECT_EQ(a.allowPolicies(), 0u);
  EXPECT_EQ(a.authorize(request()).policy, "AuthorizationPolicy/tollgate/selected");
}

TEST(AuthorizerTest, EmptySelectorMatchesAnyGateway) {
  Authorizer a({policy("tollgate", "all", Action::Allow, {fromPrincipal("*")}, Labels{})},
               GatewayWorkload{"tollgate", {}});
  EXPECT_TRUE(a.authorize(request()).allowed);
  EXPECT_FALSE(a.authorize(request("")).allowed);  // "*" requires an authenticated peer
}

}  // namespace
}  // namespace tollgate::policy
