#include "kube/backoff.h"

#include <gtest/gtest.h>

#include <set>

namespace tollgate::kube {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DoublesUpToTheMaxWithinTheJitterBand) {
  Backoff b(milliseconds(100), milliseconds(3000), 0.5, 12345);
  int64_t ceiling = 100;
  for (int i = 0; i < 20; ++i) {
    auto d = b.next().count();
    EXPECT_LE(d, ceiling) << "attempt " << i;
    EXPECT_GE(d, ceiling / 2) << "attempt " << i;
    ceiling = std::min<int64_t>(ceiling * 2, 3000);
  }
  b.reset();
  EXPECT_LE(b.next().count(), 100);
}

TEST(BackoffTest, JitterSpreadsClientsAndZeroJitterIsExact) {
  std::set<int64_t> seen;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Backoff b(milliseconds(1000), milliseconds(1000), 0.5, seed);
    seen.insert(b.next().count());
  }
  EXPECT_GT(seen.size(), 10u);
  Backoff exact(milliseconds(10), milliseconds(40), 0.0);
  EXPECT_EQ(exact.next(), milliseconds(10));
  EXPECT_EQ(exact.next(), milliseconds(20));
  EXPECT_EQ(exact.next(), milliseconds(40));
  EXPECT_EQ(exact.next(), milliseconds(40));
}

TEST(BackoffTest, NonsenseBoundsAreClamped) {
  Backoff b(milliseconds(0), milliseconds(0), 7.0);
  for (int i = 0; i < 5; ++i) EXPECT_GE(b.next().count(), 1);
  EXPECT_GE(b.max(), b.initial());
}

}  // namespace
}  // namespace tollgate::kube
