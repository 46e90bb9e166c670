#pragma once

// The per-pod DNS proxy: UDP and TCP listeners on 127.0.0.1:<port> and [::1]:<port> (15053)
// created inside the pod's netns, where the redirect sends every udp/tcp port-53 packet. Queries
// are answered from the shared cache or forwarded to the config's dnsUpstreams from the agent's
// netns. Strict mode NXDOMAINs names the pod cannot reach anyway; answers pointing at loopback,
// link-local or node addresses are removed; what the pod resolved is recorded in its PodDnsTable.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "common/error.h"
#include "policy/ip.h"
#include "proxy/asio.h"
#include "proxy/dns_cache.h"
#include "proxy/pod_dns_table.h"
#include "proxy/proxy_context.h"
#include "proxy/socket_util.h"

namespace tollgate::proxy {

// Counters of one pod's DNS proxy (also summed into Prometheus text by the caller).
struct DnsProxyCounters {
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> forwarded{0};
  std::atomic<uint64_t> cacheHits{0};
  std::atomic<uint64_t> blocked{0};     // strict mode NXDOMAIN without contacting upstream
  std::atomic<uint64_t> malformed{0};   // dropped or answered FORMERR
  std::atomic<uint64_t> servfail{0};    // upstream timeout or failure
  std::atomic<uint64_t> tcpRetries{0};  // TC from upstream over UDP, retried over TCP
  std::atomic<uint64_t> stripped{0};    // A/AAAA records removed (loopback, link-local, node)
  std::atomic<uint64_t> rateLimited{0};  // over the pod's query rate: dropped, never answered
};

class DnsProxy : public std::enable_shared_from_this<DnsProxy> {
 public:
  struct Options {
    uint16_t port = 15053;
    std::chrono::milliseconds upstreamTimeout{2000};
    // Answers pointing here are removed (the node's own addresses), besides loopback and
    // link-local ones.
    std::vector<policy::IpAddress> nodeAddresses;
  };

  // Creates the UDP and TCP sockets in the pod netns through `runner`. IPv6 ones are skipped
  // when the netns has no IPv6. `cache` must outlive the proxy.
  static Result<std::shared_ptr<DnsProxy>> create(ProxyInputs& inputs, PodInfo pod,
                                                  NetnsRunner runner, Options options,
                                                  DnsCache& cache,
                                                  std::shared_ptr<PodDnsTable> table);
  ~DnsProxy();

  void start();
  void close();

  // The answer to one query from the pod (wire bytes, no TCP prefix); nullopt: drop it.
  // `maxBytes` is the largest response the client can take (UDP), 0 for TCP.
  awaitable<std::optional<std::vector<uint8_t>>> answer(std::vector<uint8_t> query,
                                                        size_t maxBytes);

  // Started and not closed, with at least one socket (the reconciler re-creates it otherwise).
  bool listening() const { return open_.load() && !udp_.empty(); }
  const DnsProxyCounters& counters() const { return counters_; }
  PodDnsTable& table() { return *table_; }
  std::shared_ptr<PodDnsTable> sharedTable() const { return table_; }
  const PodInfo& pod() const { return pod_; }

  // Whether an answer address must not reach a pod: loopback, link-local, or one of `node`.
  static bool forbiddenAnswer(const policy::IpAddress& ip,
                              const std::vector<policy::IpAddress>& node);

 private:
  DnsProxy(ProxyInputs& inputs, PodInfo pod, NetnsRunner runner, Options options,
           DnsCache& cache, std::shared_ptr<PodDnsTable> table)
      : inputs_(inputs), pod_(std::move(pod)), runner_(std::move(runner)),
        options_(std::move(options)), cache_(cache), table_(std::move(table)) {}

  // The pod's query rate (spec.dns.queriesPerSecond / queryBurst of the current snapshot, a
  // token bucket): false when this query is over it. Counted; logged at most once a second.
  bool admitQuery();

  awaitable<void> udpLoop(asio::ip::udp::socket* sock);
  awaitable<void> tcpAcceptLoop(asio::ip::tcp::acceptor* acceptor);
  awaitable<void> tcpSession(asio::ip::tcp::socket sock);
  awaitable<std::optional<std::vector<uint8_t>>> forward(const std::vector<uint8_t>& query);
  awaitable<std::optional<std::vector<uint8_t>>> queryUdp(const Endpoint& upstream,
                                                          const std::vector<uint8_t>& query);
  awaitable<std::optional<std::vector<uint8_t>>> queryTcp(const Endpoint& upstream,
                                                          const std::vector<uint8_t>& query);

  ProxyInputs& inputs_;
  PodInfo pod_;
  NetnsRunner runner_;
  Options options_;
  DnsCache& cache_;
  std::shared_ptr<PodDnsTable> table_;
  std::vector<std::unique_ptr<asio::ip::udp::socket>> udp_;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> tcp_;
  std::atomic<bool> open_{false};
  DnsProxyCounters counters_;
  // Token bucket (both UDP sockets and the TCP sessions draw from it, on any thread).
  std::mutex rateMu_;
  double tokens_ = -1;  // < 0: not started (a full bucket on the first query)
  std::chrono::steady_clock::time_point refilled_{};
  std::chrono::steady_clock::time_point lastRateLog_{};
  uint64_t droppedSinceLog_ = 0;
};

}  // namespace tollgate::proxy
