#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/log_throttle.h"
#include "proxy/access_log.h"
#include "proxy/asio.h"
#include "proxy/pod_dns_table.h"
#include "proxy/proxy_context.h"

namespace tollgate::proxy {

class Session;
class ConnectionBudget;

// The capture listeners of one enrolled pod: 127.0.0.1:<port> and [::1]:<port>, created inside
// the pod's netns (so the pod's source address is kept and nothing is reachable from outside),
// each accepted connection handed to a Session.
class OutboundListener : public std::enable_shared_from_this<OutboundListener> {
 public:
  // Creates the listening sockets in the pod netns through `runner`. The IPv6 listener is
  // optional only when IPv6 is unavailable in that netns (then the redirect drops IPv6 anyway).
  static Result<std::shared_ptr<OutboundListener>> create(ProxyInputs& inputs, PodInfo pod,
                                                          NetnsRunner runner);
  ~OutboundListener();

  void start();
  // Stops accepting and closes the listening sockets; with `closeSessions`, also resets the
  // pod's open connections.
  void close(bool closeSessions = false);

  bool listening() const { return listening_.load(); }
  size_t listenerCount() const { return acceptors_.size(); }
  int64_t activeConnections() const { return active_.load(); }
  const PodInfo& pod() const { return pod_; }
  const NetnsRunner& runner() const { return runner_; }
  ProxyInputs& inputs() { return inputs_; }
  // What the pod resolved through its DNS proxy (nullptr: no DNS proxy, flows are named only by
  // what they carry). Set before start().
  void setDnsTable(std::shared_ptr<PodDnsTable> table) { dnsTable_ = std::move(table); }
  const std::shared_ptr<PodDnsTable>& dnsTable() const { return dnsTable_; }

  // Asks every open session to re-check its decision against the current snapshot (called after
  // each snapshot swap; the checks run on the sessions' own strands).
  void revalidateSessions();
  // The open sessions' access records so far (tollgatectl conns), each read on its own strand;
  // waits at most `timeout` for all of them. Not for an io thread.
  std::vector<AccessRecord> describeSessions(std::chrono::milliseconds timeout);

  // Session bookkeeping (called by Session).
  void sessionStarted(const std::shared_ptr<Session>& s);
  void sessionEnded(Session* s);

 private:
  OutboundListener(ProxyInputs& inputs, PodInfo pod, NetnsRunner runner)
      : inputs_(inputs), pod_(std::move(pod)), runner_(std::move(runner)) {}
  awaitable<void> acceptLoop(asio::ip::tcp::acceptor* acceptor);
  // Counts, access-logs and arms the reset of a connection refused by a limit (the caller
  // closes it); the warning is logged at most once a second (a flood must not become a log
  // flood).
  void refuseOverLimit(int fd, std::string_view reason, size_t limit);

  ProxyInputs& inputs_;
  PodInfo pod_;
  NetnsRunner runner_;
  std::shared_ptr<PodDnsTable> dnsTable_;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::atomic<bool> listening_{false};
  std::atomic<bool> aborting_{false};  // closed with closeSessions: late accepts are dropped
  std::atomic<int64_t> active_{0};
  // inputs_.budget when this pod is counted in it; kept here because the destructor may run
  // while io_context tears down, after the ProxyInputs are gone (the budget outlives both).
  ConnectionBudget* countedIn_ = nullptr;
  log::Throttle limitLog_;
  std::mutex mu_;
  std::set<std::weak_ptr<Session>, std::owner_less<std::weak_ptr<Session>>> sessions_;
};

}  // namespace tollgate::proxy
