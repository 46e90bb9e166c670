#pragma once

#include <chrono>
#include <cstdint>

namespace tollgate::kube {

// Exponential backoff with jitter for reconnecting to the API server: the n-th delay is
// min(max, initial * 2^n) scaled by a random factor in [1 - jitter, 1], so a fleet of agents that
// lost the API server together does not return in one burst. reset() after a success.
class Backoff {
 public:
  using Duration = std::chrono::milliseconds;
  Backoff(Duration initial, Duration max, double jitter = 0.5, uint64_t seed = 0);

  Duration next();
  void reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

  Duration initial() const { return initial_; }
  Duration max() const { return max_; }

 private:
  Duration initial_, max_;
  double jitter_;
  int attempt_ = 0;
  uint64_t state_;
};

}  // namespace tollgate::kube
