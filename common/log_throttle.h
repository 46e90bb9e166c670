#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace tollgate::log {

// At most one log line per period for an event that an attacker can repeat at will (a refused
// connection, a dropped query): the first occurrence logs at once, later ones within the period
// are only counted, and the next line that is let through reports how many were held back.
// Thread-safe without a lock.
class Throttle {
 public:
  explicit Throttle(std::chrono::milliseconds period = std::chrono::seconds(1)) : period_(period) {}

  // True when this occurrence may log; *suppressed gets how many were held back since the last
  // line that was let through.
  bool allow(uint64_t* suppressed) {
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    int64_t last = last_.load(std::memory_order_relaxed);
    if (last != kNever && now - last < period_.count()) {
      held_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (!last_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      held_.fetch_add(1, std::memory_order_relaxed);  // another thread logs this period
      return false;
    }
    *suppressed = held_.exchange(0, std::memory_order_relaxed);
    return true;
  }

 private:
  static constexpr int64_t kNever = INT64_MIN;
  std::chrono::milliseconds period_;
  std::atomic<int64_t> last_{kNever};
  std::atomic<uint64_t> held_{0};
};

}  // namespace tollgate::log
