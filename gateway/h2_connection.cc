#include "gateway/h2_connection.h"

#include <array>
#include <cstring>

#include "common/log.h"
#include "common/log_throttle.h"
#include "gateway/deadline.h"
#include "gateway/gateway_metrics.h"

namespace tollgate::gateway {
namespace {

constexpr std::string_view kLog = "gateway";
constexpr size_t kWriteBatch = 64 * 1024;

awaitable<void> waitSignal(asio::steady_timer& t) {
  t.expires_at(asio::steady_timer::time_point::max());
  error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

nghttp2_nv header(std::string_view name, std::string_view value) {
  return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                    const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

bool isEof(const error_code& ec) {
  return ec == asio::error::eof || ec == ssl::error::stream_truncated;
}

// One warning a second per reason across all connections: an attack from many connections
// must not become a log flood.
void warnAbuse(const identity::SpiffeId& peer, std::string_view reason, std::string_view detail) {
  static constexpr std::string_view kReasons[] = {
      "rapid_reset",           "settings_flood",  "ping_flood",     "continuation_flood",
      "control_flood",         "header_list_too_large", "streams_refused", "protocol_error",
      "write_stalled"};
  static log::Throttle throttles[std::size(kReasons)];
  size_t i = 0;
  while (i + 1 < std::size(kReasons) && kReasons[i] != reason) ++i;
  uint64_t held = 0;
  if (!throttles[i].allow(&held)) return;
  log::warn(kLog, "{}: h2 {}: {}; connection closed ({} more since the last report)", peer.str(),
            reason, detail, held);
}

}  // namespace

struct H2Connection::Stream {
  Stream(const asio::any_io_executor& ex, int32_t streamId)
      : id(streamId),
        toUpstreamSignal(ex, asio::steady_timer::time_point::max()),
        downstreamSignal(ex, asio::steady_timer::time_point::max()) {}

  int32_t id;
  std::string method;
  std::string authority;
  std::string protocol;  // :protocol (extended CONNECT) is not supported
  bool hasSchemeOrPath = false;
  bool clientEnded = false;  // END_STREAM received
  bool closed = false;       // nghttp2 closed the stream (either side, or reset)
  bool refused = false;      // answered with an error status; request bytes are discarded
  bool deferred = false;     // the data provider waits for upstream bytes
  bool upstreamEof = false;
  // Received from the client, not yet written upstream. Bounded by the stream window: the
  // client gets WINDOW_UPDATE only for bytes the upstream took.
  std::string toUpstream;
  // Read from the upstream, not yet framed. Reading stops at kDownstreamBuffer.
  std::string downstream;
  asio::steady_timer toUpstreamSignal;
  asio::steady_timer downstreamSignal;
  std::unique_ptr<Upstream> upstream;
  TunnelOutcome outcome;
  std::shared_ptr<IdleWatch> idle;
  std::shared_ptr<OpenCancel> opening;  // set while the upstream is being opened
  size_t headerBytes = 0;               // RFC 9113 6.5.2 accounting: name + value + 32
  int pumps = 0;
};

bool H2Connection::Bucket::take(double burst, double rate) {
  auto now = std::chrono::steady_clock::now();
  tokens = std::min(burst, tokens + std::chrono::duration<double>(now - last).count() * rate);
  last = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

H2Connection::H2Connection(TunnelOpener& opener, GatewayMetrics& metrics,
                           std::shared_ptr<TlsStream> tls, identity::SpiffeId peer)
    : opener_(opener),
      metrics_(metrics),
      tls_(std::move(tls)),
      peer_(std::move(peer)),
      writeSignal_(tls_->get_executor(), asio::steady_timer::time_point::max()),
      writerDone_(tls_->get_executor(), asio::steady_timer::time_point::max()),
      idleTimer_(tls_->get_executor()),
      writeTimer_(tls_->get_executor()) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &H2Connection::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &H2Connection::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2Connection::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &H2Connection::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &H2Connection::onStreamClose);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, &H2Connection::onInvalidFrame);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, &H2Connection::onBeginFrame);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &H2Connection::onFrameSend);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Window updates follow the upstream's consumption, not nghttp2's receipt (backpressure).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // nghttp2's own limits back ours up: looser, so that ours (counted by reason) trip first.
  nghttp2_option_set_stream_reset_rate_limit(opt, 2 * static_cast<uint64_t>(kResetBurst),
                                             2 * static_cast<uint64_t>(kResetRate));
  nghttp2_option_set_max_outbound_ack(opt, 100);
  nghttp2_option_set_max_settings(opt, 16);
  nghttp2_option_set_max_continuations(opt, kMaxContinuations);
  nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxHeaderListBytes},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

H2Connection::~H2Connection() { nghttp2_session_del(session_); }

awaitable<void> H2Connection::run() {
  auto self = shared_from_this();
  armIdle();
  writerRunning_ = true;
  asio::co_spawn(
      tls_->get_executor(),
      [self]() -> awaitable<void> {
        co_await self->writeLoop();
        self->writerRunning_ = false;
        self->writerDone_.cancel();
      },
      asio::detached);
  co_await readLoop();
  terminate();
  while (writerRunning_) co_await waitSignal(writerDone_);
  error_code ec;
  tls_->lowest_layer().close(ec);
}

void H2Connection::goaway() {
  if (closed_ || draining_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  kick();
}

void H2Connection::kick() { writeSignal_.cancel(); }

void H2Connection::terminate() {
  if (closed_) return;
  closed_ = true;
  idleGen_++;
  idleTimer_.cancel();
  writeTimer_.cancel();
  for (auto& [id, s] : streams_) {
    s->closed = true;
    if (s->opening) s->opening->cancel();
    if (s->upstream) s->upstream->cancel();
    s->toUpstreamSignal.cancel();
    s->downstreamSignal.cancel();
  }
  streams_.clear();
  error_code ec;
  tls_->lowest_layer().cancel(ec);
  kick();
}

awaitable<void> H2Connection::readLoop() {
  std::array<uint8_t, 16 * 1024> buf;
  while (!closed_) {
    error_code ec;
    size_t n = co_await tls_->async_read_some(asio::buffer(buf),
                                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec || closed_) break;
    ssize_t rv = nghttp2_session_mem_recv(session_, buf.data(), n);
    if (rv < 0) {
      // Fatal for the connection; the floods nghttp2 itself detects are counted as abuse.
      auto err = static_cast<int>(rv);
      std::string_view reason = err == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ? "continuation_flood"
                                : err == NGHTTP2_ERR_FLOODED               ? "control_flood"
                                                                           : "protocol_error";
      if (!abused_) {
        abused_ = true;
        metrics_.countH2Abuse(reason);
        warnAbuse(peer_, reason, nghttp2_strerror(err));
      }
      break;
    }
    kick();
  }
}

awaitable<void> H2Connection::writeLoop() {
  std::string out;
  while (!closed_) {
    out.clear();
    while (out.size() < kWriteBatch) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        log::info(kLog, "{}: h2: {}", peer_.str(), nghttp2_strerror(static_cast<int>(n)));
        terminate();
        co_return;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (!out.empty()) {
      error_code ec;
      // A client that stops reading fills its window and then ours: the write makes no
      // progress, and without a deadline it would hold the connection (and its streams) forever.
      std::shared_ptr<DeadlineState> stall;
      if (opener_.options().writeStallTimeout.count() > 0) {
        stall = armDeadline(writeTimer_, tls_->next_layer(), opener_.options().writeStallTimeout);
      }
      co_await asio::async_write(*tls_, asio::buffer(out),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (stall) disarm(writeTimer_, *stall);
      if (stall && stall->fired && !abused_) {
        abused_ = true;
        metrics_.countH2Abuse("write_stalled");
        warnAbuse(peer_, "write_stalled",
                  fmt::format("no write progress for {} ms", opener_.options().writeStallTimeout.count()));
      }
      if (ec) {
        terminate();
        co_return;
      }
      continue;
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      terminate();  // GOAWAY exchanged and no stream left
      co_return;
    }
    co_await waitSignal(writeSignal_);
  }
}

int H2Connection::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  self->streams_[frame->hd.stream_id] =
      std::make_shared<Stream>(self->tls_->get_executor(), frame->hd.stream_id);
  self->idleGen_++;  // a stream: not idle
  self->idleTimer_.cancel();
  return 0;
}

int H2Connection::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                           size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                           void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it == self->streams_.end()) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  Stream& s = *it->second;
  s.headerBytes += namelen + valuelen + 32;
  if (s.headerBytes > kMaxHeaderListBytes) {
    // We advertised SETTINGS_MAX_HEADER_LIST_SIZE; a client that ignores it is not ours.
    self->abuse("header_list_too_large",
                fmt::format("stream {}: over {} bytes of headers", s.id, kMaxHeaderListBytes));
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  if (n == ":method") {
    s.method = v;
  } else if (n == ":authority") {
    s.authority = v;
  } else if (n == ":protocol") {
    s.protocol = v;
  } else if (n == ":scheme" || n == ":path") {
    s.hasSchemeOrPath = true;
  }
  return 0;
}

int H2Connection::onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (self->abused_) return 0;
  switch (frame->hd.type) {
    case NGHTTP2_RST_STREAM:
      // CVE-2023-44487: HEADERS then RST_STREAM at once, many times over, costs the client
      // nothing and the server a stream (and an upstream dial) each time.
      if (!self->resets_.take(kResetBurst, kResetRate)) {
        self->abuse("rapid_reset", fmt::format("more than {} stream resets at {}/s", kResetBurst,
                                               kResetRate));
      }
      return 0;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
      if (frame->hd.flags & NGHTTP2_FLAG_ACK) return 0;
      if (!self->controls_.take(kControlBurst, kControlRate)) {
        bool settings = frame->hd.type == NGHTTP2_SETTINGS;
        self->abuse(settings ? "settings_flood" : "ping_flood",
                    fmt::format("more than {} {} frames at {}/s", kControlBurst,
                                settings ? "SETTINGS" : "PING", kControlRate));
      }
      return 0;
    default:
      break;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it == self->streams_.end()) return 0;
  std::shared_ptr<Stream> s = it->second;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (s->method != "CONNECT" || !s->protocol.empty() || s->hasSchemeOrPath) {
      // Only plain CONNECT (RFC 9113 8.5) opens a tunnel here.
      s->refused = true;
      nghttp2_nv nva[] = {header(":status", "405"), header(kDeniedHeader, "not_connect")};
      nghttp2_submit_response(session, s->id, nva, std::size(nva), nullptr);
      self->metrics_.countStream("h2", "deny", "not_connect");
      return 0;
    }
    asio::co_spawn(
        self->tls_->get_executor(),
        [conn = self->shared_from_this(), s]() -> awaitable<void> {
          try {
            co_await conn->runStream(s);
          } catch (const std::exception& e) {
            // Nothing here should throw; if a library does, only this stream ends.
            log::error(kLog, "{}: stream {}: {}", conn->peer_.str(), s->id, e.what());
            conn->resetStream(*s, NGHTTP2_INTERNAL_ERROR);
          }
        },
        asio::detached);
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
    s->clientEnded = true;
    s->toUpstreamSignal.cancel();
  }
  return 0;
}

int H2Connection::onDataChunk(nghttp2_session* session, uint8_t, int32_t streamId,
                              const uint8_t* data, size_t len, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto it = self->streams_.find(streamId);
  if (it == self->streams_.end() || it->second->closed || it->second->refused) {
    // Nobody will take these bytes: give the connection window back at once.
    nghttp2_session_consume(session, streamId, len);
    return 0;
  }
  if (it->second->idle) it->second->idle->touch();
  it->second->toUpstream.append(reinterpret_cast<const char*>(data), len);
  it->second->toUpstreamSignal.cancel();
  return 0;
}

int H2Connection::onStreamClose(nghttp2_session* session, int32_t streamId, uint32_t, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto it = self->streams_.find(streamId);
  if (it == self->streams_.end()) return 0;
  std::shared_ptr<Stream> s = it->second;
  self->streams_.erase(it);
  s->closed = true;
  if (s->opening) s->opening->cancel();  // reset while its upstream was being opened
  if (self->streams_.empty()) self->armIdle();
  if (!s->toUpstream.empty()) {
    // Unwritten bytes still hold connection window; return it.
    nghttp2_session_consume(session, streamId, s->toUpstream.size());
    s->toUpstream.clear();
  }
  if (s->upstream) s->upstream->cancel();
  s->toUpstreamSignal.cancel();
  s->downstreamSignal.cancel();
  return 0;
}

ssize_t H2Connection::readDownstream(nghttp2_session*, int32_t streamId, uint8_t* buf,
                                     size_t length, uint32_t* flags, nghttp2_data_source*,
                                     void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto it = self->streams_.find(streamId);
  if (it == self->streams_.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  Stream& s = *it->second;
  size_t n = std::min(length, s.downstream.size());
  if (n > 0) {
    std::memcpy(buf, s.downstream.data(), n);
    s.downstream.erase(0, n);
    s.downstreamSignal.cancel();  // room again: the upstream reader may continue
  }
  if (s.downstream.empty() && s.upstreamEof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;  // upstream FIN -> END_STREAM
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    s.deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

int H2Connection::onInvalidFrame(nghttp2_session*, const nghttp2_frame* frame, int libError,
                                 void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (self->abused_) return 0;
  // nghttp2 refuses the frame itself (and for a connection error sends GOAWAY); we count it.
  if (frame->hd.type == NGHTTP2_HEADERS &&
      (libError == NGHTTP2_ERR_REFUSED_STREAM ||
       self->streams_.size() >= kMaxConcurrentStreams)) {
    self->abuse("streams_refused",
                fmt::format("more than {} concurrent streams", kMaxConcurrentStreams));
  } else if (libError == NGHTTP2_ERR_PROTO) {
    // A connection error (nghttp2 sends GOAWAY PROTOCOL_ERROR). Stream-level errors (DATA on a
    // stream just reset, a bad header) only reset that stream: a well-behaved client meets
    // those in benign races, so they are not abuse.
    self->abuse("protocol_error", nghttp2_strerror(libError));
  }
  return 0;
}

int H2Connection::onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
  static_cast<H2Connection*>(user)->lastFrameType_ = hd->type;
  return 0;
}

int H2Connection::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  const uint32_t code = frame->hd.type == NGHTTP2_GOAWAY ? frame->goaway.error_code : 0;
  if (frame->hd.type != NGHTTP2_GOAWAY || code == NGHTTP2_NO_ERROR || self->abused_) return 0;
  // A connection error nghttp2 found by itself, seen by no callback above (more entries in one
  // SETTINGS frame than max_settings, its own reset limiter, a malformed frame): counted by the
  // type of the frame that was arriving. The connection ends once this GOAWAY is out.
  std::string_view reason = "protocol_error";
  if (code == NGHTTP2_ENHANCE_YOUR_CALM) {
    if (self->lastFrameType_ == NGHTTP2_SETTINGS) reason = "settings_flood";
    if (self->lastFrameType_ == NGHTTP2_RST_STREAM) reason = "rapid_reset";
    if (self->lastFrameType_ == NGHTTP2_CONTINUATION) reason = "continuation_flood";
  }
  self->abused_ = true;
  self->metrics_.countH2Abuse(reason);
  warnAbuse(self->peer_, reason,
            fmt::format("nghttp2 sent GOAWAY({})", nghttp2_http2_strerror(code)));
  return 0;
}

void H2Connection::abuse(std::string_view reason, std::string_view detail) {
  if (abused_ || closed_) return;
  abused_ = true;
  metrics_.countH2Abuse(reason);
  warnAbuse(peer_, reason, detail);
  // GOAWAY(ENHANCE_YOUR_CALM); nghttp2 ignores the rest of what this client sends, and the
  // writer ends the connection once the GOAWAY is out.
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
  for (auto& [id, st] : streams_) {
    if (st->opening) st->opening->cancel();
  }
  kick();
}

void H2Connection::armIdle() {
  auto idle = opener_.options().h2IdleTimeout;
  if (closed_ || draining_ || idle.count() <= 0) return;
  uint64_t gen = ++idleGen_;
  idleTimer_.expires_after(idle);
  idleTimer_.async_wait([weak = weak_from_this(), gen](error_code ec) {
    auto self = weak.lock();
    if (ec || !self || gen != self->idleGen_ || self->closed_ || !self->streams_.empty()) return;
    self->metrics_.h2IdleClosed++;
    log::debug(kLog, "{}: h2 connection idle for {} ms with no stream: GOAWAY", self->peer_.str(),
               self->opener_.options().h2IdleTimeout.count());
    // Nothing is open: GOAWAY(NO_ERROR) and close; the client's pool opens a new one.
    self->draining_ = true;
    nghttp2_session_terminate_session(self->session_, NGHTTP2_NO_ERROR);
    self->kick();
  });
}

void H2Connection::resetStream(Stream& s, uint32_t code) {
  if (closed_ || s.closed) return;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, code);
  kick();
}

awaitable<void> H2Connection::runStream(std::shared_ptr<Stream> s) {
  auto self = shared_from_this();
  // Leave the nghttp2 callback that spawned us before touching the session again.
  co_await asio::post(tls_->get_executor(), asio::use_awaitable);
  if (closed_ || s->closed) {
    // Reset (or the connection ended) before we got to it: no upstream is dialled at all.
    co_return;
  }
  // A named request: GCC 12 destroys brace-initialised coroutine arguments twice.
  s->opening = std::make_shared<OpenCancel>();
  TunnelRequest request{peer_, s->authority, "h2", s->opening};
  TunnelOutcome o = co_await opener_.open(std::move(request));
  s->opening.reset();
  if (closed_ || s->closed) {
    if (o.ok()) {
      o.record.decision = "error";
      o.record.reason = "client_reset";
    }
    opener_.finish(o, "h2");
    co_return;
  }
  if (!o.ok()) {
    // Whatever the client sent (or still sends) is dropped and its window given back, so a
    // refused stream the client keeps open cannot pin connection window.
    s->refused = true;
    if (!s->toUpstream.empty()) {
      nghttp2_session_consume(session_, s->id, s->toUpstream.size());
      s->toUpstream.clear();
    }
    std::string status = std::to_string(o.status);
    nghttp2_nv nva[] = {header(":status", status), header(o.reasonHeader(), o.reason)};
    nghttp2_submit_response(session_, s->id, nva, std::size(nva), nullptr);
    kick();
    opener_.finish(o, "h2");
    co_return;
  }
  s->upstream = std::move(o.upstream);
  s->outcome = std::move(o);
  nghttp2_nv nva[] = {header(":status", "200")};
  nghttp2_data_provider prd{};
  prd.read_callback = &H2Connection::readDownstream;
  if (int rv = nghttp2_submit_response(session_, s->id, nva, std::size(nva), &prd); rv != 0) {
    s->outcome.record.decision = "error";
    s->outcome.record.reason = "h2_submit";
    opener_.finish(s->outcome, "h2");
    co_return;
  }
  kick();
  metrics_.tunnelsActive++;
  std::weak_ptr<H2Connection> weakSelf = self;
  std::weak_ptr<Stream> weak = s;
  s->idle = std::make_shared<IdleWatch>(tls_->get_executor(), opener_.options().idleTimeout,
                                        [weakSelf, weak] {
                                          auto conn = weakSelf.lock();
                                          auto st = weak.lock();
                                          if (!conn || !st) return;
                                          st->outcome.detail = "idle timeout";
                                          conn->resetStream(*st, NGHTTP2_CANCEL);
                                        });
  s->idle->start();
  s->pumps = 2;
  asio::co_spawn(
      tls_->get_executor(),
      [self, s]() -> awaitable<void> {
        try {
          co_await self->clientToUpstream(s);
        } catch (const std::exception& e) {
          log::error(kLog, "{}: stream {}: {}", self->peer_.str(), s->id, e.what());
          self->resetStream(*s, NGHTTP2_INTERNAL_ERROR);
        }
        self->pumpDone(s);
      },
      asio::detached);
  asio::co_spawn(
      tls_->get_executor(),
      [self, s]() -> awaitable<void> {
        try {
          co_await self->upstreamToClient(s);
        } catch (const std::exception& e) {
          log::error(kLog, "{}: stream {}: {}", self->peer_.str(), s->id, e.what());
          self->resetStream(*s, NGHTTP2_INTERNAL_ERROR);
        }
        self->pumpDone(s);
      },
      asio::detached);
}

void H2Connection::pumpDone(const std::shared_ptr<Stream>& s) {
  if (--s->pumps > 0) return;
  metrics_.tunnelsActive--;
  s->idle->stop();
  s->upstream->close();
  opener_.finish(s->outcome, "h2");
}

awaitable<void> H2Connection::clientToUpstream(std::shared_ptr<Stream> s) {
  while (!closed_ && !s->closed) {
    if (!s->toUpstream.empty()) {
      std::string chunk;
      chunk.swap(s->toUpstream);
      error_code ec;
      co_await s->upstream->writeAll(asio::buffer(chunk), ec);
      if (!closed_) {
        nghttp2_session_consume(session_, s->id, chunk.size());
        kick();
      }
      if (ec) {
        s->outcome.detail = "upstream write: " + ec.message();
        resetStream(*s, NGHTTP2_CONNECT_ERROR);
        co_return;
      }
      s->outcome.record.bytesUp += chunk.size();
      metrics_.bytesUp += chunk.size();
      continue;
    }
    if (s->clientEnded) {
      s->upstream->shutdownWrite();
      co_return;
    }
    co_await waitSignal(s->toUpstreamSignal);
  }
}

awaitable<void> H2Connection::upstreamToClient(std::shared_ptr<Stream> s) {
  std::array<char, 16 * 1024> buf;
  while (!closed_ && !s->closed) {
    if (s->downstream.size() >= kDownstreamBuffer) {
      co_await waitSignal(s->downstreamSignal);
      continue;
    }
    error_code ec;
    size_t n = co_await s->upstream->readSome(asio::buffer(buf), ec);
    if (closed_ || s->closed) co_return;
    s->idle->touch();
    if (n > 0) {
      s->downstream.append(buf.data(), n);
      s->outcome.record.bytesDown += n;
      metrics_.bytesDown += n;
    }
    if (isEof(ec)) {
      s->upstreamEof = true;
    } else if (ec) {
      s->outcome.detail = "upstream read: " + ec.message();
      resetStream(*s, NGHTTP2_CONNECT_ERROR);
      co_return;
    }
    if (s->deferred) {
      s->deferred = false;
      nghttp2_session_resume_data(session_, s->id);
    }
    kick();
    if (s->upstreamEof) co_return;
  }
}

}  // namespace tollgate::gateway
