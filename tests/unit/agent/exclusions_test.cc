#include "agent/exclusions.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <thread>

namespace tollgate::agent {
namespace {

TEST(NamespaceExcludedTest, OnlyListedNamespacesAreExcluded) {
  policy::TollgateConfig mesh;
  mesh.excludedNamespaces = {"kube-system", "tollgate-system"};
  EXPECT_TRUE(namespaceExcluded(mesh, "kube-system"));
  EXPECT_FALSE(namespaceExcluded(mesh, "default"));
  EXPECT_FALSE(namespaceExcluded(mesh, "kube"));
  EXPECT_FALSE(namespaceExcluded(mesh, ""));
}

TEST(IsNodeNetnsTest, OwnNetnsByFdAndByPath) {
  int fd = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(isNodeNetns(fd, ""));
  // The fd decides when there is one, not the path.
  EXPECT_TRUE(isNodeNetns(fd, "/nonexistent"));
  ::close(fd);
  EXPECT_TRUE(isNodeNetns(-1, "/proc/self/ns/net"));
}

TEST(IsNodeNetnsTest, AnythingElseIsNot) {
  EXPECT_FALSE(isNodeNetns(-1, ""));
  EXPECT_FALSE(isNodeNetns(-1, "/nonexistent/netns"));
  EXPECT_FALSE(isNodeNetns(-1, "/proc/self/ns/mnt"));  // another namespace type
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(isNodeNetns(fd, "/proc/self/ns/net"));
  ::close(fd);
}

TEST(IsNodeNetnsTest, AnotherNetworkNamespaceIsNot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  int fd = -1;
  // unshare() on a thread of its own, so the test process keeps its namespace.
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) == 0) fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  }).join();
  ASSERT_GE(fd, 0) << "unshare(CLONE_NEWNET) failed";
  EXPECT_FALSE(isNodeNetns(fd, "/proc/self/ns/net"));
  ::close(fd);
}

}  // namespace
}  // namespace tollgate::agent
