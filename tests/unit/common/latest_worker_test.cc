#include "common/latest_worker.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace tollgate {
namespace {

// Applies run on the worker's thread, never on the poster's.
TEST(LatestWorker, AppliesOnItsOwnThread) {
  std::promise<std::thread::id> where;
  LatestWorker<int> worker([&](int) { where.set_value(std::this_thread::get_id()); });
  worker.post(1);
  auto f = where.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);  // a hang bound
  EXPECT_NE(f.get(), std::this_thread::get_id());
}

// Values posted while an apply runs collapse into the newest: 1 runs, 2..9 are replaced, 10 runs.
TEST(LatestWorker, ABurstDuringAnApplyCostsOneApplyOfTheNewest) {
  std::mutex mu;
  std::vector<int> applied;
  std::promise<void> started, release;
  std::shared_future<void> released = release.get_future().share();
  LatestWorker<int> worker([&](int v) {
    if (v == 1) {
      started.set_value();
      released.wait();
    }
    std::lock_guard lock(mu);
    applied.push_back(v);
  });
  worker.post(1);
  started.get_future().wait();
  for (int v = 2; v <= 10; ++v) worker.post(v);
  release.set_value();
  for (;;) {  // until the newest is in: an event wait, bounded by ctest's timeout only
    {
      std::lock_guard lock(mu);
      if (!applied.empty() && applied.back() == 10) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(applied, (std::vector<int>{1, 10}));
  EXPECT_EQ(worker.replaced(), 8u);
}

// stop() waits for the apply in progress, drops what is pending, and later posts are ignored.
TEST(LatestWorker, StopDropsPendingAndIgnoresLaterPosts) {
  std::vector<int> applied;
  std::promise<void> started, release;
  std::shared_future<void> released = release.get_future().share();
  LatestWorker<int> worker([&](int v) {
    applied.push_back(v);
    if (v == 1) {
      started.set_value();
      released.wait();
    }
  });
  worker.post(1);
  started.get_future().wait();
  std::thread stopper([&] { worker.stop(); });
  // Pending values until stop() has begun (it refuses them from then on), all while 1 applies.
  while (worker.post(2)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  release.set_value();
  stopper.join();
  EXPECT_FALSE(worker.post(3));
  EXPECT_EQ(applied, (std::vector<int>{1}));
}

}  // namespace
}  // namespace tollgate
