// The nftables calls keep working when the process has no free fd below FD_SETSIZE (1024).
// libnftables waits on its netlink socket with select(); with every low fd taken, its socket used
// to land above 1023 and glibc's fortified FD_SET aborted the whole agent ("bit out of range 0 -
// FD_SETSIZE on fd_set"), as an agent with ~100 pods or ~1,000 proxied connections does. Before
// the fix this test binary dies with that message. Needs root (network namespaces, nftables).

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <vector>

#include "agent/redirect.h"
#include "nft_fixture.h"

namespace tollgate::agent {
namespace {

using nft_testing::ScratchNetns;

class NftManyFdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, nftables)";
    auto pod = ScratchNetns::create("fds");
    ASSERT_TRUE(pod.has_value()) << pod.error().message;
    pod_.emplace(std::move(*pod));

    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved_), 0);
    rlimit r = saved_;
    if (r.rlim_cur < kFill + 256) r.rlim_cur = kFill + 256;
    if (r.rlim_max < r.rlim_cur) r.rlim_max = r.rlim_cur;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &r), 0);
    // Take every free fd up to kFill (> FD_SETSIZE), holes below included.
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(devnull, 0);
    fillers_.push_back(devnull);
    for (;;) {
      int fd = ::fcntl(devnull, F_DUPFD_CLOEXEC, 0);
      ASSERT_GE(fd, 0);
      fillers_.push_back(fd);
      if (fd >= kFill) break;
    }
    int probe = ::fcntl(devnull, F_DUPFD_CLOEXEC, 0);
    ASSERT_GE(probe, FD_SETSIZE) << "a free fd below FD_SETSIZE is left: the test proves nothing";
    ::close(probe);
  }

  void TearDown() override {
    for (int fd : fillers_) ::close(fd);
    if (saved_.rlim_cur != 0) ::setrlimit(RLIMIT_NOFILE, &saved_);
  }

  static constexpr int kFill = FD_SETSIZE + 64;
  std::optional<ScratchNetns> pod_;
  std::vector<int> fillers_;
  rlimit saved_{};
};

TEST_F(NftManyFdsTest, InstallVerifyCountersRemoveWithNoLowFdFree) {
  RedirectParams params;
  params.proxyPort = 15001;
  params.mark = 0x7467;
  params.resolversV4 = {"10.0.0.53"};
  auto redirect = NftRedirect::create(params);
  ASSERT_TRUE(redirect.has_value()) << redirect.error().message;
  const Netns& ns = pod_->netns();

  auto st = redirect->install(ns);
  ASSERT_TRUE(st.has_value()) << st.error().message;
  auto drift = redirect->verify(ns);
  ASSERT_TRUE(drift.has_value()) << drift.error().message;
  EXPECT_TRUE(drift->ok()) << drift->summary();
  auto counters = redirect->counters(ns);
  ASSERT_TRUE(counters.has_value()) << counters.error().message;
  EXPECT_FALSE(counters->empty());
  st = redirect->remove(ns);
  ASSERT_TRUE(st.has_value()) << st.error().message;

  // The process's own fds were not touched by the helper threads' private fd tables.
  for (int fd : fillers_) ASSERT_NE(::fcntl(fd, F_GETFD), -1) << "fd " << fd << " was closed";
}

}  // namespace
}  // namespace tollgate::agent
