#include "agent/pod_cgroup.h"

#include <gtest/gtest.h>

namespace tollgate::agent {
namespace {

constexpr const char* kMount = "/sys/fs/cgroup";

std::string path(std::string_view runtime, std::string_view agent = "/system.slice/tg.service") {
  auto r = podCgroupPath(runtime, kMount, agent);
  return r ? *r : "error: " + r.error().str();
}

TEST(PodCgroupTest, CgroupfsPathsAreUnderTheMount) {
  EXPECT_EQ(path("/kubepods/burstable/pod1234"), "/sys/fs/cgroup/kubepods/burstable/pod1234");
  EXPECT_EQ(path("kubepods/pod1234"), "/sys/fs/cgroup/kubepods/pod1234");
  EXPECT_EQ(path("/sys/fs/cgroup/kubepods/pod1234"), "/sys/fs/cgroup/kubepods/pod1234");
  EXPECT_EQ(path("//kubepods//pod1234/"), "/sys/fs/cgroup/kubepods/pod1234");
}

TEST(PodCgroupTest, SystemdSlicesNestTheWaySystemdDoes) {
  EXPECT_EQ(path("kubepods-burstable-pod1234.slice"),
            "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/"
            "kubepods-burstable-pod1234.slice");
  EXPECT_EQ(path("kubepods.slice"), "/sys/fs/cgroup/kubepods.slice");
  EXPECT_NE(path("-.slice").find("error"), std::string::npos);
  EXPECT_NE(path("a--b.slice").find("error"), std::string::npos);
  // A container's unit is not the pod's cgroup.
  EXPECT_NE(path("kubepods-pod1.slice:cri-containerd:abc").find("systemd unit"), std::string::npos);
}

TEST(PodCgroupTest, RefusesWhatWouldCaptureTheAgentOrEverything) {
  EXPECT_NE(path("").find("no cgroupPath"), std::string::npos);
  EXPECT_NE(path("/").find("root cgroup"), std::string::npos);
  EXPECT_NE(path("/sys/fs/cgroup").find("root cgroup"), std::string::npos);
  EXPECT_NE(path("/kubepods/../system.slice").find("'..'"), std::string::npos);
  // The agent's own cgroup and every one above it hold the proxy's sockets.
  EXPECT_NE(path("/system.slice/tg.service").find("agent's own cgroup"), std::string::npos);
  EXPECT_NE(path("/system.slice").find("agent's own cgroup"), std::string::npos);
  EXPECT_NE(path("/system.slice/tg.service", "/system.slice/tg.service/").find("agent's own"),
            std::string::npos);
  // A sibling with a common prefix is not an ancestor; a cgroup below the agent's is fine.
  EXPECT_EQ(path("/system.slice/tg"), "/sys/fs/cgroup/system.slice/tg");
  EXPECT_EQ(path("/system.slice/tg.service/pods/a"),
            "/sys/fs/cgroup/system.slice/tg.service/pods/a");
  // An agent in the root cgroup: every pod cgroup is below it.
  EXPECT_EQ(path("/lab/pod", "/"), "/sys/fs/cgroup/lab/pod");
}

}  // namespace
}  // namespace tollgate::agent
