#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "identity/spiffe_id.h"
#include "gateway/tls_contexts.h"
#include "gateway/tunnel_opener.h"

namespace tollgate::gateway {

using TlsStream = ssl::stream<asio::ip::tcp::socket>;

// One HTTP/2 tunnel connection (RFC 9113): every CONNECT stream is one flow to one upstream.
// Flow control is end to end: bytes from the client are acknowledged (WINDOW_UPDATE) only after
// the upstream accepted them, and bytes from the upstream are read only while the stream's
// send buffer has room, so a slow side never makes the gateway buffer without bound.
// All of it runs on the io_context thread of the connection; nghttp2 is not thread-safe.
class H2Connection : public std::enable_shared_from_this<H2Connection> {
 public:
  // Per-stream bounds: the client's send window and the upstream read-ahead.
  static constexpr int32_t kStreamWindow = 256 * 1024;
  static constexpr int32_t kConnectionWindow = 8 * 1024 * 1024;
  static constexpr size_t kDownstreamBuffer = 64 * 1024;
  static constexpr uint32_t kMaxConcurrentStreams = 256;
  // Abuse limits (each trip closes the connection with GOAWAY ENHANCE_YOUR_CALM, counted in
  // tollgate_gateway_h2_abuse_total{reason} and logged at most once a second per reason).
  static constexpr uint32_t kMaxHeaderListBytes = 16 * 1024;  // per request, RFC 9113 6.5.2
  static constexpr double kResetBurst = 200, kResetRate = 100;      // RST_STREAM per second
  static constexpr double kControlBurst = 50, kControlRate = 10;    // SETTINGS, PING per second
  static constexpr size_t kMaxContinuations = 4;  // a 16 KiB header list needs at most 1

  H2Connection(TunnelOpener& opener, GatewayMetrics& metrics, std::shared_ptr<TlsStream> tls,
               identity::SpiffeId peer);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Serves until the client goes away, a protocol error, or a graceful GOAWAY completes.
  awaitable<void> run();
  // Graceful shutdown: GOAWAY now; streams already open finish.
  void goaway();
  size_t openStreams() const { return streams_.size(); }
  asio::any_io_executor executor() const { return tls_->get_executor(); }

 private:
  struct Stream;

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame*, void*);
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static int onInvalidFrame(nghttp2_session*, const nghttp2_frame*, int, void*);
  static int onBeginFrame(nghttp2_session*, const nghttp2_frame_hd*, void*);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame*, void*);
  static ssize_t readDownstream(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                                nghttp2_data_source*, void*);

  awaitable<void> readLoop();
  awaitable<void> writeLoop();
  awaitable<void> runStream(std::shared_ptr<Stream> s);
  awaitable<void> clientToUpstream(std::shared_ptr<Stream> s);
  awaitable<void> upstreamToClient(std::shared_ptr<Stream> s);
  void pumpDone(const std::shared_ptr<Stream>& s);
  void resetStream(Stream& s, uint32_t code);
  void kick();
  void terminate();
  // Counts and logs `reason`, then ends the connection with GOAWAY(ENHANCE_YOUR_CALM).
  void abuse(std::string_view reason, std::string_view detail);
  // Starts (no stream open) or stops the idle timer.
  void armIdle();

  // A token bucket over frames of one kind.
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    bool take(double burst, double rate);
  };

  TunnelOpener& opener_;
  GatewayMetrics& metrics_;
  std::shared_ptr<TlsStream> tls_;
  identity::SpiffeId peer_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::shared_ptr<Stream>> streams_;
  asio::steady_timer writeSignal_;
  asio::steady_timer writerDone_;
  bool writerRunning_ = false;
  bool closed_ = false;
  bool draining_ = false;
  bool abused_ = false;
  uint8_t lastFrameType_ = 0;  // of the frame being received: names nghttp2's own GOAWAYs
  Bucket resets_{kResetBurst};
  Bucket controls_{kControlBurst};
  asio::steady_timer idleTimer_;
  uint64_t idleGen_ = 0;
  asio::steady_timer writeTimer_;  // write stall deadline
};

}  // namespace tollgate::gateway
