#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "agent/pod_manager.h"
#include "proxy/event_journal.h"

namespace tollgate::agent {

// Keeps every enrolled pod the way enrollment left it. A pod is untrusted: with CAP_NET_ADMIN
// (or a runtime bug) its netns can lose the tollgate table or get a chain policy flipped to
// accept, and a listener can die. Every `interval` the reconciler verifies each pod's rules and
// listeners (PodManager::reconcileAll, under the enrollment lock, so it never races ADD/DEL and a
// CHECK sees either the drift or the repair, never a half-repaired pod) and repairs what drifted.
//
// Between timer passes it also listens for nftables changes in every enrolled pod's netns (a
// NETLINK_NETFILTER socket in group NFNLGRP_NFTABLES, created inside the netns): a change there
// brings the next pass forward to kEventDelay after it, so a deleted table is back in about a
// second instead of up to `interval`. The delay lets a burst of changes settle into one pass, and
// bounds what a pod can make the agent do by flooding changes to one pass per delay.
class Reconciler {
 public:
  struct PodCounts {
    uint64_t detected = 0;
    uint64_t repaired = 0;
    uint64_t repairFailed = 0;
  };

  static constexpr std::chrono::milliseconds kEventDelay{1000};

  // Drift found is also recorded in `events` (tollgatectl log) when not null.
  Reconciler(PodManager& pods, std::chrono::milliseconds interval,
             proxy::EventJournal* events = nullptr);
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
  // Summed over every pod this agent has seen.
  PodCounts totals() const;
  // Completed passes (timer or runOnce), to await a pass instead of sleeping.
  uint64_t passes() const;
  // Pods whose netns is watched for nftables changes (the set is refreshed about every second).
  size_t watchedPods() const;
  // tollgate_drift_detected_total, tollgate_drift_repaired_total and
  // tollgate_drift_repair_failed_total by pod, as Prometheus text.
  std::string collectMetrics() const;

 private:
  void loop();
  // One pass; a timer pass is skipped when paused.
  size_t pass(bool fromTimer);
  // Opens an nftables event socket in each newly enrolled pod's netns, closes those of pods that
  // are gone (loop thread only).
  void refreshWatches();
  void closeWatches();

  struct Watch {
    std::shared_ptr<Netns> netns;  // kept so a re-enrolled pod (new netns) gets a new socket
    int fd = -1;
  };

  PodManager& pods_;
  proxy::EventJournal* events_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  int wakeFd_ = -1;  // eventfd: stop() wakes the loop's poll
  bool stopping_ = false;
  bool paused_ = false;
  uint64_t passes_ = 0;
  std::map<std::string, PodCounts, std::less<>> counts_;
  std::mutex passMu_;                     // one pass at a time (timer vs runOnce)
  std::map<std::string, Watch> watches_;  // by pod, loop thread only
  size_t watchedCount_ = 0;               // watches_.size() for other threads, under mu_
  std::thread thread_;
};

}  // namespace tollgate::agent
