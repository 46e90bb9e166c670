#include "proxy/relay_buffer.h"

#include <memory>
#include <vector>

namespace tollgate::proxy {
namespace {

// This thread's given-back buffers; freed when the thread exits.
struct FreeList {
  std::vector<std::unique_ptr<char[]>> buffers;
};

FreeList& freeList() {
  thread_local FreeList list;
  return list;
}

}  // namespace

std::atomic<size_t> RelayBuffer::held_{0};

RelayBuffer::RelayBuffer() {
  auto& list = freeList().buffers;
  if (list.empty()) {
    data_ = new char[kSize];
  } else {
    data_ = list.back().release();
    list.pop_back();
  }
  held_.fetch_add(1, std::memory_order_relaxed);
}

RelayBuffer::~RelayBuffer() {
  held_.fetch_sub(1, std::memory_order_relaxed);
  auto& list = freeList().buffers;
  if (list.size() < kMaxFreePerThread) {
    list.emplace_back(data_);
  } else {
    delete[] data_;
  }
}

}  // namespace tollgate::proxy
