#include "identity/svid_manager.h"

#include <fmt/format.h>

#include <utility>

#include "identity/spiffe_id.h"

namespace tollgate::identity {

using std::chrono::system_clock;

namespace {
std::string key(std::string_view ns, std::string_view name) {
  return fmt::format("{}/{}", ns, name);
}
}  // namespace

SvidManager::SvidManager(std::shared_ptr<const CertificateAuthority> ca, std::string trustDomain,
                         const Clock& clock, std::chrono::seconds lifetime)
    : ca_(std::move(ca)),
      trustDomain_(std::move(trustDomain)),
      clock_(clock),
      lifetime_(lifetime) {}

Status SvidManager::addPod(std::string_view ns, std::string_view pod,
                           std::string_view serviceAccount) {
  auto id = spiffeId(trustDomain_, ns, serviceAccount);
  if (!id) return std::unexpected(id.error().wrap("identity of pod " + key(ns, pod)));
  std::string podKey = key(ns, pod);
  std::string account = key(ns, serviceAccount);
  std::lock_guard lock(mu_);
  auto it = podAccount_.find(podKey);
  if (it != podAccount_.end()) {
    if (it->second == account) return {};
    // The pod moved to another service account (a re-enrollment with new metadata).
    auto old = accounts_.find(it->second);
    if (old != accounts_.end() && --old->second.pods == 0) accounts_.erase(old);
    it->second = account;
  } else {
    podAccount_.emplace(podKey, account);
  }
  auto& acc = accounts_[account];
  acc.spiffeId = std::move(*id);
  ++acc.pods;
  return {};
}

void SvidManager::removePod(std::string_view ns, std::string_view pod) {
  std::lock_guard lock(mu_);
  auto it = podAccount_.find(key(ns, pod));
  if (it == podAccount_.end()) return;
  auto acc = accounts_.find(it->second);
  // Holders of the shared_ptr keep the SVID alive for their connections.
  if (acc != accounts_.end() && --acc->second.pods == 0) accounts_.erase(acc);
  podAccount_.erase(it);
}

Result<std::shared_ptr<const Svid>> SvidManager::svidFor(std::string_view ns, std::string_view sa) {
  std::string account = key(ns, sa);
  // Issuing under the lock costs a key generation (about a millisecond) once per account and
  // rotation, and guarantees two threads never issue twice for the same account.
  std::lock_guard lock(mu_);
  auto it = accounts_.find(account);
  if (it == accounts_.end()) return fail(fmt::format("no enrolled pod uses {}", account));
  Account& acc = it->second;
  auto now = clock_.now();
  if (acc.svid && now < acc.svid->notAfter) return acc.svid;
  auto svid = ca_->issueSvidAt(acc.spiffeId, lifetime_, now);
  if (!svid) return std::unexpected(svid.error());
  acc.svid = std::make_shared<const Svid>(std::move(*svid));
  return acc.svid;
}

bool SvidManager::needsRotation(system_clock::time_point now) const {
  std::lock_guard lock(mu_);
  for (const auto& [name, acc] : accounts_) {
    if (acc.svid && now >= acc.svid->rotateAt()) return true;
  }
  return false;
}

Status SvidManager::rotate(system_clock::time_point now) {
  std::lock_guard lock(mu_);
  std::string errors;
  for (auto& [name, acc] : accounts_) {
    if (!acc.svid || now < acc.svid->rotateAt()) continue;
    auto svid = ca_->issueSvidAt(acc.spiffeId, lifetime_, now);
    if (!svid) {
      errors += fmt::format("{}{}: {}", errors.empty() ? "" : "; ", name, svid.error().str());
      continue;
    }
    acc.svid = std::make_shared<const Svid>(std::move(*svid));
  }
  if (!errors.empty()) return fail("rotate SVIDs: " + errors);
  return {};
}

std::optional<system_clock::time_point> SvidManager::nextRotation() const {
  std::lock_guard lock(mu_);
  std::optional<system_clock::time_point> next;
  for (const auto& [name, acc] : accounts_) {
    if (acc.svid && (!next || acc.svid->rotateAt() < *next)) next = acc.svid->rotateAt();
  }
  return next;
}

std::vector<std::string> SvidManager::serviceAccounts() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, acc] : accounts_) out.push_back(name);
  return out;
}

size_t SvidManager::pods() const {
  std::lock_guard lock(mu_);
  return podAccount_.size();
}

std::vector<std::pair<std::string, std::shared_ptr<const Svid>>> SvidManager::issued() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::shared_ptr<const Svid>>> out;
  for (const auto& [sa, account] : accounts_) out.emplace_back(sa, account.svid);
  return out;
}

}  // namespace tollgate::identity
