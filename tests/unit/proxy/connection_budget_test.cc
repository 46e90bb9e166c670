#include "proxy/connection_budget.h"

#include <gtest/gtest.h>

namespace tollgate::proxy {
namespace {

TEST(ConnectionBudget, UnderTheLimitEveryoneIsAdmitted) {
  ConnectionBudget b(10);
  b.podAdded();
  b.podAdded();
  for (size_t i = 0; i < 10; ++i) EXPECT_TRUE(b.acquire(i));
  EXPECT_EQ(b.active(), 10u);
}

TEST(ConnectionBudget, AtTheLimitOnlyPodsUnderTheirShareGetIn) {
  ConnectionBudget b(10);
  b.podAdded();
  b.podAdded();
  EXPECT_EQ(b.fairShare(), 5u);
  for (size_t i = 0; i < 10; ++i) ASSERT_TRUE(b.acquire(i));  // one pod takes the node
  EXPECT_FALSE(b.acquire(10));                               // ... and is refused more
  EXPECT_EQ(b.active(), 10u);                                // a refusal takes nothing
  for (size_t i = 0; i < 5; ++i) EXPECT_TRUE(b.acquire(i));   // the other pod: up to its share
  EXPECT_FALSE(b.acquire(5));
  EXPECT_EQ(b.active(), 15u);  // bounded by 2 x limit
  for (int i = 0; i < 15; ++i) b.release();
  EXPECT_EQ(b.active(), 0u);
  EXPECT_TRUE(b.acquire(0));
}

TEST(ConnectionBudget, ShareFollowsEnrolledPods) {
  ConnectionBudget b(12);
  EXPECT_EQ(b.fairShare(), 12u);  // no pod yet: the whole node
  b.podAdded();
  b.podAdded();
  b.podAdded();
  EXPECT_EQ(b.fairShare(), 4u);
  b.podRemoved();
  EXPECT_EQ(b.fairShare(), 6u);
  ConnectionBudget tiny(1);
  for (int i = 0; i < 5; ++i) tiny.podAdded();
  EXPECT_EQ(tiny.fairShare(), 1u);  // never 0: a pod with nothing open always gets one
}

}  // namespace
}  // namespace tollgate::proxy
