#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "agent/pod_manager.h"

namespace tollgate::agent {

// Keeps every enrolled pod the way enrollment left it. A pod is untrusted: with CAP_NET_ADMIN
// (or a runtime bug) its netns can lose the tollgate table or get a chain policy flipped to
// accept, and a listener can die. Every `interval` the reconciler verifies each pod's rules and
// listeners (PodManager::reconcileAll, under the enrollment lock, so it never races ADD/DEL and a
// CHECK sees either the drift or the repair, never a half-repaired pod) and repairs what drifted.
class Reconciler {
 public:
  struct PodCounts {
    uint64_t detected = 0;
    uint64_t repaired = 0;
    uint64_t repairFailed = 0;
  };

  Reconciler(PodManager& pods, std::chrono::milliseconds interval);
  ~Reconciler();
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Starts the timer thread; stop() joins it (also done by the destructor).
  void start();
  void stop();

  // One pass now, on the caller's thread; returns the number of pods that had drifted.
  size_t runOnce();

  // While paused, timer passes are skipped (runOnce() still works). Lets a test or an operator
  // observe drift before it is repaired. setPaused(true) returns after a pass in flight ended.
  void setPaused(bool paused);

  // Per pod ("<ns>/<name>"); zeros for a pod that never drifted.
  PodCounts counts(std::string_view pod) const;
  // Completed passes (timer or runOnce), to await a pass instead of sleeping.
  uint64_t passes() const;
  // tollgate_drift_detected_total, tollgate_drift_repaired_total and
  // tollgate_drift_repair_failed_total by pod, as Prometheus text.
  std::string collectMetrics() const;

 private:
  void loop();
  // One pass; a timer pass is skipped when paused.
  size_t pass(bool fromTimer);

  PodManager& pods_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool paused_ = false;
  uint64_t passes_ = 0;
  std::map<std::string, PodCounts, std::less<>> counts_;
  std::mutex passMu_;  // one pass at a time (timer vs runOnce)
  std::thread thread_;
};

}  // namespace tollgate::agent
