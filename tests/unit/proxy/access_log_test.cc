#include "proxy/access_log.h"

#include <gtest/gtest.h>

namespace tollgate::proxy {
namespace {

AccessRecord sample() {
  AccessRecord r;
  r.start = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795459228123));
  r.podNs = "default";
  r.podName = "client";
  r.identity = "spiffe://cluster.local/ns/default/sa/default";
  r.originalDst = "198.18.0.202:443";
  r.name = "httpbin.test";
  r.protocol = "tls";
  r.decision = "allow";
  r.reason = "allowed_registry";
  r.decidedBy = "ServiceEntry/default/httpbin";
  r.route = "direct httpbin.test:443";
  r.bytesUp = 120;
  r.bytesDown = 4500;
  r.durationMs = 37;
  return r;
}

TEST(AccessLogTest, TextLineHasEveryFieldInOrder) {
  EXPECT_EQ(formatText(sample()),
            "[2026-11-23T18:40:28.123Z] default/client spiffe://cluster.local/ns/default/sa/default "
            "\"198.18.0.202:443\" \"httpbin.test\" tls allow allowed_registry "
            "ServiceEntry/default/httpbin \"direct httpbin.test:443\" 120 4500 37");
}

TEST(AccessLogTest, TextLineUsesDashForMissingFields) {
  AccessRecord r = sample();
  r.name.clear();
  r.decidedBy.clear();
  r.route.clear();
  std::string line = formatText(r);
  EXPECT_NE(line.find("\"-\" tls allow allowed_registry - \"-\""), std::string::npos) << line;
}

TEST(AccessLogTest, HostileNameCannotForgeALine) {
  AccessRecord r = sample();
  r.name = "evil\"\n[fake] line";
  std::string line = formatText(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find("evil\\\"\\n[fake] line"), std::string::npos) << line;
}

TEST(AccessLogTest, JsonHasTypedFields) {
  std::string j = formatJson(sample());
  EXPECT_EQ(j,
            "{\"time\":\"2026-11-23T18:40:28.123Z\",\"pod_namespace\":\"default\","
            "\"pod_name\":\"client\",\"identity\":\"spiffe://cluster.local/ns/default/sa/default\","
            "\"original_dst\":\"198.18.0.202:443\",\"name\":\"httpbin.test\",\"protocol\":\"tls\","
            "\"decision\":\"allow\",\"reason\":\"allowed_registry\","
            "\"decided_by\":\"ServiceEntry/default/httpbin\",\"route\":\"direct httpbin.test:443\","
            "\"bytes_up\":120,\"bytes_down\":4500,\"duration_ms\":37}");
}

TEST(AccessLogTest, JsonLineEscapesAnUntrustedName) {
  AccessRecord r;
  r.name = "evil\n\"name";
  std::string line = formatJson(r);
  EXPECT_NE(line.find("\"name\":\"evil\\n\\\"name\""), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos) << "a name must never break the line";
}

}  // namespace
}  // namespace tollgate::proxy
