// Golden tables of the agent commands: what an operator reads at 3 a.m. is pinned here.
#include "cli/admin_view.h"

#include <gtest/gtest.h>

namespace tollgate::cli {
namespace {

constexpr int64_t kNow = 1'800'000'000;  // 2027-01-15T08:00:00Z

TEST(AdminView, StatusTable) {
  admin::AgentStatus s;
  s.set_version("0.1.0");
  s.set_uptime_seconds(3725);
  s.set_redirect_mode("nftables");
  s.set_config_source("files:/etc/tollgate");
  s.set_config_generation(3);
  s.set_config_loaded_unix(kNow - 90);
  s.set_reloads_ok(3);
  s.set_reloads_failed(1);
  s.set_enrolled_pods(2);
  s.set_active_connections(5);
  auto* g = s.add_gateways();
  g->set_name("egress");
  g->set_address("10.0.0.5");
  g->set_port(15008);
  g->set_is_default(true);
  s.set_tunnel_connections_up(2);
  s.set_identity_enabled(true);
  s.set_svid_next_rotation_unix(kNow + 7200);
  s.set_drift_detected(1);
  s.set_drift_repaired(1);
  (*s.mutable_connections_denied())["not_in_registry"] = 4;
  (*s.mutable_connections_denied())["connection_limit"] = 2;
  s.add_last_errors("2027-01-15T07:59:00.000Z warn proxy: pod default/a: connection limit 2 reached");
  EXPECT_EQ(renderStatus(s, kNow),
            "version             0.1.0\n"
            "uptime              1h2m\n"
            "redirect mode       nftables\n"
            "config source       files:/etc/tollgate\n"
            "config              generation 3, loaded 1m30s ago (3 reloads ok, 1 rejected)\n"
            "enrolled pods       2\n"
            "open connections    5\n"
            "gateway             egress 10.0.0.5:15008 (default)\n"
            "tunnel connections  2 up\n"
            "identity            built-in CA, next SVID rotation in 2h0m\n"
            "drift               1 detected, 1 repaired, 0 repair failed\n"
            "denied connections  connection_limit 2, not_in_registry 4\n"
            "last errors:\n"
            "  2027-01-15T07:59:00.000Z warn proxy: pod default/a: connection limit 2 reached\n");
  admin::AgentStatus empty;
  std::string none = renderStatus(empty, kNow);
  EXPECT_NE(none.find("none loaded (not ready)"), std::string::npos) << none;
  EXPECT_NE(none.find("none configured (external flows go direct)"), std::string::npos) << none;
}

TEST(AdminView, PodsTable) {
  admin::AdminReply r;
  auto* a = r.add_pods();
  a->set_namespace_("default");
  a->set_name("client");
  a->add_pod_ips("10.244.0.2");
  a->add_pod_ips("fd00:10:244::2");
  a->set_identity("spiffe://cluster.local/ns/default/sa/default");
  a->set_rules_ok(true);
  a->set_active_connections(3);
  a->add_listener_ports(15001);
  a->add_listener_ports(15053);
  a->add_listener_ports(15443);
  (*a->mutable_drops())["drop_udp"] = 7;
  (*a->mutable_drops())["drop_icmp"] = 0;
  a->set_netns_path("/var/run/netns/client");
  auto* b = r.add_pods();
  b->set_namespace_("team-b");
  b->set_name("web");
  b->set_identity("spiffe://cluster.local/ns/team-b/sa/web");
  b->set_rules_ok(false);
  b->add_drift("table inet tollgate missing");
  b->add_listener_ports(15001);
  b->add_listener_ports(0);
  b->add_listener_ports(0);
  b->set_netns_path("/proc/42/ns/net");
  EXPECT_EQ(renderPods(r),
            "NAMESPACE  NAME    IPS                        IDENTITY                                      RULES  CONNS  DROPS  LISTENERS                       NETNS\n"
            "default    client  10.244.0.2,fd00:10:244::2  spiffe://cluster.local/ns/default/sa/default  ok     3      udp=7  tcp:15001,dns:15053,quic:15443  /var/run/netns/client\n"
            "team-b     web     -                          spiffe://cluster.local/ns/team-b/sa/web       DRIFT  0      -      tcp:15001                       /proc/42/ns/net\n"
            "team-b/web: drift: table inet tollgate missing\n");
  EXPECT_NE(renderPods(admin::AdminReply{}).find("(no pods enrolled)"), std::string::npos);
}

TEST(AdminView, RulesOkAndDrift) {
  admin::AdminReply r;
  auto* p = r.add_pods();
  p->set_namespace_("default");
  p->set_name("client");
  p->set_rules_ok(true);
  r.set_text("table inet tollgate {\n}\n");
  EXPECT_EQ(renderRules(r), "# default/client: rules OK (installed = expected)\ntable inet tollgate {\n}\n");
  p->set_rules_ok(false);
  p->add_drift("table inet tollgate missing");
  r.clear_text();
  EXPECT_EQ(renderRules(r),
            "# default/client: DRIFT from what the agent installs:\n"
            "#   table inet tollgate missing\n"
            "# the reconciler repairs it within one --reconcile-interval\n"
            "# nothing installed in the pod netns\n");
}

TEST(AdminView, CertsTable) {
  admin::AdminReply r;
  auto* c = r.add_certs();
  c->set_service_account("default/client");
  c->set_spiffe_id("spiffe://cluster.local/ns/default/sa/client");
  c->set_serial("3f2a");
  c->set_not_after_unix(kNow + 86400);
  c->set_rotate_at_unix(kNow + 43200);
  r.add_certs()->set_service_account("team-b/web");
  EXPECT_EQ(renderCerts(r, kNow),
            "SERVICE ACCOUNT  SPIFFE ID                                    SERIAL  NOT AFTER             ROTATES\n"
            "default/client   spiffe://cluster.local/ns/default/sa/client  3f2a    2027-01-16T08:00:00Z  in 12h0m\n"
            "team-b/web       (not issued yet: on the first gateway flow)  -       -                     -\n");
}

TEST(AdminView, ConnsTable) {
  admin::AdminReply r;
  auto* c = r.add_conns();
  c->set_namespace_("default");
  c->set_pod("client");
  c->set_original_dst("198.18.0.10:443");
  c->set_name("httpbin.test");
  c->set_protocol("tls");
  c->set_decision("allow");
  c->set_reason("allowed_registry");
  c->set_route("gateway egress(198.19.0.6:15008) -> httpbin.test:443");
  c->set_bytes_up(1536);
  c->set_bytes_down(3 * 1024 * 1024);
  c->set_age_ms(125000);
  auto* d = r.add_conns();
  d->set_namespace_("default");
  d->set_pod("client");
  d->set_original_dst("198.51.100.7:80");
  d->set_age_ms(900);
  EXPECT_EQ(renderConns(r),
            "POD             DESTINATION      NAME          PROTO  DECISION                ROUTE                                                 UP    DOWN  AGE\n"
            "default/client  198.18.0.10:443  httpbin.test  tls    allow allowed_registry  gateway egress(198.19.0.6:15008) -> httpbin.test:443  1.5K  3.0M  2m5s\n"
            "default/client  198.51.100.7:80  -             -      sniffing                -                                                     0     0     0s\n");
  EXPECT_NE(renderConns(admin::AdminReply{}).find("(no open connections)"), std::string::npos);
}

TEST(AdminView, VerifyLinesAndVerdict) {
  admin::AdminReply r;
  auto add = [&](const char* vector, const char* user, const char* dst, bool passed,
                 const char* outcome) {
    auto* c = r.add_checks();
    c->set_vector(vector);
    c->set_user(user);
    c->set_destination(dst);
    c->set_passed(passed);
    c->set_outcome(outcome);
  };
  add("rules", "", "", true, "as installed");
  add("udp", "pod-uid", "192.0.2.1:33007", true, "dropped by the pod's rules (drop_udp +1)");
  EXPECT_EQ(renderVerify(r, "default/client"),
            "      VECTOR  AS       DESTINATION      OUTCOME\n"
            "PASS  rules   -        -                as installed\n"
            "PASS  udp     pod-uid  192.0.2.1:33007  dropped by the pod's rules (drop_udp +1)\n"
            "default/client: no way around the node found (2 checks passed)\n");
  add("fence", "", "", false, "DRIFT: table inet tollgate_fence missing");
  add("so-mark", "root+net_admin", "192.0.2.1:33017", false, "LEAK: sent, no answer; ...");
  add("so-mark", "root+net_admin", "192.0.2.1:33018", false, "LEAK: sent, no answer; ...");
  std::string text = renderVerify(r, "default/client");
  EXPECT_NE(text.find("FAIL  so-mark  root+net_admin  192.0.2.1:33017  LEAK: sent, no answer; ...\n"),
            std::string::npos)
      << text;
  // Each failing vector is named once in the verdict.
  EXPECT_TRUE(text.ends_with(
      "default/client: 3 of 5 checks FAILED: fence, so-mark as root+net_admin\n"))
      << text;
}

TEST(AdminView, Durations) {
  EXPECT_EQ(formatDuration(0), "0s");
  EXPECT_EQ(formatDuration(59), "59s");
  EXPECT_EQ(formatDuration(61), "1m1s");
  EXPECT_EQ(formatDuration(90061), "1d1h");
  EXPECT_EQ(formatUnixTime(0), "-");
}

TEST(AdminView, EventLine) {
  admin::LogEvent e;
  e.set_unix_ms(kNow * 1000 + 42);
  e.set_kind("conn");
  e.set_namespace_("default");
  e.set_pod("client");
  e.set_text("\"198.18.0.13:80\" \"blocked.test\" http deny not_in_registry - \"-\" 0 0 3ms");
  EXPECT_EQ(renderEvent(e),
            "2027-01-15T08:00:00.042Z conn  default/client \"198.18.0.13:80\" \"blocked.test\" http deny "
            "not_in_registry - \"-\" 0 0 3ms\n");
  admin::LogEvent node;
  node.set_unix_ms(kNow * 1000);
  node.set_kind("drift");
  node.set_text("x");
  EXPECT_EQ(renderEvent(node), "2027-01-15T08:00:00.000Z drift node x\n");
}

}  // namespace
}  // namespace tollgate::cli
