#include "common/log_throttle.h"

#include <gtest/gtest.h>

#include <thread>

namespace tollgate::log {
namespace {

TEST(LogThrottle, FirstPassesThenHoldsAndReportsWhatItHeld) {
  Throttle t(std::chrono::milliseconds(200));
  uint64_t held = 99;
  EXPECT_TRUE(t.allow(&held));
  EXPECT_EQ(held, 0u);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(t.allow(&held));
  // Waits out the period (an event wait in disguise: allow() is polled until it passes).
  while (!t.allow(&held)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(held, 5u);  // the five above plus any polls that were held
}

}  // namespace
}  // namespace tollgate::log
