#pragma once

// The client side of the gateway tunnel: HTTP/2 CONNECT (RFC 9113 §8.5) over TLS 1.3 with the
// source workload's SVID as client certificate. One TunnelConnection is one TLS connection with
// an nghttp2 client session carrying many TunnelStreams, one per app flow. Everything of a
// connection (socket, nghttp2 session, streams) lives on the connection's strand; sessions reach
// it only through TunnelStream's awaitable methods, which hop onto that strand.

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "proxy/asio.h"

namespace tollgate::proxy {

class Metrics;

// The SVID a tunnel presents, as PEM (the agent's SvidManager is the real source).
struct TunnelIdentity {
  std::string spiffeId;        // spiffe://<td>/ns/<ns>/sa/<sa>
  std::string certPem;         // leaf
  std::string keyPem;          // its private key
  std::string chainPem;        // intermediates sent after the leaf (may be empty)
  std::string trustBundlePem;  // roots the gateway's certificate is verified against
  std::chrono::system_clock::time_point notAfter = std::chrono::system_clock::time_point::max();
};
using TunnelIdentityPtr = std::shared_ptr<const TunnelIdentity>;

// The certificate-source seam: the current SVID of service account ns/sa. Rotation is seen by
// the next TLS connection the pool opens; connections already up keep the SVID they started with.
using SvidSource =
    std::function<Result<TunnelIdentityPtr>(std::string_view ns, std::string_view sa)>;

// A TLS 1.3-only client context presenting `id`, verifying the gateway against its trust bundle,
// offering ALPN h2.
Result<std::shared_ptr<SSL_CTX>> makeTunnelClientContext(const TunnelIdentity& id);

// Why a tunnel stream could not be opened. `reason` is a short metric label; `appReason` is what
// the app sees in x-tollgate-denied; `status` the HTTP status the app gets for HTTP flows.
struct TunnelError {
  enum class Kind { Unavailable, Denied, Failed };
  Kind kind = Kind::Unavailable;
  std::string reason;     // gateway_unreachable, gateway_unresolvable, tls_handshake_failed,
                          // no_svid, stream_refused, stream_reset, stream_limit, draining,
                          // timeout, backoff, denied, gateway_error, no_tunnel_client
  std::string appReason;  // "gateway_unavailable", or the gateway's x-tollgate-denied value
  int status = 503;       // 503 unavailable, 403 denied, the gateway's status for its 5xx
  std::string detail;     // for logs
};

struct TunnelLimits {
  int32_t streamWindow = 256 * 1024;                 // our receive window per stream
  int32_t connectionWindow = 16 * 1024 * 1024;       // our receive window per connection
  size_t sendBuffer = 256 * 1024;                    // bytes per stream queued towards the gateway
  std::chrono::milliseconds connectTimeout{10000};   // TCP connect + TLS handshake
  std::chrono::milliseconds responseTimeout{15000};  // CONNECT to :status
  std::chrono::milliseconds idleTimeout{60000};      // a connection without streams is closed
};

class TunnelConnection;

// One CONNECT stream. Methods are called from the owning session's strand, one read and one
// write at a time at most.
class TunnelStream : public std::enable_shared_from_this<TunnelStream> {
 public:
  TunnelStream(std::shared_ptr<TunnelConnection> conn, std::string authority);
  ~TunnelStream();

  // Up to buf.size() bytes from the gateway. 0 with ec = eof at END_STREAM; connection_reset
  // when the gateway reset the stream or the connection died. Bytes of a read are acknowledged
  // (WINDOW_UPDATE) when the next read is asked for, i.e. once the app socket took them.
  awaitable<size_t> read(asio::mutable_buffer buf, boost::system::error_code& ec);
  // Waits until a read would not wait (bytes, END_STREAM or a reset), consuming nothing, so the
  // caller needs no buffer while the stream is idle. Acknowledges the previous read as read
  // does; ec as the read that follows would give it (eof, connection_reset), else clear.
  awaitable<void> waitReadable(boost::system::error_code& ec);
  // Queues all of `data`, waiting while the bounded send buffer is full.
  awaitable<void> write(asio::const_buffer data, boost::system::error_code& ec);
  // END_STREAM once everything queued is sent (app half-close).
  void shutdownWrite();
  // RST_STREAM(CANCEL) now.
  void reset();
  // The session is done: END_STREAM already asked for lets queued bytes flush; otherwise reset.
  void release();

  const std::string& authority() const { return authority_; }
  // The SVID the carrying TLS connection presented.
  std::string presentedIdentity() const;
  const TunnelConnection* connection() const { return conn_.get(); }

 private:
  friend class TunnelConnection;

  std::shared_ptr<TunnelConnection> conn_;
  std::string authority_;
  // Owned by the connection's strand:
  int32_t id_ = -1;
  int status_ = 0;
  std::string denied_;
  bool headersDone_ = false;
  std::string recv_;  // released when drained and the reader waits: idle streams hold none
  size_t recvOff_ = 0;
  size_t unconsumed_ = 0;  // bytes handed to the session, not yet acknowledged
  bool remoteEnded_ = false;
  bool closed_ = false;
  uint32_t closeCode_ = 0;
  std::string send_;  // released once sent
  size_t sendOff_ = 0;
  bool endRequested_ = false;
  bool deferred_ = false;
  bool slot_ = false;               // holds one of the connection's stream slots
  asio::steady_timer readSignal_;   // the single reader (or opener) waits here
  asio::steady_timer writeSignal_;  // the single writer waits here
};

// One TLS connection to a gateway. Created by the pool; run() connects and serves until closed.
class TunnelConnection : public std::enable_shared_from_this<TunnelConnection> {
 public:
  using SocketFactory = std::function<Result<int>(int family)>;
  using ClosedFn = std::function<void(TunnelConnection*)>;

  TunnelConnection(asio::io_context& io, asio::ip::tcp::endpoint gateway,
                   std::shared_ptr<SSL_CTX> ctx, TunnelIdentityPtr identity, SocketFactory sockets,
                   TunnelLimits limits, Metrics* metrics, ClosedFn onClosed,
                   std::function<void(bool ok, const std::string& error)> onHandshake);
  ~TunnelConnection();

  // Connects, handshakes, then serves until closed. Spawned once by the pool.
  void start();
  // Opens a CONNECT stream for `authority` and waits for the response. The caller reserved a
  // stream slot (reserve()); it is given back when the stream ends or the open fails.
  awaitable<std::expected<std::shared_ptr<TunnelStream>, TunnelError>> open(std::string authority);
  // GOAWAY: no new streams, open ones finish, then the connection closes.
  void drain();
  void close();

  // Pool bookkeeping, safe from any thread.
  bool reserve();  // takes a stream slot when usable and below the peer's stream limit
  void unreserve();
  bool usable() const;
  bool closed() const { return closed_.load(); }
  bool draining() const { return draining_.load(); }
  int streams() const { return streams_.load(); }
  const TunnelIdentity& identity() const { return *identity_; }
  uint64_t id() const { return serial_; }

 private:
  friend class TunnelStream;
  enum class State { Connecting, Ready, Closed };

  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t readSend(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                          nghttp2_data_source*, void*);

  awaitable<void> run();
  awaitable<std::string> connectAndHandshake();
  awaitable<void> readLoop();
  awaitable<void> writeLoop();
  awaitable<void> idleLoop();
  void kick();
  void terminate(const std::string& why);
  void streamEnded(TunnelStream& s);
  TunnelStream* find(int32_t id);

  awaitable<std::expected<std::shared_ptr<TunnelStream>, TunnelError>> doOpen(
      std::shared_ptr<TunnelConnection> self, std::string authority);
  // Strand-side halves of TunnelStream's methods.
  awaitable<size_t> doRead(std::shared_ptr<TunnelStream> s, asio::mutable_buffer buf,
                           boost::system::error_code& ec);
  awaitable<void> doWrite(std::shared_ptr<TunnelStream> s, asio::const_buffer data,
                          boost::system::error_code& ec);
  void doShutdownWrite(TunnelStream& s);
  void doReset(TunnelStream& s);

  asio::strand<asio::io_context::executor_type> strand_;
  asio::ip::tcp::endpoint gateway_;
  std::shared_ptr<SSL_CTX> ctx_;
  TunnelIdentityPtr identity_;
  SocketFactory sockets_;
  TunnelLimits limits_;
  Metrics* metrics_;
  ClosedFn onClosed_;
  std::function<void(bool, const std::string&)> onHandshake_;
  uint64_t serial_;

  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls_;
  nghttp2_session* session_ = nullptr;
  State state_ = State::Connecting;
  std::string error_;
  std::string failReason_ = "gateway_unreachable";
  std::unique_ptr<asio::ssl::context> asioCtx_;
  std::chrono::steady_clock::time_point idleSince_;
  bool goawaySent_ = false;
  std::map<int32_t, std::shared_ptr<TunnelStream>> live_;
  asio::steady_timer readySignal_;
  asio::steady_timer writeSignal_;
  asio::steady_timer idle_;
  bool writerBusy_ = false;
  bool countedActive_ = false;

  std::atomic<bool> draining_{false};
  std::atomic<bool> closed_{false};
  std::atomic<int> streams_{0};
  std::atomic<uint32_t> maxStreams_{100};  // until the peer's SETTINGS say otherwise
};

}  // namespace tollgate::proxy
