#include "common/high_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

namespace tollgate {
namespace {

TEST(MoveFdHighTest, MovesAboveFdSetsizeAndKeepsTheFile) {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur <= static_cast<rlim_t>(kHighFdBase) + 1) {
    GTEST_SKIP() << "RLIMIT_NOFILE " << lim.rlim_cur << " leaves no room above " << kHighFdBase;
  }
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const int low = p[1];
  ASSERT_LT(low, kHighFdBase);
  int high = moveFdHigh(low);
  EXPECT_GE(high, kHighFdBase);
  EXPECT_EQ(::fcntl(low, F_GETFD), -1) << "the low number must be free again";
  EXPECT_NE(::fcntl(high, F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(::write(high, "x", 1), 1);  // still the same pipe
  char c = 0;
  ASSERT_EQ(::read(p[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  EXPECT_EQ(moveFdHigh(high), high) << "already high: unchanged";
  ::close(high);
  ::close(p[0]);
}

TEST(MoveFdHighTest, InvalidFdIsReturnedAsIs) { EXPECT_EQ(moveFdHigh(-1), -1); }

}  // namespace
}  // namespace tollgate
