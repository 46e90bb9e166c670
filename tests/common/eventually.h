#pragma once

#include <chrono>
#include <thread>

namespace tollgate::tests {

// Polls `pred` until it holds: for an event the code under test causes on its own threads. The
// bound only catches a hang (a slow, shared machine just waits longer); false when it ran out.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds hang = std::chrono::seconds(60)) {
  auto until = std::chrono::steady_clock::now() + hang;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace tollgate::tests
