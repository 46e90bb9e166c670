#include "proxy/relay_buffer.h"

#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tollgate::proxy {
namespace {

TEST(RelayBufferTest, HeldCountsLeasesUntilTheyAreGivenBack) {
  size_t base = RelayBuffer::held();
  {
    RelayBuffer a;
    EXPECT_EQ(RelayBuffer::held(), base + 1);
    {
      RelayBuffer b;
      EXPECT_EQ(RelayBuffer::held(), base + 2);
      EXPECT_NE(a.data(), b.data());
      EXPECT_EQ(b.buffer().size(), RelayBuffer::kSize);
    }
    EXPECT_EQ(RelayBuffer::held(), base + 1);
  }
  EXPECT_EQ(RelayBuffer::held(), base);
}

TEST(RelayBufferTest, AGivenBackBufferIsReusedByTheNextLeaseOnTheThread) {
  const char* first = nullptr;
  {
    RelayBuffer a;
    first = a.data();
  }
  RelayBuffer b;
  EXPECT_EQ(b.data(), first);
}

TEST(RelayBufferTest, GivenBackOnAnotherThreadAndBeyondTheFreeListCap) {
  size_t base = RelayBuffer::held();
  std::vector<std::optional<RelayBuffer>> leases(RelayBuffer::kMaxFreePerThread * 2);
  for (auto& l : leases) l.emplace();
  EXPECT_EQ(RelayBuffer::held(), base + leases.size());
  // A pump may resume on another thread of the pool than the one it leased on.
  std::thread([&] {
    for (auto& l : leases) l.reset();
  }).join();
  EXPECT_EQ(RelayBuffer::held(), base);
}

}  // namespace
}  // namespace tollgate::proxy
