#include <gtest/gtest.h>

#include <thread>

#include "proxy/proxy_context.h"

namespace tollgate::proxy {
namespace {

policy::SnapshotPtr withPod(const std::string& name) {
  policy::Config config;
  if (!name.empty()) {
    policy::Pod pod;
    pod.meta.ns = "default";
    pod.meta.name = name;
    config.pods.push_back(pod);
  }
  auto snap = policy::Snapshot::compile(std::move(config));
  EXPECT_TRUE(snap.has_value());
  return *snap;
}

bool hasPod(const policy::Snapshot& s, const char* name) {
  return s.findPod("default", name) != nullptr;
}

TEST(SnapshotHolder, WaitForReturnsAtOnceWhenTheCurrentSnapshotHolds) {
  SnapshotHolder holder;
  holder.store(withPod("a"));
  EXPECT_TRUE(holder.waitFor([](const auto& s) { return hasPod(s, "a"); },
                             std::chrono::steady_clock::now()));
}

TEST(SnapshotHolder, WaitForIsFalseWithoutASnapshotOrPastTheDeadline) {
  SnapshotHolder holder;
  EXPECT_FALSE(holder.waitFor([](const auto&) { return true; }, std::chrono::steady_clock::now()));
  holder.store(withPod(""));
  EXPECT_FALSE(holder.waitFor([](const auto& s) { return hasPod(s, "a"); },
                              std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
}

// A store on another thread wakes the waiter. Without the wake-up the wait would run into its
// deadline (10 min, a hang bound) and ctest's timeout fails the test.
TEST(SnapshotHolder, WaitForIsWokenByAStoreOnAnotherThread) {
  SnapshotHolder holder;
  holder.store(withPod(""));
  std::thread storer([&] {
    holder.store(withPod("b"));
    holder.store(withPod("a"));
  });
  EXPECT_TRUE(holder.waitFor([](const auto& s) { return hasPod(s, "a"); },
                             std::chrono::steady_clock::now() + std::chrono::minutes(10)));
  storer.join();
}

}  // namespace
}  // namespace tollgate::proxy
