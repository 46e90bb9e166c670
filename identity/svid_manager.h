#pragma once

// One SVID per service account of the pods enrolled on this node. Issued on first use, rotated
// past half-life; a replaced SVID is only dropped, never revoked, so connections already using it
// keep working until it expires. Thread-safe: the proxy's threads ask for SVIDs while the agent
// enrolls pods and rotates.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "identity/certificate_authority.h"
#include "identity/clock.h"
#include "identity/svid.h"
#include "common/error.h"

namespace tollgate::identity {

class SvidManager {
 public:
  SvidManager(std::shared_ptr<const CertificateAuthority> ca, std::string trustDomain,
              const Clock& clock, std::chrono::seconds lifetime = kDefaultSvidLifetime);

  // Records that pod ns/name (enrolled on this node) runs as ns/serviceAccount. Idempotent; a
  // pod re-added with another service account moves to it. Errors when the names cannot form a
  // SPIFFE ID.
  Status addPod(std::string_view ns, std::string_view pod, std::string_view serviceAccount);
  // Forgets the pod; the last pod of a service account takes its SVID out of the manager.
  void removePod(std::string_view ns, std::string_view pod);

  // The current SVID of ns/sa, issued now if it has none (or only an expired one). Error
  // "no enrolled pod uses ns/sa" when no enrolled pod runs as it: a node only holds the
  // identities of its own workloads.
  Result<std::shared_ptr<const Svid>> svidFor(std::string_view ns, std::string_view sa);

  // True when some issued SVID is at or past its half-life at `now`.
  bool needsRotation(std::chrono::system_clock::time_point now) const;
  // Re-issues every SVID at or past its half-life. On failure the old SVID stays in place (it
  // is still valid) and the error names every service account that failed.
  Status rotate(std::chrono::system_clock::time_point now);
  // The earliest rotateAt() among issued SVIDs (for the agent's timer); none when nothing issued.
  std::optional<std::chrono::system_clock::time_point> nextRotation() const;

  std::vector<std::string> serviceAccounts() const;  // "ns/sa" with at least one pod
  // Every service account with at least one pod and its current SVID (null: not issued yet,
  // it is issued on the first gateway flow).
  std::vector<std::pair<std::string, std::shared_ptr<const Svid>>> issued() const;
  size_t pods() const;

 private:
  struct Account {
    std::string spiffeId;
    size_t pods = 0;
    std::shared_ptr<const Svid> svid;  // null until first use
  };

  std::shared_ptr<const CertificateAuthority> ca_;
  std::string trustDomain_;
  const Clock& clock_;
  std::chrono::seconds lifetime_;

  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> podAccount_;  // "ns/pod" -> "ns/sa"
  std::map<std::string, Account, std::less<>> accounts_;        // "ns/sa"
};

}  // namespace tollgate::identity
