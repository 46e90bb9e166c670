#pragma once

#include <atomic>
#include <cstddef>

#include "proxy/asio.h"

namespace tollgate::proxy {

// A 16 KiB relay buffer leased only while bytes are in flight: a pump waits for readability
// without one, leases one for the read and the write that follows, and gives it back before it
// waits again, so an idle session holds none. Given-back buffers go to a small free list of the
// thread that gives them back (a few per thread), so a busy relay does not allocate per read.
class RelayBuffer {
 public:
  static constexpr size_t kSize = 16 * 1024;
  // Buffers kept per thread for reuse; more are freed.
  static constexpr size_t kMaxFreePerThread = 8;

  RelayBuffer();
  ~RelayBuffer();
  RelayBuffer(const RelayBuffer&) = delete;
  RelayBuffer& operator=(const RelayBuffer&) = delete;

  char* data() { return data_; }
  static constexpr size_t size() { return kSize; }
  asio::mutable_buffer buffer() { return asio::buffer(data_, kSize); }

  // Buffers leased now, all threads (tollgate_relay_buffers_held).
  static size_t held() { return held_.load(std::memory_order_relaxed); }

 private:
  char* data_;
  static std::atomic<size_t> held_;
};

}  // namespace tollgate::proxy
