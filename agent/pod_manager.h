#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <chrono>
#include <string>
#include <vector>

#include "agent/netns.h"
#include "agent/redirect.h"
#include "identity/svid_manager.h"
#include "common/error.h"
#include "proto/admin.pb.h"
#include "proto/enroll.pb.h"
#include "proxy/dns_cache.h"
#include "proxy/dns_proxy.h"
#include "proxy/outbound_listener.h"
#include "proxy/pod_dns_table.h"
#include "proxy/proxy_context.h"
#include "proxy/quic_telemetry.h"

namespace tollgate::agent {

// Error codes in EnrollReply.code (CNI reserves 1-99).
inline constexpr uint32_t kCodeBadRequest = 100;
inline constexpr uint32_t kCodeNetns = 101;
inline constexpr uint32_t kCodeRules = 102;
inline constexpr uint32_t kCodeListener = 103;
inline constexpr uint32_t kCodeNotReady = 104;
inline constexpr uint32_t kCodeCheckFailed = 105;
inline constexpr uint32_t kCodeState = 106;
inline constexpr uint32_t kCodeUnknownPod = 107;

// The enrolled pods: their netns, redirect rules and capture listeners, and the state under
// <run-dir> that lets a restarted agent adopt them again:
//   <run-dir>/pods/<ns>_<name>.pb   the EnrollRequest
//   <run-dir>/netns/<ns>_<name>     a bind mount of the pod's netns
class PodManager {
 public:
  PodManager(proxy::ProxyInputs& inputs, std::string runDir);
  ~PodManager();

  Status init();  // creates the state directories
  // The redirect every pod gets. When what it installs changes (mark, resolvers, or the mode
  // itself), every enrolled pod gets the new one; a mode change installs the new mode before it
  // removes the old, so no pod is ever open in between. nullptr: not ready (ADD fails).
  void setRedirect(std::shared_ptr<const RedirectInstaller> redirect);
  // Where enrolled pods' service accounts are recorded so their SVIDs can be issued (nullptr:
  // no CA configured). Set before pods are enrolled or re-adopted.
  void setSvids(identity::SvidManager* svids) { svids_ = svids; }
  // --config-source kubernetes: an ADD is refused unless the snapshot holds the Pod object
  // (the API server's Pods of this node), waited for up to `wait` (the watch may trail the
  // runtime's CNI call). What the CNI plugin claims about a pod never enrolls it by itself.
  void requirePodObjects(std::chrono::milliseconds wait) { requirePodWait_ = wait; }
  // Re-reads every enrolled pod's service account (after a config reload changed Pod objects).
  void syncIdentities();

  // Handles one request; `netnsFd` (owned, -1 when none) came with it by SCM_RIGHTS.
  enroll::EnrollReply handle(const enroll::EnrollRequest& req, int netnsFd);

  // Adopts the pods recorded under <run-dir> (agent restart): reinstalls drifted rules,
  // re-creates listeners, forgets pods whose netns is gone.
  void readopt();
  // Stops every listener (agent shutdown); rules stay, so the pods stay closed. Without
  // `abortSessions` open connections carry on (handoff: the old agent drains them).
  void shutdown(bool abortSessions = true);
  // Open proxied connections over all pods (the drain after a handoff waits for 0).
  int64_t activeConnections() const;

  size_t size() const;
  bool enrolled(const std::string& ns, const std::string& name) const;
  // Per-pod nft counters and connection gauges, as Prometheus text.
  std::string collectMetrics() const;

  // tollgatectl pods: every enrolled pod (of namespace `ns`; all when empty), its rules verified
  // and its drop counters read now. Runs nft in each pod netns outside the lock.
  std::vector<admin::PodStatus> describe(std::string_view ns) const;
  struct RulesView {
    std::optional<std::string> installed;  // nullopt: nothing installed
    std::string expected;
    Drift drift;
  };
  // tollgatectl conns: the open connections of ns/name (every pod when both are empty); error
  // when a named pod is not enrolled.
  Result<std::vector<admin::ConnInfo>> connections(std::string_view ns, std::string_view name) const;
  // tollgatectl rules: error when ns/name is not enrolled.
  Result<RulesView> rulesOf(std::string_view ns, std::string_view name) const;

  // tollgatectl verify and rules: the pod's netns and the redirect its rules come from; error
  // when ns/name is not enrolled.
  struct VerifySubject {
    std::shared_ptr<Netns> netns;
    std::shared_ptr<const RedirectInstaller> redirect;  // null before the first config
    PodTarget target() const { return PodTarget(*netns, key, cgroup); }
    std::string key;
    std::string cgroup;
  };
  Result<VerifySubject> verifySubject(std::string_view ns, std::string_view name) const;

  // One drifted pod found by reconcileAll().
  struct Repair {
    std::string pod;      // "<ns>/<name>"
    std::string summary;  // what differed
    bool repaired = false;
    std::string error;  // why the repair failed
  };
  // Verifies every enrolled pod's rules and listeners and repairs what drifted (reinstall,
  // re-create), each pod under the enrollment lock (taken per pod, so ADDs are not held up for
  // a whole pass). Returns only the pods that had drifted.
  // Defined in agent/reconciler.cc.
  std::vector<Repair> reconcileAll();
  // Every enrolled pod's netns ("<ns>/<name>", handle), for the reconciler's nftables event
  // watch. Defined in agent/reconciler.cc.
  std::vector<std::pair<std::string, std::shared_ptr<Netns>>> enrolledNetns() const;

  // "<ns>_<name>" after validating both as DNS names (they become file names).
  static Result<std::string> stateKey(const enroll::PodRef& pod);

 private:
  struct Pod {
    enroll::EnrollRequest request;
    std::shared_ptr<Netns> netns;
    std::shared_ptr<proxy::OutboundListener> listener;
    // With ProxyOptions::dnsProxyPort / quicPort (null otherwise, or until re-created).
    std::shared_ptr<proxy::DnsProxy> dns;
    std::shared_ptr<proxy::QuicTelemetry> quic;

    PodTarget target(const std::string& key) const {
      return PodTarget(*netns, key, request.cgroup_path());
    }
  };

  enroll::EnrollReply add(const enroll::EnrollRequest& req, int netnsFd);
  enroll::EnrollReply del(const enroll::EnrollRequest& req);
  enroll::EnrollReply check(const enroll::EnrollRequest& req);
  Result<std::shared_ptr<proxy::OutboundListener>> startListener(const enroll::EnrollRequest& req,
                                                                 std::shared_ptr<Netns> netns);
  // Creates the pod's DNS proxy and QUIC telemetry where they are missing or closed (ports set
  // in ProxyOptions). Appends what had to be re-created to `recreated` when given.
  Status startDnsQuic(Pod& pod, std::vector<std::string>* recreated = nullptr);
  void closeDnsQuic(Pod& pod);
  // tollgate_dns_*_total{pod} and tollgate_quic_{attempts,events}_total{pod}; mu_ held.
  std::string dnsQuicMetricsLocked() const;
  // The pod's answer table, shared by its DNS proxy (writes) and listener (reads); one per
  // enrolled pod, kept across re-creations of either. Null without a DNS proxy.
  std::shared_ptr<proxy::PodDnsTable> dnsTableFor(const std::string& key);
  Status persist(const std::string& key, const enroll::EnrollRequest& req, const Netns& netns);
  void forgetState(const std::string& key);
  // Verifies the pod's redirect and reinstalls it on drift (logged with `why`); mu_ held,
  // redirect_ set.
  void repairLocked(const std::string& key, Pod& pod, std::string_view why);
  // The pod's service account: the snapshot's Pod object, else the request's field, else
  // "default" (the same order the proxy's sessions use).
  std::string serviceAccountOf(const enroll::EnrollRequest& req) const;
  bool havePodObject(const enroll::EnrollRequest& req) const;
  void addIdentity(const enroll::EnrollRequest& req);
  void removeIdentity(const enroll::EnrollRequest& req);

  proxy::ProxyInputs& inputs_;
  std::string runDir_;
  mutable std::mutex mu_;
  // One cache for every pod's DNS proxy (answers are not per pod; strict-mode decisions are
  // made before it). Declared before pods_ so that it outlives their proxies.
  proxy::DnsCache dnsCache_{proxy::DnsCache::Options{}};
  std::map<std::string, std::unique_ptr<Pod>> pods_;
  std::shared_ptr<const RedirectInstaller> redirect_;
  identity::SvidManager* svids_ = nullptr;
  std::map<std::string, std::shared_ptr<proxy::PodDnsTable>> dnsTables_;  // by state key
  std::optional<std::chrono::milliseconds> requirePodWait_;
};

}  // namespace tollgate::agent
