#include "proxy/metrics.h"

#include <gtest/gtest.h>

#include "proxy/status_server.h"

namespace tollgate::proxy {
namespace {

TEST(MetricsTest, ConnectionsAreLabelledByDecisionAndReason) {
  Metrics m;
  m.countConnection("deny", "not_in_registry");
  m.countConnection("deny", "not_in_registry");
  m.countConnection("allow", "allowed_registry");
  EXPECT_EQ(m.connections("deny", "not_in_registry"), 2u);
  std::string text = m.render();
  EXPECT_NE(text.find("# TYPE tollgate_connections_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("tollgate_connections_total{decision=\"deny\",reason=\"not_in_registry\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tollgate_connections_total{decision=\"allow\",reason=\"allowed_registry\"} 1\n"),
            std::string::npos);
}

TEST(MetricsTest, EveryFailureCounterIsExported) {
  Metrics m;
  m.sniffTimeouts = 3;
  m.limitRejections = 4;
  m.resolverFailures = 5;
  m.upstreamConnectFailures = 6;
  m.reloadsOk = 7;
  m.reloadsFailed = 8;
  m.active = 2;
  std::string text = m.render();
  for (const char* line :
       {"tollgate_sniff_timeouts_total 3\n", "tollgate_limit_rejections_total 4\n",
        "tollgate_resolver_failures_total 5\n", "tollgate_upstream_connect_failures_total 6\n",
        "tollgate_config_reloads_ok_total 7\n", "tollgate_config_reloads_failed_total 8\n",
        "tollgate_connections_active 2\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST(MetricsTest, CollectorsAppendTheirText) {
  Metrics m;
  m.addCollector([] {
    return formatSample("tollgate_pod_nft_packets_total", {{"pod", "default/client"}, {"counter", "drop_udp"}}, 9);
  });
  EXPECT_NE(m.render().find("tollgate_pod_nft_packets_total{pod=\"default/client\",counter=\"drop_udp\"} 9\n"),
            std::string::npos);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(escapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(StatusServerTest, RequestPathDropsTheQuery) {
  EXPECT_EQ(requestPath("GET /metrics?x=1 HTTP/1.1\r\n\r\n"), "/metrics");
  EXPECT_EQ(requestPath("GET /healthz/ready HTTP/1.1\r\n"), "/healthz/ready");
  EXPECT_EQ(requestPath("garbage"), "");
}

}  // namespace
}  // namespace tollgate::proxy
