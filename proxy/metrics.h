#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace tollgate::proxy {

// Process-wide counters and gauges of the data plane, rendered as Prometheus text (version 0.0.4).
// Hot-path counters are lock-free atomics; the labelled decision counter takes a short lock.
class Metrics {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  // Adds exposition text computed at scrape time (e.g. nft drop counters per pod).
  using Collector = std::function<std::string()>;

  void countConnection(std::string_view decision, std::string_view reason);
  uint64_t connections(std::string_view decision, std::string_view reason) const;
  // Every reason counted for `decision` (tollgatectl status).
  std::map<std::string, uint64_t> connectionsByReason(std::string_view decision) const;
  void addCollector(Collector c);
  // Flows that could not be carried through a gateway tunnel, by reason.
  void countGatewayFailure(std::string_view reason);
  uint64_t gatewayFailures(std::string_view reason) const;

  // Open connections a reload no longer allows, by pod and the new decision's reason: cut
  // (revocation: cut) or left open (revocation: keep).
  void countRevocation(std::string_view pod, std::string_view reason, bool cut);
  uint64_t revocations(std::string_view pod, std::string_view reason, bool cut) const;

  std::string render() const;

  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> bytesUp{0};
  std::atomic<uint64_t> bytesDown{0};
  std::atomic<uint64_t> sniffTimeouts{0};
  std::atomic<uint64_t> limitRejections{0};      // per-pod connection limit
  std::atomic<uint64_t> nodeLimitRejections{0};  // node-wide limit (ConnectionBudget)
  std::atomic<uint64_t> resolverFailures{0};
  std::atomic<uint64_t> upstreamConnectFailures{0};
  std::atomic<uint64_t> httpUpgrades{0};  // HTTP connections switched after a 101 (WebSocket)
  std::atomic<uint64_t> nameAddrMismatch{0};  // SNI/Host not what the pod resolved dst as
  std::atomic<uint64_t> refusedLoops{0};         // original destination is the proxy itself
  std::atomic<uint64_t> refusedUnattributed{0};  // no original destination / unknown pod
  std::atomic<uint64_t> reloadsOk{0};
  std::atomic<uint64_t> reloadsFailed{0};
  std::atomic<uint64_t> redirectLoadFailures{0};  // a redirect (nft rules, BPF programs) not built
  std::atomic<uint64_t> enrollOk{0};
  std::atomic<uint64_t> enrollFailed{0};
  std::atomic<uint64_t> enrollExcluded{0};  // ADDs in excluded namespaces (not enrolled)
  std::atomic<uint64_t> enrollUnknownPod{0};  // ADDs refused: no Pod object of this node
  std::atomic<int64_t> enrolledPods{0};
  std::atomic<uint64_t> tunnelStreams{0};            // CONNECT streams opened
  std::atomic<int64_t> tunnelConnectionsActive{0};   // TLS connections to gateways up
  std::atomic<uint64_t> tunnelConnectionsOpened{0};  // TLS handshakes that succeeded

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> connections_;
  std::map<std::string, uint64_t, std::less<>> gatewayFailures_;
  std::vector<Collector> collectors_;
  std::map<std::tuple<bool, std::string, std::string>, uint64_t> revocations_;  // cut, pod, reason
};

// One exposition line: name{k="v",...} value\n, label values escaped.
std::string formatSample(std::string_view name, const Metrics::Labels& labels, double value);
std::string escapeLabelValue(std::string_view v);

}  // namespace tollgate::proxy
