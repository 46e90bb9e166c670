#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/shared_slot.h"
#include "policy/model.h"
#include "policy/snapshot.h"
#include "proxy/asio.h"
#include "proxy/socket_util.h"

namespace tollgate::proxy {

class Metrics;
class AccessLog;
class Resolver;
class TunnelPool;
class SocketRegistry;
class ConnectionBudget;
class EventJournal;

struct ProxyOptions {
  uint16_t outboundPort = 15001;
  // Ports of the proxy itself inside a pod netns: a flow whose original destination is one of
  // these on loopback is a loop and is refused.
  std::vector<uint16_t> ownPorts = {15001, 15053};
  // Per-pod DNS proxy (udp/tcp 53 to any address is redirected here, 853 dropped) and QUIC
  // telemetry (udp/443 redirected to a read-only socket). 0: not created, and the pod gets the
  // older rules (DNS allowed to the resolvers, udp/443 dropped in the filter).
  uint16_t dnsProxyPort = 15053;
  uint16_t quicPort = 15443;
  std::chrono::milliseconds sniffTimeout{5000};
  size_t sniffMaxBytes = 16 * 1024;
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds idleTimeout{300 * 1000};
  // Open connections one pod may hold; over it new ones are reset (connection_limit). The
  // node-wide limit is ProxyInputs::budget.
  size_t maxConnectionsPerPod = 1024;
  bool splice = true;  // splice() plaintext relays that are not re-inspected
  // Where upstream sockets of external routes (Direct, Gateway) are created. true: in the
  // proxy's own (node) netns, because the host fence drops traffic from pod interfaces to
  // outside the cluster CIDRs (the gateway tunnel will be the only way out); false: in the pod
  // netns like in-cluster flows. In-cluster flows always leave from the pod netns so that the
  // destination sees the pod's address.
  bool externalFromNode = true;
};

// The current compiled config. Reloads swap it atomically; open sessions re-check their decision
// against each new one (TollgateConfig.revocation), through the observers.
class SnapshotHolder {
 public:
  using Observer = std::function<void()>;

  policy::SnapshotPtr load() const { return current_.load(); }
  // Swaps the snapshot, then calls every live observer on this thread (outside the lock, so an
  // observer may be the last owner of itself). Observers read the snapshot with load(): two
  // racing stores cannot leave anyone with the older one.
  void store(policy::SnapshotPtr s) {
    current_.store(std::move(s));
    {
      // Taken so that a waiter between its check and its wait cannot miss this store.
      std::lock_guard lock(waitMu_);
    }
    stored_.notify_all();
    std::vector<std::pair<std::shared_ptr<const void>, Observer>> live;
    {
      std::lock_guard lock(mu_);
      std::erase_if(observers_, [](const auto& o) { return o.first.expired(); });
      for (const auto& [owner, fn] : observers_) {
        if (auto p = owner.lock()) live.emplace_back(std::move(p), fn);
      }
    }
    for (const auto& [owner, fn] : live) fn();
  }
  // Blocks until `pred` holds for the current snapshot (checked now and after each store()) or
  // `deadline` passes; false then. No snapshot counts as not holding.
  template <class Pred>
  bool waitFor(Pred pred, std::chrono::steady_clock::time_point deadline) const {
    std::unique_lock lock(waitMu_);
    return stored_.wait_until(lock, deadline, [&] {
      auto s = load();
      return s && pred(*s);
    });
  }
  // Calls `fn` after every store() for as long as `owner` lives (no unsubscribe needed).
  void observe(std::weak_ptr<const void> owner, Observer fn) {
    std::lock_guard lock(mu_);
    observers_.emplace_back(std::move(owner), std::move(fn));
  }

 private:
  SharedSlot<const policy::Snapshot> current_;
  std::mutex mu_;
  std::vector<std::pair<std::weak_ptr<const void>, Observer>> observers_;
  mutable std::mutex waitMu_;
  mutable std::condition_variable stored_;
};

// Everything a listener and its sessions need, passed by reference (ztunnel's ProxyInputs).
struct ProxyInputs {
  asio::io_context& io;
  ProxyOptions options;
  SnapshotHolder& snapshots;
  Metrics& metrics;
  AccessLog& accessLog;
  Resolver& resolver;
  // Gateway routes go through these tunnels; null (no CA configured): they fail closed with
  // gateway_unavailable. Nothing ever falls back to a direct connection.
  TunnelPool* tunnels = nullptr;
  // Where every socket that must outlive this agent process is obtained and recorded (listener
  // handoff, proxy/socket_registry.h); null: sockets are created directly.
  SocketRegistry* sockets = nullptr;
  // The node-wide connection limit shared by all pods (node_connection_limit); null: none (the
  // agent always sets one).
  ConnectionBudget* budget = nullptr;
  // Where connections, refused DNS names and QUIC attempts are recorded for `tollgatectl log`
  // and `learn`; null: nowhere.
  EventJournal* events = nullptr;
  // Where a connection accepted on a capture listener was going. Null: SO_ORIGINAL_DST (the
  // nftables mode's REDIRECT, read from conntrack); the eBPF mode answers from its redirect's
  // record (agent/bpf_redirect.h). Called once per accepted connection, with the address it
  // was accepted on (the caller has it already).
  std::function<Result<Endpoint>(int fd, const Endpoint& local)> originalDst;
  // Where a datagram the QUIC telemetry socket `fd` received from `from` (a pod socket) was going
  // before the redirect sent it there. Null or an error: the pod netns's conntrack table (the
  // nftables mode's REDIRECT); the eBPF mode answers from what its programs filed
  // (agent/bpf_redirect.h).
  std::function<Result<Endpoint>(int fd, const Endpoint& from)> quicOriginalDst;

  Result<Endpoint> originalDestination(int fd, const Endpoint& local) const {
    if (originalDst) return originalDst(fd, local);
    return proxy::originalDestination(fd, local.ip.isV4() ? AF_INET : AF_INET6);
  }
};

// The pod a listener serves, as enrolled. Labels and service account here are the fallback when
// the snapshot has no Pod object for it.
struct PodInfo {
  std::string ns;
  std::string name;
  std::string uid;
  policy::Labels labels;
  std::string serviceAccount = "default";
  std::vector<std::string> ips;
  uint32_t mark = 0x7467;  // SO_MARK on the proxy's upstream sockets in this pod's netns

  std::string key() const { return ns + "/" + name; }
};

// Runs fn on a thread inside the pod's netns and returns the fd it created (agent::Netns::runFd).
// The seam through which the proxy creates every socket that must live in a pod netns.
using NetnsRunner = std::function<Result<int>(const std::function<Result<int>()>&)>;

// spiffe://<trust-domain>/ns/<ns>/sa/<sa>
std::string spiffeId(std::string_view trustDomain, std::string_view ns, std::string_view sa);

}  // namespace tollgate::proxy
