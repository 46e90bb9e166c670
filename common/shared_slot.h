#pragma once
// SharedSlot<T>: a shared_ptr that one thread replaces while others take copies of it.
//
// Not std::atomic<std::shared_ptr<T>>: libstdc++ 12's version unlocks after a load() with
// memory_order_relaxed, so a later store's write of the pointer is not ordered after a reader's
// read of it (a data race by the C++ memory model; ThreadSanitizer reports it on every reload
// under load). Its lock is a spin lock on the control block pointer anyway: a mutex held for one
// reference-count increment costs the same and is correct.
#include <memory>
#include <mutex>
#include <utility>

namespace tollgate {

template <typename T>
class SharedSlot {
 public:
  SharedSlot() = default;
  explicit SharedSlot(std::shared_ptr<T> p) : p_(std::move(p)) {}
  SharedSlot(const SharedSlot&) = delete;
  SharedSlot& operator=(const SharedSlot&) = delete;

  std::shared_ptr<T> load() const {
    std::lock_guard lock(mu_);
    return p_;
  }

  // The previous value is released after the lock (its destructor may take long).
  void store(std::shared_ptr<T> p) {
    std::shared_ptr<T> previous;
    {
      std::lock_guard lock(mu_);
      previous = std::exchange(p_, std::move(p));
    }
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<T> p_;
};

}  // namespace tollgate
