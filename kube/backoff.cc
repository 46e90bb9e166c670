#include "kube/backoff.h"

#include <algorithm>
#include <random>

namespace tollgate::kube {

Backoff::Backoff(Duration initial, Duration max, double jitter, uint64_t seed)
    : initial_(std::max(initial, Duration(1))),
      max_(std::max(max, initial_)),
      jitter_(std::clamp(jitter, 0.0, 1.0)),
      state_(seed != 0 ? seed : std::random_device{}() | 1) {}

Backoff::Duration Backoff::next() {
  double base = static_cast<double>(initial_.count());
  for (int i = 0; i < attempt_ && base < static_cast<double>(max_.count()); ++i) base *= 2;
  base = std::min(base, static_cast<double>(max_.count()));
  ++attempt_;
  // xorshift64*: no shared generator, no lock.
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  double u = static_cast<double>((state_ * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
  auto ms = static_cast<int64_t>(base * (1.0 - jitter_ * u));
  return Duration(std::max<int64_t>(ms, 1));
}

}  // namespace tollgate::kube
