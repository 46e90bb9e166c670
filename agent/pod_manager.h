#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/netns.h"
#include "agent/redirect.h"
#include "identity/svid_manager.h"
#include "common/error.h"
#include "proto/enroll.pb.h"
#include "proxy/outbound_listener.h"
#include "proxy/proxy_context.h"

namespace tollgate::agent {

// Error codes in EnrollReply.code (CNI reserves 1-99).
inline constexpr uint32_t kCodeBadRequest = 100;
inline constexpr uint32_t kCodeNetns = 101;
inline constexpr uint32_t kCodeRules = 102;
inline constexpr uint32_t kCodeListener = 103;
inline constexpr uint32_t kCodeNotReady = 104;
inline constexpr uint32_t kCodeCheckFailed = 105;
inline constexpr uint32_t kCodeState = 106;

// The enrolled pods: their netns, redirect rules and capture listeners, and the state under
// <run-dir> that lets a restarted agent adopt them again:
//   <run-dir>/pods/<ns>_<name>.pb   the EnrollRequest
//   <run-dir>/netns/<ns>_<name>     a bind mount of the pod's netns
class PodManager {
 public:
  PodManager(proxy::ProxyInputs& inputs, std::string runDir);
  ~PodManager();

  Status init();  // creates the state directories
  // The redirect every pod gets. When its rules change (mark, resolvers), every enrolled pod's
  // rules are reinstalled. nullptr: not ready (ADD fails).
  void setRedirect(std::shared_ptr<const NftRedirect> redirect);
  // Where enrolled pods' service accounts are recorded so their SVIDs can be issued (nullptr:
  // no CA configured). Set before pods are enrolled or re-adopted.
  void setSvids(identity::SvidManager* svids) { svids_ = svids; }
  // Re-reads every enrolled pod's service account (after a config reload changed Pod objects).
  void syncIdentities();

  // Handles one request; `netnsFd` (owned, -1 when none) came with it by SCM_RIGHTS.
  enroll::EnrollReply handle(const enroll::EnrollRequest& req, int netnsFd);

  // Adopts the pods recorded under <run-dir> (agent restart): reinstalls drifted rules,
  // re-creates listeners, forgets pods whose netns is gone.
  void readopt();
  // Stops every listener (agent shutdown); rules stay, so the pods stay closed.
  void shutdown();

  size_t size() const;
  bool enrolled(const std::string& ns, const std::string& name) const;
  // Per-pod nft counters and connection gauges, as Prometheus text.
  std::string collectMetrics() const;

  // One drifted pod found by reconcileAll().
  struct Repair {
    std::string pod;      // "<ns>/<name>"
    std::string summary;  // what differed
    bool repaired = false;
    std::string error;  // why the repair failed
  };
  // Verifies every enrolled pod's rules and listeners and repairs what drifted (reinstall,
  // re-create), all under the enrollment lock. Returns only the pods that had drifted.
  // Defined in agent/reconciler.cc.
  std::vector<Repair> reconcileAll();

  // "<ns>_<name>" after validating both as DNS names (they become file names).
  static Result<std::string> stateKey(const enroll::PodRef& pod);

 private:
  struct Pod {
    enroll::EnrollRequest request;
    std::shared_ptr<Netns> netns;
    std::shared_ptr<proxy::OutboundListener> listener;
  };

  enroll::EnrollReply add(const enroll::EnrollRequest& req, int netnsFd);
  enroll::EnrollReply del(const enroll::EnrollRequest& req);
  enroll::EnrollReply check(const enroll::EnrollRequest& req);
  Result<std::shared_ptr<proxy::OutboundListener>> startListener(const enroll::EnrollRequest& req,
                                                                 std::shared_ptr<Netns> netns);
  Status persist(const std::string& key, const enroll::EnrollRequest& req, const Netns& netns);
  void forgetState(const std::string& key);
  // The pod's service account: the snapshot's Pod object, else the request's field, else
  // "default" (the same order the proxy's sessions use).
  std::string serviceAccountOf(const enroll::EnrollRequest& req) const;
  void addIdentity(const enroll::EnrollRequest& req);
  void removeIdentity(const enroll::EnrollRequest& req);

  proxy::ProxyInputs& inputs_;
  std::string runDir_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Pod>> pods_;
  std::shared_ptr<const NftRedirect> redirect_;
  identity::SvidManager* svids_ = nullptr;
};

}  // namespace tollgate::agent
