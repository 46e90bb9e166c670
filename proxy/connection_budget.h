#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tollgate::proxy {

// The node-wide connection limit shared by every pod's listener (ProxyInputs::budget). It keeps
// the agent below its file-descriptor limit (each proxied connection holds two) without letting
// one pod starve the others: when the node is at its limit, a new connection is refused only for
// a pod already holding at least its fair share (limit / enrolled pods); a pod below its share is
// still admitted. So a flood from some pods never locks a quiet pod out, and the total stays
// below 2 x limit (the admitted-over-limit connections come from pods under their share, whose
// shares add up to the limit).
class ConnectionBudget {
 public:
  explicit ConnectionBudget(size_t maxPerNode) : max_(maxPerNode) {}

  size_t limit() const { return max_; }
  size_t active() const { return active_.load(); }
  size_t pods() const { return pods_.load(); }
  size_t fairShare() const { return std::max<size_t>(1, max_ / std::max<size_t>(1, pods_.load())); }

  void podAdded() { pods_++; }
  void podRemoved() { pods_--; }

  // Takes one connection for a pod that holds `podActive` open ones; false: refused (the node
  // is at its limit and this pod has its share). A true must be paired with release().
  bool acquire(size_t podActive) {
    size_t now = active_.fetch_add(1) + 1;
    if (now > max_ && podActive >= fairShare()) {
      active_.fetch_sub(1);
      return false;
    }
    return true;
  }
  void release() { active_.fetch_sub(1); }

 private:
  size_t max_;
  std::atomic<size_t> active_{0};
  std::atomic<size_t> pods_{0};
};

}  // namespace tollgate::proxy
