#include "agent/reconciler.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "agent/memory.h"
#include "common/high_fd.h"
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
  // The enrollment lock is taken per pod, not for the whole pass: verifying a pod costs an nft
  // listing in its netns (milliseconds), and an ADD arriving during a pass over hundreds of pods
  // would otherwise wait for all of them. Each pod is still checked and repaired under the lock,
  // so a repair never races an ADD, DEL or CHECK of the same pod; a pod DELeted meanwhile is
  // skipped, one ADDed meanwhile waits for the next pass.
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    keys.reserve(pods_.size());
    for (const auto& entry : pods_) keys.push_back(entry.first);
  }
  for (const auto& key : keys) {
    std::lock_guard lock(mu_);
    if (!redirect_) return out;  // no config: nothing to compare against (ADD is refused too)
    auto it = pods_.find(key);
    if (it == pods_.end()) continue;
    auto& pod = it->second;
    Repair r;
    r.pod = pod->request.pod().namespace_() + "/" + pod->request.pod().name();
    std::vector<std::string> drifted;
    std::vector<std::string> errors;

    auto drift = redirect_->verify(pod->target(key));
    if (!drift || !drift->ok()) {
      drifted.push_back(drift ? "rules: " + drift->summary()
                              : "rules unreadable: " + drift.error().str());
      if (auto st = redirect_->install(pod->target(key)); !st) {
        errors.push_back("reinstall rules: " + st.error().str());
      } else if (auto again = redirect_->verify(pod->target(key)); !again || !again->ok()) {
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
    // The DNS proxy and QUIC socket (when configured): re-created when closed or missing.
    if (auto st = startDnsQuic(*pod, &drifted); !st) errors.push_back(st.error().str());

    if (drifted.empty()) continue;
    r.summary = fmt::format("{}", fmt::join(drifted, "; "));
    r.repaired = errors.empty();
    r.error = fmt::format("{}", fmt::join(errors, "; "));
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Netns>>> PodManager::enrolledNetns() const {
  std::vector<std::pair<std::string, std::shared_ptr<Netns>>> out;
  std::lock_guard lock(mu_);
  out.reserve(pods_.size());
  for (const auto& [key, pod] : pods_) {
    out.emplace_back(pod->request.pod().namespace_() + "/" + pod->request.pod().name(), pod->netns);
  }
  return out;
}

Reconciler::Reconciler(PodManager& pods, std::chrono::milliseconds interval,
                       proxy::EventJournal* events)
    : pods_(pods), events_(events), interval_(interval) {
  wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  // Without it stop() could not wake poll() early; the loop then polls in short slices.
  if (wakeFd_ < 0) log::warn(kLog, "eventfd: {}", std::strerror(errno));
}

Reconciler::~Reconciler() {
  stop();
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

void Reconciler::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  if (wakeFd_ >= 0) {
    uint64_t drain;
    [[maybe_unused]] auto n = ::read(wakeFd_, &drain, sizeof drain);  // a stop() before
  }
  thread_ = std::thread([this] { loop(); });
}

void Reconciler::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (wakeFd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wakeFd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
}

size_t Reconciler::watchedPods() const {
  std::lock_guard lock(mu_);
  return watchedCount_;
}

void Reconciler::refreshWatches() {
  auto current = pods_.enrolledNetns();
  std::map<std::string, std::shared_ptr<Netns>> want(current.begin(), current.end());
  for (auto it = watches_.begin(); it != watches_.end();) {
    auto w = want.find(it->first);
    if (w == want.end() || w->second != it->second.netns) {
      ::close(it->second.fd);  // also lets a deleted pod's netns go away
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [pod, netns] : want) {
    if (watches_.contains(pod) || !netns) continue;
    auto fd = netns->runFd([]() -> Result<int> {
      int s = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
      if (s < 0) return failErrno("netlink socket");
      sockaddr_nl addr{};
      addr.nl_family = AF_NETLINK;
      int group = NFNLGRP_NFTABLES;
      if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
          ::setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0) {
        auto e = failErrno("join NFNLGRP_NFTABLES");
        ::close(s);
        return std::unexpected(e.error());
      }
      return moveFdHigh(s);  // long-lived: keep it out of libnftables' select() range
    });
    if (!fd) {
      // The timer still covers this pod; only the early repair is lost.
      log::warn(kLog, "pod {}: no nftables event watch: {}", pod, fd.error().str());
      continue;
    }
    watches_.emplace(pod, Watch{netns, *fd});
  }
  std::lock_guard lock(mu_);
  watchedCount_ = watches_.size();
}

void Reconciler::closeWatches() {
  for (auto& [pod, w] : watches_) ::close(w.fd);
  watches_.clear();
  std::lock_guard lock(mu_);
  watchedCount_ = 0;
}

void Reconciler::setPaused(bool paused) {
  {
    std::lock_guard lock(mu_);
    paused_ = paused;
  }
  std::lock_guard wait(passMu_);  // a pass that started before the flag was set has ended
}

void Reconciler::loop() {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  // New pods get their event socket within this; it also bounds poll() without a wake fd.
  constexpr milliseconds kRefresh{1000};
  // Fixed rate, not fixed delay: a pass's own duration (it grows with the number of pods) must not
  // stretch the time a drift can stay unrepaired beyond the interval.
  auto next = Clock::now() + interval_;
  // A pass brought forward by an nftables event; max() when none is pending. (Not an optional:
  // GCC 12 warns maybe-uninitialized on it.)
  constexpr auto kNone = Clock::time_point::max();
  auto eventPass = kNone;
  Clock::time_point refreshed{};
  std::vector<pollfd> fds;
  std::vector<const std::string*> fdPods;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    auto now = Clock::now();
    if (now - refreshed >= kRefresh) {
      refreshWatches();
      refreshed = now;
    }
    auto due = std::min(next, eventPass);
    auto waitMs = std::chrono::duration_cast<milliseconds>(due - now).count();
    waitMs = std::clamp<long long>(waitMs, 0, kRefresh.count());
    fds.clear();
    fdPods.clear();
    fds.push_back({wakeFd_, POLLIN, 0});
    for (const auto& [pod, w] : watches_) {
      fds.push_back({w.fd, POLLIN, 0});
      fdPods.push_back(&pod);
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(waitMs));
    if (n > 0) {
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLERR))) continue;
        // Drain; an overrun (ENOBUFS) means events were lost, which is an event too.
        char buf[8192];
        for (;;) {
          ssize_t r = ::recv(fds[i].fd, buf, sizeof buf, 0);
          if (r > 0 || (r < 0 && errno == ENOBUFS)) continue;
          break;
        }
        if (eventPass == kNone) {
          eventPass = Clock::now() + kEventDelay;
          log::debug(kLog, "pod {}: nftables changed, verifying in {} ms", *fdPods[i - 1],
                     kEventDelay.count());
        }
      }
    }
    now = Clock::now();
    const bool timer = now >= next;
    const bool event = now >= eventPass;
    if (timer) {
      next += interval_;
      if (next <= now) next = now + interval_;
    }
    if (!timer && !event) continue;
    eventPass = kNone;
    pass(true);  // skipped while paused; the timer catches up after
  }
  closeWatches();
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
    if (events_) {
      proxy::Event e;
      e.kind = "drift";
      auto slash = r.pod.find('/');
      e.ns = r.pod.substr(0, slash);
      e.pod = slash == std::string::npos ? std::string() : r.pod.substr(slash + 1);
      e.text = r.repaired ? fmt::format("drift detected ({}): repaired", r.summary)
                          : fmt::format("drift detected ({}): repair failed: {}", r.summary, r.error);
      e.fields = {{"summary", r.summary}, {"repaired", r.repaired ? "true" : "false"}};
      if (!r.repaired) e.fields["error"] = r.error;
      events_->append(std::move(e));
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
  // Each pass runs libnftables on a helper thread per pod; give its freed pages back
  // (agent/memory.h) so the idle agent does not sit on them between passes.
  releaseFreedMemory();
  return repairs.size();
}

Reconciler::PodCounts Reconciler::counts(std::string_view pod) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(pod);
  return it == counts_.end() ? PodCounts{} : it->second;
}

Reconciler::PodCounts Reconciler::totals() const {
  std::lock_guard lock(mu_);
  PodCounts t;
  for (const auto& [pod, c] : counts_) {
    t.detected += c.detected;
    t.repaired += c.repaired;
    t.repairFailed += c.repairFailed;
  }
  return t;
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
