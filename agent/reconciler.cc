#include "agent/reconciler.h"

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/metrics.h"

namespace tollgate::agent {
namespace {
constexpr std::string_view kLog = "reconcile";
}  // namespace

// Defined here rather than in pod_manager.cc: the drift logic belongs to the reconciler, but it
// needs the pod table and the enrollment lock.
std::vector<PodManager::Repair> PodManager::reconcileAll() {
  std::vector<Repair> out;
  std::lock_guard lock(mu_);
  if (!redirect_) return out;  // no config: nothing to compare against (ADD is refused too)
  for (auto& [key, pod] : pods_) {
    Repair r;
    r.pod = pod->request.pod().namespace_() + "/" + pod->request.pod().name();
    std::vector<std::string> drifted;
    std::vector<std::string> errors;

    auto drift = redirect_->verify(*pod->netns);
    if (!drift || !drift->ok()) {
      drifted.push_back(drift ? "rules: " + drift->summary()
                              : "rules unreadable: " + drift.error().str());
      if (auto st = redirect_->install(*pod->netns); !st) {
        errors.push_back("reinstall rules: " + st.error().str());
      } else if (auto again = redirect_->verify(*pod->netns); !again || !again->ok()) {
        // Installed but still not as expected: count it as a failure, never as repaired.
        errors.push_back("rules still drifted after reinstall: " +
                         (again ? again->summary() : again.error().str()));
      }
    }

    if (!pod->listener || !pod->listener->listening() || pod->listener->listenerCount() == 0) {
      drifted.push_back("capture listeners are not up");
      if (pod->listener) pod->listener->close(true);
      if (auto l = startListener(pod->request, pod->netns); !l) {
        errors.push_back("re-create listeners: " + l.error().str());
      } else {
        pod->listener = *l;
      }
    }

    if (drifted.empty()) continue;
    r.summary = fmt::format("{}", fmt::join(drifted, "; "));
    r.repaired = errors.empty();
    r.error = fmt::format("{}", fmt::join(errors, "; "));
    out.push_back(std::move(r));
  }
  return out;
}

Reconciler::Reconciler(PodManager& pods, std::chrono::milliseconds interval)
    : pods_(pods), interval_(interval) {}

Reconciler::~Reconciler() { stop(); }

void Reconciler::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { loop(); });
}

void Reconciler::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Reconciler::setPaused(bool paused) {
  {
    std::lock_guard lock(mu_);
    paused_ = paused;
  }
  std::lock_guard wait(passMu_);  // a pass that started before the flag was set has ended
}

void Reconciler::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, interval_, [this] { return stopping_; });
    if (stopping_) break;
    if (paused_) continue;
    lock.unlock();
    pass(true);
    lock.lock();
  }
}

size_t Reconciler::runOnce() { return pass(false); }

size_t Reconciler::pass(bool fromTimer) {
  std::lock_guard one(passMu_);
  if (fromTimer) {
    std::lock_guard lock(mu_);
    if (paused_ || stopping_) return 0;
  }
  auto repairs = pods_.reconcileAll();
  for (const auto& r : repairs) {
    if (r.repaired) {
      log::warn(kLog, "pod {}: drift detected ({}): repaired", r.pod, r.summary);
    } else {
      log::error(kLog, "pod {}: drift detected ({}): repair failed: {}", r.pod, r.summary,
                 r.error);
    }
  }
  std::lock_guard lock(mu_);
  for (const auto& r : repairs) {
    auto it = counts_.find(r.pod);
    if (it == counts_.end()) it = counts_.emplace(r.pod, PodCounts{}).first;
    it->second.detected++;
    (r.repaired ? it->second.repaired : it->second.repairFailed)++;
  }
  passes_++;
  return repairs.size();
}

Reconciler::PodCounts Reconciler::counts(std::string_view pod) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(pod);
  return it == counts_.end() ? PodCounts{} : it->second;
}

uint64_t Reconciler::passes() const {
  std::lock_guard lock(mu_);
  return passes_;
}

std::string Reconciler::collectMetrics() const {
  std::string detected =
      "# HELP tollgate_drift_detected_total Pods found with drifted rules or listeners.\n"
      "# TYPE tollgate_drift_detected_total counter\n";
  std::string repaired =
      "# HELP tollgate_drift_repaired_total Drifts repaired (rules reinstalled, listeners "
      "re-created).\n"
      "# TYPE tollgate_drift_repaired_total counter\n";
  std::string failed =
      "# HELP tollgate_drift_repair_failed_total Drifts whose repair failed (the pod is closed "
      "or open; see the log).\n"
      "# TYPE tollgate_drift_repair_failed_total counter\n";
  std::lock_guard lock(mu_);
  for (const auto& [pod, c] : counts_) {
    detected += proxy::formatSample("tollgate_drift_detected_total", {{"pod", pod}},
                                    static_cast<double>(c.detected));
    repaired += proxy::formatSample("tollgate_drift_repaired_total", {{"pod", pod}},
                                    static_cast<double>(c.repaired));
    failed += proxy::formatSample("tollgate_drift_repair_failed_total", {{"pod", pod}},
                                  static_cast<double>(c.repairFailed));
  }
  return detected + repaired + failed;
}

}  // namespace tollgate::agent
