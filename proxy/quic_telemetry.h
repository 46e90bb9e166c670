#pragma once

// Telemetry for the closed UDP path: the redirect sends a pod's udp/443 to a per-pod socket on
// 127.0.0.1:<port> / [::1]:<port> (15443) in the pod's netns that only READS. Nothing is ever
// forwarded, so from the network's point of view the datagram is dropped, but a QUIC client
// Initial is parsed (parseQuicInitial) to say which name the pod tried to reach over QUIC.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "proxy/asio.h"
#include "proxy/proxy_context.h"
#include "proxy/socket_util.h"

namespace tollgate::proxy {

class QuicTelemetry : public std::enable_shared_from_this<QuicTelemetry> {
 public:
  static constexpr std::chrono::seconds kLogInterval{60};  // one event per pod+destination

  // Creates the UDP sockets in the pod netns through `runner` (IPv6 skipped without IPv6).
  static Result<std::shared_ptr<QuicTelemetry>> create(ProxyInputs& inputs, PodInfo pod,
                                                       NetnsRunner runner, uint16_t port = 15443);
  ~QuicTelemetry();

  void start();
  void close();

  // Started and not closed, with at least one socket (the reconciler re-creates it otherwise).
  bool listening() const { return open_.load() && !sockets_.empty(); }
  // QUIC long-header datagrams seen (tollgate_quic_attempts_total{pod}).
  uint64_t attempts() const { return attempts_.load(); }
  // The last event logged ("pod X tried QUIC to Y sni=Z"), for tests and status.
  std::string lastEvent() const;
  uint64_t events() const { return events_.load(); }

  // The original destination of the UDP flow from `src` that the redirect sent to `port`, read
  // from /proc/net/nf_conntrack text (SO_ORIGINAL_DST does not work for UDP sockets). The
  // nftables mode's answer; the eBPF mode's is ProxyInputs::quicOriginalDst.
  static std::optional<Endpoint> originalDstFromConntrack(std::string_view table,
                                                          const Endpoint& src, uint16_t port);

 private:
  QuicTelemetry(ProxyInputs& inputs, PodInfo pod, NetnsRunner runner, uint16_t port)
      : inputs_(inputs), pod_(std::move(pod)), runner_(std::move(runner)), port_(port) {}
  awaitable<void> loop(asio::ip::udp::socket* sock);
  void seen(std::span<const uint8_t> datagram, const Endpoint& from, int fd);
  // Where the datagram from `from` on socket `fd` was going: ProxyInputs::quicOriginalDst, else
  // the pod netns's conntrack table.
  std::optional<Endpoint> originalDst(const Endpoint& from, int fd);

  ProxyInputs& inputs_;
  PodInfo pod_;
  NetnsRunner runner_;
  uint16_t port_;
  std::vector<std::unique_ptr<asio::ip::udp::socket>> sockets_;
  std::atomic<bool> open_{false};
  std::atomic<uint64_t> attempts_{0};
  std::atomic<uint64_t> events_{0};
  mutable std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> lastLogged_;  // "dst sni"
  std::chrono::steady_clock::time_point lastLookup_{};
  std::string lastEvent_;
};

}  // namespace tollgate::proxy
