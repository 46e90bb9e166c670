#include "common/fd_limit.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tollgate {
namespace {

// In a child process, so the test binary's own limit stays as it was.
TEST(FdLimitTest, RaisesTheSoftLimitToTheHardLimit) {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max < 2) GTEST_SKIP() << "hard limit " << lim.rlim_max;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    rlimit low{lim.rlim_max / 2, lim.rlim_max};
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) ::_exit(10);
    auto r = raiseFdLimitToHard();
    if (!r) ::_exit(11);
    if (r->first != low.rlim_cur || r->second != lim.rlim_max) ::_exit(12);
    rlimit now{};
    if (::getrlimit(RLIMIT_NOFILE, &now) != 0 || now.rlim_cur != lim.rlim_max) ::_exit(13);
    auto again = raiseFdLimitToHard();  // nothing left to raise
    if (!again || again->first != again->second) ::_exit(14);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setrlimit, 11 error, 12 values, 13 not raised, 14 again";
}

}  // namespace
}  // namespace tollgate
