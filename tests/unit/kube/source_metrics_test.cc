#include "kube/source_metrics.h"

#include <gtest/gtest.h>

namespace tollgate::kube {
namespace {

TEST(SourceMetricsTest, RendersEveryFamilyFromTheStatus) {
  KubeSourceStatus st;
  st.ready = true;
  st.connected = false;
  st.relists = 2;
  st.gone = 1;
  st.errors = 5;
  st.events = 7;
  st.loads = 3;
  st.loadFailures = 4;
  st.lastSync = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  ReflectorStatus rs;
  rs.objects = 9;
  st.resources.emplace_back("serviceentries.networking.istio.io", rs);
  std::string m = renderSourceMetrics(st);
  for (const char* line : {"tollgate_config_source_ready 1\n", "tollgate_config_source_connected 0\n",
                           "tollgate_config_source_relists_total 2\n",
                           "tollgate_config_source_gone_total 1\n",
                           "tollgate_config_source_errors_total 5\n",
                           "tollgate_config_source_events_total 7\n",
                           "tollgate_config_source_loads_total 3\n",
                           "tollgate_config_source_load_failures_total 4\n",
                           "tollgate_config_source_last_sync_timestamp_seconds 1700000000\n",
                           "tollgate_config_source_objects{resource=\"serviceentries.networking.istio.io\"} 9\n",
                           "# TYPE tollgate_config_source_errors_total counter\n"}) {
    EXPECT_NE(m.find(line), std::string::npos) << line << " in\n" << m;
  }
}

TEST(SourceMetricsTest, NotReadyReasonSaysWhy) {
  KubeSourceStatus st;
  EXPECT_EQ(notReadyReason(st), "the kubernetes source has not listed every resource yet");
  st.lastError = "connect: Connection refused";
  EXPECT_EQ(notReadyReason(st),
            "the kubernetes source has not listed every resource yet: connect: Connection refused");
  st.loadFailures = 1;
  st.lastError = "kubernetes: ServiceEntry/a/b: spec.ports[0].number: out of range";
  EXPECT_EQ(notReadyReason(st).rfind("the config from the kubernetes API does not load: ", 0), 0u);
  st.ready = true;
  EXPECT_EQ(notReadyReason(st), "");
}

}  // namespace
}  // namespace tollgate::kube
