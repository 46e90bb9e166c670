#pragma once

#include <chrono>

namespace tollgate::identity {

// The wall clock, as a seam: certificate lifetimes and rotation are tested with a fake one.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
};

inline const Clock& systemClock() {
  static const SystemClock clock;
  return clock;
}

}  // namespace tollgate::identity
