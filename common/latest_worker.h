#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

namespace tollgate {

// Runs `apply` on a thread of its own for the newest value handed to post(). A value posted while
// an earlier one waits replaces it: each value is a whole state (a config), so only the newest
// matters, and a burst of posts costs one apply. post() never blocks on apply, so the thread that
// posts (an io thread carrying connections) never does the work itself.
template <class T>
class LatestWorker {
 public:
  explicit LatestWorker(std::function<void(T)> apply) : apply_(std::move(apply)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~LatestWorker() { stop(); }
  LatestWorker(const LatestWorker&) = delete;
  LatestWorker& operator=(const LatestWorker&) = delete;

  // False once stop() was called: the value is dropped.
  bool post(T value) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return false;
      if (pending_) ++replaced_;
      pending_ = std::move(value);
    }
    cv_.notify_one();
    return true;
  }
  // Waits for the apply in progress, drops a pending value, joins. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      pending_.reset();
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  // Values replaced by a newer one before they were applied.
  uint64_t replaced() const {
    std::lock_guard lock(mu_);
    return replaced_;
  }

 private:
  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || pending_; });
      if (stopping_) return;
      T value = std::move(*pending_);
      pending_.reset();
      lock.unlock();
      apply_(std::move(value));
      lock.lock();
    }
  }

  std::function<void(T)> apply_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<T> pending_;
  bool stopping_ = false;
  uint64_t replaced_ = 0;
  std::thread thread_;
};

}  // namespace tollgate
