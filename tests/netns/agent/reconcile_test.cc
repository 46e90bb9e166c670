// The agent's reconcile loop against real pod netns: a pod (or anything else in its netns) that
// deletes or loosens the tollgate table gets it back within the interval, CHECK reports the drift
// until then; excluded namespaces are not enrolled and pods cannot opt themselves out.
#include "agent/reconciler.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "agent/agent.h"
#include "agent/netns.h"
#include "agent/options.h"
#include "tests/common/command.h"
#include "tests/netns/agent/agent_fixture.h"

namespace tollgate::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::sh;

constexpr char kConfig[] = R"(
apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  clusterCIDRs:
    pods: [10.244.0.0/16]
    services: [10.96.0.0/12]
  excludedNamespaces: [kube-system]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: default
  labels: {tollgate.io/exclude: "true"}
  annotations: {tollgate.io/exclude: "true"}
spec:
  serviceAccountName: default
)";

// Polls `pred` until it holds or `timeout` passes (the reconciler has no completion callback;
// its pass counter and the metrics are the observable state). The timeout only catches hangs.
bool await(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 60s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

class ReconcileTest : public testing::AgentNetnsTest {
 protected:
  ReconcileTest() : AgentNetnsTest("r") {}

  void SetUp() override {
    AgentNetnsTest::SetUp();
    if (!IsSkipped() && !HasFatalFailure()) writeConfig(kConfig);
  }

  void startAgent(std::chrono::milliseconds interval = 200ms) {
    AgentOptions o = agentOptions();
    o.reconcileInterval = interval;
    auto st = AgentNetnsTest::startAgent(o);
    ASSERT_TRUE(st) << st.error().str();
    ASSERT_TRUE(agent_->ready());
  }

  enroll::EnrollReply send(enroll::EnrollRequest::Op op, const std::string& ns = "default",
                           bool optOutLabel = false) {
    enroll::EnrollRequest req = request(op, ns);
    if (optOutLabel) (*req.mutable_labels())["tollgate.io/exclude"] = "true";
    return AgentNetnsTest::send(std::move(req), op == enroll::EnrollRequest::ADD);
  }

  Reconciler::PodCounts counts() { return agent_->reconciler()->counts("default/client"); }

  // Tampers with the pod's rules while the reconciler is paused, checks that CHECK sees it, then
  // lets the reconciler run and awaits the repair.
  void tamperAndExpectRepair(const std::string& nftCommand, uint64_t detectedBefore) {
    Reconciler& rec = *agent_->reconciler();
    rec.setPaused(true);  // returns once no pass is running
    ASSERT_EQ(sh("ip netns exec " + pod_ + " " + nftCommand), 0) << nftCommand;

    auto check = send(enroll::EnrollRequest::CHECK);
    EXPECT_FALSE(check.ok());
    EXPECT_EQ(check.code(), kCodeCheckFailed);
    EXPECT_NE(check.msg().find("drifted"), std::string::npos) << check.msg();
    EXPECT_EQ(counts().detected, detectedBefore);

    rec.setPaused(false);
    ASSERT_TRUE(await([&] { return counts().detected > detectedBefore; }))
        << "no repair";
    EXPECT_EQ(counts().detected, detectedBefore + 1);
    EXPECT_EQ(counts().repaired, detectedBefore + 1);
    EXPECT_EQ(counts().repairFailed, 0u);
    EXPECT_TRUE(podTableExists());
    auto after = send(enroll::EnrollRequest::CHECK);
    EXPECT_TRUE(after.ok()) << after.msg();
    std::string text = agent_->metrics().render();
    EXPECT_NE(text.find(fmt::format("tollgate_drift_detected_total{{pod=\"default/client\"}} {}",
                                    detectedBefore + 1)),
              std::string::npos)
        << text;
    EXPECT_NE(text.find(fmt::format("tollgate_drift_repaired_total{{pod=\"default/client\"}} {}",
                                    detectedBefore + 1)),
              std::string::npos)
        << text;
  }

};

TEST_F(ReconcileTest, DeletedTableIsReportedByCheckThenRepaired) {
  startAgent();
  ASSERT_NE(agent_->reconciler(), nullptr);
  auto add = send(enroll::EnrollRequest::ADD);
  ASSERT_TRUE(add.ok()) << add.msg();
  // A pass over an in-sync pod counts nothing.
  uint64_t p = agent_->reconciler()->passes();
  ASSERT_TRUE(await([&] { return agent_->reconciler()->passes() >= p + 2; }));
  EXPECT_EQ(counts().detected, 0u);

  tamperAndExpectRepair("nft delete table inet tollgate", 0);
  EXPECT_TRUE(send(enroll::EnrollRequest::DEL).ok());
}

TEST_F(ReconcileTest, NftablesEventBringsTheRepairForward) {
  startAgent(24h);  // the timer never fires during the test: only the event can cause the pass
  ASSERT_TRUE(send(enroll::EnrollRequest::ADD).ok());
  Reconciler& rec = *agent_->reconciler();
  ASSERT_TRUE(await([&] { return rec.watchedPods() == 1; })) << "pod netns never watched";
  const uint64_t passesBefore = rec.passes();

  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(sh("ip netns exec " + pod_ + " nft delete table inet tollgate"), 0);
  ASSERT_TRUE(await([&] { return counts().repaired >= 1; })) << "no repair";
  auto took = std::chrono::steady_clock::now() - t0;
  // Not before the settle delay (a burst of changes becomes one pass). No upper bound: with a
  // 24 h interval the event is the only thing that can have brought the pass.
  EXPECT_GE(took, Reconciler::kEventDelay - 50ms);
  EXPECT_EQ(counts().detected, 1u);
  EXPECT_TRUE(podTableExists());
  EXPECT_TRUE(send(enroll::EnrollRequest::CHECK).ok());
  EXPECT_LE(rec.passes(), passesBefore + 3) << "event passes must be coalesced";

  // A deleted pod's netns stops being watched (the socket would keep the netns alive).
  EXPECT_TRUE(send(enroll::EnrollRequest::DEL).ok());
  EXPECT_TRUE(await([&] { return rec.watchedPods() == 0; }));
}

TEST_F(ReconcileTest, ChainPolicyAcceptIsRepaired) {
  startAgent();
  ASSERT_TRUE(send(enroll::EnrollRequest::ADD).ok());
  // Flip every base chain's policy to accept, as a pod with CAP_NET_ADMIN could.
  auto list = tests::runCommand("ip netns exec " + pod_ + " nft -a list table inet tollgate");
  ASSERT_EQ(list.exitCode, 0) << list.output;
  const std::string& listing = list.output;
  std::string chain;
  for (size_t pos = 0; (pos = listing.find("chain ", pos)) != std::string::npos; pos += 6) {
    size_t end = listing.find(' ', pos + 6);
    std::string name = listing.substr(pos + 6, end - pos - 6);
    size_t brace = listing.find('}', pos);
    if (listing.substr(pos, brace - pos).find("policy drop") != std::string::npos) {
      chain = name;
      break;
    }
  }
  ASSERT_FALSE(chain.empty()) << "no chain with policy drop in:\n" << listing;
  std::string hook;
  {
    size_t pos = listing.find("chain " + chain);
    size_t typePos = listing.find("type ", pos);
    size_t semi = listing.find(';', typePos);
    hook = listing.substr(typePos, semi - typePos);  // "type filter hook output priority ..."
  }
  tamperAndExpectRepair(fmt::format("nft add chain inet tollgate {} '{{ {}; policy accept; }}'",
                                    chain, hook),
                        0);
  EXPECT_TRUE(send(enroll::EnrollRequest::DEL).ok());
}

TEST_F(ReconcileTest, ExcludedNamespaceAddIsOkAndNotEnrolled) {
  startAgent();
  uint64_t before = agent_->metrics().enrollExcluded.load();
  auto add = send(enroll::EnrollRequest::ADD, "kube-system");
  ASSERT_TRUE(add.ok()) << add.msg();
  EXPECT_FALSE(podTableExists());
  EXPECT_FALSE(agent_->pods().enrolled("kube-system", "client"));
  EXPECT_EQ(agent_->pods().size(), 0u);
  EXPECT_EQ(agent_->metrics().enrollExcluded.load(), before + 1);
  EXPECT_FALSE(fs::exists(dir_ / "run" / "pods" / "kube-system_client.pb"));
  EXPECT_NE(agent_->metrics().render().find("tollgate_enroll_excluded_total 1"),
            std::string::npos);
  // The runtime's CHECK of a pod it was told is fine must not fail.
  EXPECT_TRUE(send(enroll::EnrollRequest::CHECK, "kube-system").ok());
  EXPECT_TRUE(send(enroll::EnrollRequest::DEL, "kube-system").ok());
}

TEST_F(ReconcileTest, LabelOrAnnotationCannotOptOut) {
  startAgent();
  // The request's label and the Pod object's label and annotation all say exclude=true.
  auto add = send(enroll::EnrollRequest::ADD, "default", /*optOutLabel=*/true);
  ASSERT_TRUE(add.ok()) << add.msg();
  EXPECT_TRUE(podTableExists());
  EXPECT_TRUE(agent_->pods().enrolled("default", "client"));
  EXPECT_EQ(agent_->metrics().enrollExcluded.load(), 0u);
  EXPECT_TRUE(send(enroll::EnrollRequest::CHECK).ok());
  EXPECT_TRUE(send(enroll::EnrollRequest::DEL).ok());
  EXPECT_FALSE(podTableExists());
}

TEST(ReconcileIntervalTest, ParsesUnitsAndRejectsTooShort) {
  EXPECT_EQ(*parseInterval("--reconcile-interval", "200ms"), 200ms);
  EXPECT_EQ(*parseInterval("--reconcile-interval", "5s"), 5000ms);
  EXPECT_EQ(*parseInterval("--reconcile-interval", "1m"), 60000ms);
  EXPECT_EQ(*parseInterval("--reconcile-interval", "0"), 0ms);
  EXPECT_FALSE(parseInterval("--reconcile-interval", "50ms"));
  EXPECT_FALSE(parseInterval("--reconcile-interval", "2h"));
  EXPECT_FALSE(parseInterval("--reconcile-interval", "fast"));
  auto o = parseOptions({"--config-dir", "/x", "--reconcile-interval=250ms"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->reconcileInterval, 250ms);
  EXPECT_EQ(parseOptions({"--config-dir", "/x"})->reconcileInterval, 5000ms);
}

}  // namespace
}  // namespace tollgate::agent
