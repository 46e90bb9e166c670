#include "common/error.h"

#include <gtest/gtest.h>

namespace tollgate {
namespace {

TEST(Error, WrapPrependsContext) {
  Error e{"Operation not permitted", EPERM};
  Error w = e.wrap("nft: add rule in netns of pod default/client");
  EXPECT_EQ(w.message, "nft: add rule in netns of pod default/client: Operation not permitted");
  EXPECT_EQ(w.code, EPERM);
}

TEST(Error, FromErrnoNamesTheCall) {
  Error e = Error::fromErrno("open /nonexistent", ENOENT);
  EXPECT_EQ(e.message, "open /nonexistent: No such file or directory");
  EXPECT_EQ(e.code, ENOENT);
}

TEST(Error, FailBuildsUnexpected) {
  Result<int> r = fail("bad port", 22);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "bad port");
}

}  // namespace
}  // namespace tollgate
