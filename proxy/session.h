#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "policy/decision.h"
#include "policy/snapshot.h"
#include "proxy/access_log.h"
#include "proxy/asio.h"
#include "proxy/socket_util.h"
#include "proxy/tunnel_client.h"

namespace tollgate::proxy {

class OutboundListener;

// One captured connection: attribute it, sniff, decide, then refuse or connect and relay.
// Runs entirely on its own strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<OutboundListener> listener, asio::ip::tcp::socket client);
  ~Session();

  void start();
  // Resets both sides (pod removed). Thread-safe: posts to the session's strand.
  void abort();
  // Re-checks the decision of an open connection against the current snapshot (after a reload)
  // and cuts it when that no longer allows it (TollgateConfig.revocation). Thread-safe: posts to
  // the session's strand.
  void revalidate();
  // What the connection is now (tollgatectl conns): its access record so far, durationMs = age.
  // Thread-safe: read on the session's strand, `done` called there.
  void describe(std::function<void(AccessRecord)> done);

 private:
  enum class Sniffed { Tls, Http, Opaque };

  awaitable<void> run();
  awaitable<bool> sniff();
  awaitable<bool> connectUpstream();
  awaitable<bool> connectTunnel();
  awaitable<void> pumpTunnel(bool up);
  // The upstream side, whether a socket or a tunnel stream.
  awaitable<void> writeUpstream(asio::const_buffer data, boost::system::error_code& ec);
  void shutdownUpstreamSend();
  void resetUpstream();
  awaitable<void> relay();
  // The first request asked for a WebSocket upgrade: forwards its head alone, holds the client's
  // further bytes, and reads the upstream's status line. true: go on relaying (a byte stream
  // after 101, HTTP otherwise); false: refused or closed.
  awaitable<bool> upgradeHandshake();
  awaitable<void> pumpCopy(bool up);
  awaitable<void> pumpSplice(bool up);
  awaitable<void> pumpHttpRequests();
  awaitable<void> idleWatch();
  awaitable<void> sendHttpError(int status, std::string_view reasonPhrase, std::string_view header,
                                std::string_view value);

  policy::Decision decideName(const std::optional<std::string>& name);
  policy::Decision decideWith(const policy::Snapshot& snapshot, const policy::PodIdentity& id,
                              const std::optional<std::string>& name) const;
  // The pod's identity in `snapshot` (its Pod object), else what the pod was enrolled with.
  policy::PodIdentity identityIn(const policy::Snapshot& snapshot) const;
  // revalidate() on the strand: the same inputs (pod, original dst, name, port, protocol)
  // decided again by the current snapshot.
  void recheck();
  // The sniffed name, or for an opaque flow the visible name the pod resolved the destination as
  // (its DNS table); flags a sniffed name the pod never resolved the destination as.
  std::optional<std::string> nameForDecision();
  void refuse(std::string_view reason, std::string_view detail);  // RST, log, counter
  void closeBoth(bool reset);
  void armDeadline(std::chrono::milliseconds d);
  void disarmDeadline();
  void finish();

  std::shared_ptr<OutboundListener> listener_;
  asio::ip::tcp::socket client_;
  asio::ip::tcp::socket upstream_;
  std::shared_ptr<TunnelStream> tunnel_;  // Route::Kind::Gateway: the CONNECT stream
  asio::steady_timer deadline_;
  uint64_t deadlineGen_ = 0;
  bool deadlineFired_ = false;
  asio::steady_timer done_;
  asio::steady_timer idle_;
  int pumpsRunning_ = 0;

  policy::SnapshotPtr snapshot_;
  policy::PodIdentity identity_;
  std::string spiffe_;
  Endpoint originalDst_;
  std::string buffered_;  // bytes read while sniffing, sent upstream first
  Sniffed protocol_ = Sniffed::Opaque;
  std::optional<std::string> sniffedName_;
  policy::Decision decision_;
  std::optional<std::string> decidedName_;  // the name decision_ was made with
  bool relaying_ = false;        // connected: reloads re-check the decision from here on
  bool revocationKept_ = false;  // a reload denied it under revocation: keep (counted once)
  bool upgradeRequested_ = false;  // the first request has Connection: upgrade + Upgrade
  size_t upgradeHeadBytes_ = 0;    // its head's size (the start of buffered_)
  std::string upgradeProtocols_;   // its Upgrade value
  std::string upgradeRefusal_;     // refusedUpgrade() of it, "" when WebSocket
  bool switched_ = false;          // the upstream answered it 101: no longer HTTP
  Endpoint upstreamEp_;
  std::chrono::steady_clock::time_point lastActivity_;
  bool closing_ = false;
  bool finished_ = false;

  AccessRecord record_;
  std::chrono::steady_clock::time_point startedAt_;
};

}  // namespace tollgate::proxy
