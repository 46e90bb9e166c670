#include "proxy/tunnel_client.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/log.h"
#include "identity/spiffe_id.h"
#include "proxy/metrics.h"
#include "proxy/socket_util.h"

namespace tollgate::proxy {
namespace {

using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kLog = "tunnel";
constexpr size_t kWriteBatch = 64 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

std::atomic<uint64_t> gSerial{0};

std::string sslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

nghttp2_nv header(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

void notify(asio::steady_timer& t) { t.cancel(); }

}  // namespace

Result<std::shared_ptr<SSL_CTX>> makeTunnelClientContext(const TunnelIdentity& id) {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return fail("tunnel TLS context: " + sslErrors());
  SSL_CTX* c = ctx.get();
  // TLS 1.3 only: the tunnel never negotiates down.
  SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);

  std::unique_ptr<BIO, BioFree> certBio(
      BIO_new_mem_buf(id.certPem.data(), static_cast<int>(id.certPem.size())));
  X509* leaf = PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr);
  if (!leaf) return fail(fmt::format("SVID {}: certificate: {}", id.spiffeId, sslErrors()));
  int ok = SSL_CTX_use_certificate(c, leaf);
  X509_free(leaf);
  if (ok != 1) return fail(fmt::format("SVID {}: use certificate: {}", id.spiffeId, sslErrors()));
  if (!id.chainPem.empty()) {
    std::unique_ptr<BIO, BioFree> chain(
        BIO_new_mem_buf(id.chainPem.data(), static_cast<int>(id.chainPem.size())));
    while (X509* x = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
      // add0: the context takes ownership.
      if (SSL_CTX_add0_chain_cert(c, x) != 1) {
        X509_free(x);
        return fail(fmt::format("SVID {}: chain: {}", id.spiffeId, sslErrors()));
      }
    }
    ERR_clear_error();  // PEM_read at end of input leaves a "no start line" entry
  }
  std::unique_ptr<BIO, BioFree> keyBio(
      BIO_new_mem_buf(id.keyPem.data(), static_cast<int>(id.keyPem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr);
  if (!key) return fail(fmt::format("SVID {}: key: {}", id.spiffeId, sslErrors()));
  ok = SSL_CTX_use_PrivateKey(c, key);
  EVP_PKEY_free(key);
  if (ok != 1 || SSL_CTX_check_private_key(c) != 1) {
    return fail(
        fmt::format("SVID {}: key does not match certificate: {}", id.spiffeId, sslErrors()));
  }

  X509_STORE* store = SSL_CTX_get_cert_store(c);
  std::unique_ptr<BIO, BioFree> bundle(
      BIO_new_mem_buf(id.trustBundlePem.data(), static_cast<int>(id.trustBundlePem.size())));
  int roots = 0;
  while (X509* x = PEM_read_bio_X509(bundle.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, x);
    X509_free(x);
    ++roots;
  }
  ERR_clear_error();
  if (roots == 0) return fail(fmt::format("SVID {}: empty trust bundle", id.spiffeId));
  // The gateway's certificate is an SVID too (URI SAN only), so there is no host name to check:
  // the chain to the trust domain's root is what authenticates it; the SPIFFE id is checked
  // after the handshake.
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(c, kAlpn, sizeof kAlpn);
  return ctx;
}

// ---------------------------------------------------------------------------------------------
// TunnelStream: session-side halves hop onto the connection's strand.

TunnelStream::TunnelStream(std::shared_ptr<TunnelConnection> conn, std::string authority)
    : conn_(std::move(conn)),
      authority_(std::move(authority)),
      readSignal_(conn_->strand_, Clock::time_point::max()),
      writeSignal_(conn_->strand_, Clock::time_point::max()) {}

TunnelStream::~TunnelStream() = default;

awaitable<size_t> TunnelStream::read(asio::mutable_buffer buf, error_code& ec) {
  auto conn = conn_;
  auto op = conn->doRead(shared_from_this(), buf, ec);
  size_t n = co_await asio::co_spawn(conn->strand_, std::move(op), use_awaitable);
  co_return n;
}

awaitable<void> TunnelStream::waitReadable(error_code& ec) {
  co_await read(asio::mutable_buffer(), ec);
}

awaitable<void> TunnelStream::write(asio::const_buffer data, error_code& ec) {
  auto conn = conn_;
  auto op = conn->doWrite(shared_from_this(), data, ec);
  co_await asio::co_spawn(conn->strand_, std::move(op), use_awaitable);
}

void TunnelStream::shutdownWrite() {
  asio::post(conn_->strand_, [self = shared_from_this()] { self->conn_->doShutdownWrite(*self); });
}

void TunnelStream::reset() {
  asio::post(conn_->strand_, [self = shared_from_this()] { self->conn_->doReset(*self); });
}

void TunnelStream::release() {
  asio::post(conn_->strand_, [self = shared_from_this()] {
    if (!self->endRequested_) self->conn_->doReset(*self);
  });
}

std::string TunnelStream::presentedIdentity() const { return conn_->identity().spiffeId; }

// ---------------------------------------------------------------------------------------------
// TunnelConnection

TunnelConnection::TunnelConnection(asio::io_context& io, asio::ip::tcp::endpoint gateway,
                                   std::shared_ptr<SSL_CTX> ctx, TunnelIdentityPtr identity,
                                   SocketFactory sockets, TunnelLimits limits, Metrics* metrics,
                                   ClosedFn onClosed,
                                   std::function<void(bool, const std::string&)> onHandshake)
    : strand_(asio::make_strand(io)),
      gateway_(gateway),
      ctx_(std::move(ctx)),
      identity_(std::move(identity)),
      sockets_(std::move(sockets)),
      limits_(limits),
      metrics_(metrics),
      onClosed_(std::move(onClosed)),
      onHandshake_(std::move(onHandshake)),
      serial_(++gSerial),
      readySignal_(strand_, Clock::time_point::max()),
      writeSignal_(strand_, Clock::time_point::max()),
      idle_(strand_) {}

TunnelConnection::~TunnelConnection() {
  if (session_) nghttp2_session_del(session_);
}

void TunnelConnection::start() {
  asio::co_spawn(
      strand_,
      [self = shared_from_this()]() -> awaitable<void> {
        try {
          co_await self->run();
        } catch (const std::exception& e) {
          log::error(kLog, "tunnel to {}: {}", self->gateway_.address().to_string(), e.what());
          self->terminate(e.what());
        }
      },
      asio::detached);
}

bool TunnelConnection::usable() const {
  return !draining_.load() && !closed_.load() && streams_.load() < static_cast<int>(maxStreams_);
}

bool TunnelConnection::reserve() {
  int n = streams_.load();
  for (;;) {
    if (draining_.load() || closed_.load() || n >= static_cast<int>(maxStreams_.load())) {
      return false;
    }
    if (streams_.compare_exchange_weak(n, n + 1)) return true;
  }
}

void TunnelConnection::unreserve() { streams_--; }

void TunnelConnection::drain() {
  draining_ = true;
  asio::post(strand_, [self = shared_from_this()] { self->kick(); });
}

void TunnelConnection::close() {
  asio::post(strand_, [self = shared_from_this()] { self->terminate("closed by the pool"); });
}

void TunnelConnection::kick() { notify(writeSignal_); }

TunnelStream* TunnelConnection::find(int32_t id) {
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : it->second.get();
}

awaitable<std::string> TunnelConnection::connectAndHandshake() {
  error_code ec;
  int family = gateway_.address().is_v4() ? AF_INET : AF_INET6;
  auto fd = sockets_(family);
  if (!fd) {
    failReason_ = "gateway_unreachable";
    co_return "socket: " + fd.error().str();
  }
  asio::ip::tcp::socket sock(strand_);
  sock.assign(family == AF_INET ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), *fd, ec);
  if (ec) {
    ::close(*fd);
    failReason_ = "gateway_unreachable";
    co_return "socket: " + ec.message();
  }
  // asio's context takes ownership of a reference; the SSL_CTX itself is shared by every
  // connection that presents the same SVID.
  SSL_CTX_up_ref(ctx_.get());
  asioCtx_ = std::make_unique<asio::ssl::context>(ctx_.get());
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(sock), *asioCtx_);

  auto deadline = std::make_shared<bool>(false);
  asio::steady_timer timer(strand_);
  timer.expires_after(limits_.connectTimeout);
  timer.async_wait([self = shared_from_this(), deadline](error_code e) {
    if (e) return;
    *deadline = true;
    error_code ignored;
    if (self->tls_) self->tls_->lowest_layer().close(ignored);
  });
  co_await tls_->lowest_layer().async_connect(gateway_, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    timer.cancel();
    // (No conditional temporaries in these coroutines: GCC 12 miscompiles some of them.)
    std::string why = ec.message();
    failReason_ = "gateway_unreachable";
    if (*deadline) {
      why = "timeout";
      failReason_ = "timeout";
    }
    co_return fmt::format("connect {}:{}: {}", gateway_.address().to_string(), gateway_.port(),
                          why);
  }
  setNoDelay(tls_->lowest_layer().native_handle());
  co_await tls_->async_handshake(asio::ssl::stream_base::client,
                                 asio::redirect_error(use_awaitable, ec));
  timer.cancel();
  if (ec) {
    std::string why = ec.message();
    failReason_ = "tls_handshake_failed";
    if (*deadline) {
      why = "timeout";
      failReason_ = "timeout";
    }
    long v = SSL_get_verify_result(tls_->native_handle());
    if (v != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(v) + ")";
    co_return fmt::format("TLS handshake with {}:{}: {}", gateway_.address().to_string(),
                          gateway_.port(), why);
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpnLen = 0;
  SSL_get0_alpn_selected(tls_->native_handle(), &alpn, &alpnLen);
  if (std::string_view(reinterpret_cast<const char*>(alpn), alpnLen) != "h2") {
    failReason_ = "tls_handshake_failed";
    co_return "gateway did not select ALPN h2";
  }
  // The gateway must be a workload of the trust bundle's mesh, not just any certificate it signed.
  auto peerId = identity::parseSpiffeIdFromCert(SSL_get0_peer_certificate(tls_->native_handle()));
  if (!peerId) {
    failReason_ = "tls_handshake_failed";
    co_return "gateway certificate: " + peerId.error().message;
  }
  co_return std::string();
}

awaitable<void> TunnelConnection::run() {
  std::string err = co_await connectAndHandshake();
  if (!err.empty()) {
    error_ = err;
    if (onHandshake_) onHandshake_(false, err);
    terminate(err);
    co_return;
  }

  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &TunnelConnection::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &TunnelConnection::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &TunnelConnection::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &TunnelConnection::onStreamClose);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Flow control follows the app: a stream's window opens only as its bytes are taken.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rv = nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    terminate(std::string("nghttp2: ") + nghttp2_strerror(rv));
    co_return;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits_.streamWindow)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, limits_.connectionWindow);

  state_ = State::Ready;
  idleSince_ = Clock::now();
  if (metrics_) {
    metrics_->tunnelConnectionsActive++;
    metrics_->tunnelConnectionsOpened++;
  }
  countedActive_ = true;
  log::debug(kLog, "tunnel #{} to {}:{} up as {}", serial_, gateway_.address().to_string(),
             gateway_.port(), identity_->spiffeId);
  if (onHandshake_) onHandshake_(true, "");
  notify(readySignal_);

  auto self = shared_from_this();
  asio::co_spawn(
      strand_, [self]() { return self->writeLoop(); }, asio::detached);
  asio::co_spawn(
      strand_, [self]() { return self->idleLoop(); }, asio::detached);
  co_await readLoop();
}

awaitable<void> TunnelConnection::readLoop() {
  std::array<uint8_t, kReadChunk> buf;
  for (;;) {
    error_code ec;
    size_t n =
        co_await tls_->async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (state_ == State::Closed) co_return;
    if (ec) {
      std::string why = "read: " + ec.message();
      if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
        why = "gateway closed the connection";
      }
      terminate(why);
      co_return;
    }
    ssize_t rv = nghttp2_session_mem_recv(session_, buf.data(), n);
    if (rv < 0) {
      terminate(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(rv)));
      co_return;
    }
    kick();
  }
}

awaitable<void> TunnelConnection::writeLoop() {
  std::string out;
  for (;;) {
    if (state_ == State::Closed || !session_) co_return;
    if (draining_ && live_.empty() && !goawaySent_) {
      goawaySent_ = true;
      nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    }
    out.clear();
    while (out.size() < kWriteBatch) {
      const uint8_t* p = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &p);
      if (n < 0) {
        terminate(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
        co_return;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
    if (!out.empty()) {
      error_code ec;
      co_await asio::async_write(*tls_, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
      if (state_ == State::Closed) co_return;
      if (ec) {
        terminate("write: " + ec.message());
        co_return;
      }
      continue;
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      std::string why = "session finished";
      if (goawaySent_) why = "drained";
      terminate(why);
      co_return;
    }
    writeSignal_.expires_at(Clock::time_point::max());
    error_code ec;
    co_await writeSignal_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<void> TunnelConnection::idleLoop() {
  for (;;) {
    idle_.expires_after(limits_.idleTimeout / 2);
    error_code ec;
    co_await idle_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (state_ == State::Closed) co_return;
    if (streams_.load() == 0 && live_.empty() && Clock::now() - idleSince_ >= limits_.idleTimeout) {
      log::debug(kLog, "tunnel #{}: idle, closing", serial_);
      draining_ = true;
      kick();
      co_return;
    }
  }
}

void TunnelConnection::terminate(const std::string& why) {
  if (state_ == State::Closed) return;
  bool wasReady = state_ == State::Ready;
  state_ = State::Closed;
  closed_ = true;
  if (error_.empty()) error_ = why;
  if (wasReady) log::debug(kLog, "tunnel #{} closed: {}", serial_, why);
  auto streams = std::move(live_);
  live_.clear();
  for (auto& [id, s] : streams) {
    s->closed_ = true;
    if (!s->remoteEnded_ || s->closeCode_ == 0) s->closeCode_ = NGHTTP2_INTERNAL_ERROR;
    if (s->slot_) {
      s->slot_ = false;
      streams_--;
    }
    notify(s->readSignal_);
    notify(s->writeSignal_);
  }
  if (tls_) {
    error_code ec;
    tls_->lowest_layer().close(ec);
  }
  notify(readySignal_);
  notify(writeSignal_);
  idle_.cancel();
  if (session_) {
    nghttp2_session_del(session_);
    session_ = nullptr;
  }
  if (countedActive_ && metrics_) metrics_->tunnelConnectionsActive--;
  countedActive_ = false;
  if (onClosed_) {
    auto fn = std::move(onClosed_);
    onClosed_ = nullptr;
    fn(this);
  }
}

void TunnelConnection::streamEnded(TunnelStream& s) {
  if (s.slot_) {
    s.slot_ = false;
    if (--streams_ == 0) idleSince_ = Clock::now();
  }
}

awaitable<std::expected<std::shared_ptr<TunnelStream>, TunnelError>> TunnelConnection::open(
    std::string authority) {
  // (A member coroutine rather than a capturing lambda: GCC 12 mis-destroys the captures of
  // coroutine lambdas handed to co_spawn from inside another coroutine.)
  auto op = doOpen(shared_from_this(), std::move(authority));
  auto r = co_await asio::co_spawn(strand_, std::move(op), use_awaitable);
  co_return r;
}

awaitable<std::expected<std::shared_ptr<TunnelStream>, TunnelError>> TunnelConnection::doOpen(
    std::shared_ptr<TunnelConnection> self, std::string authority) {
  auto& c = *self;
  auto unavailable = [&](std::string reason, std::string detail) {
    return std::unexpected(TunnelError{TunnelError::Kind::Unavailable, std::move(reason),
                                       "gateway_unavailable", 503, std::move(detail)});
  };
  if (c.state_ == State::Connecting) {
    error_code ec;
    co_await c.readySignal_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (c.state_ != State::Ready || !c.session_) {
    c.unreserve();
    std::string reason = c.failReason_;
    if (c.error_.empty() || c.state_ != State::Closed) reason = "gateway_unreachable";
    std::string detail = c.error_;
    if (detail.empty()) detail = "connection closed";
    co_return unavailable(reason, detail);
  }
  if (c.goawaySent_) {
    c.unreserve();
    co_return unavailable("draining", "connection is draining");
  }
  auto s = std::make_shared<TunnelStream>(self, authority);
  nghttp2_nv nva[] = {header(":method", "CONNECT"), header(":authority", s->authority_)};
  nghttp2_data_provider prd;
  prd.source.ptr = s.get();
  prd.read_callback = &TunnelConnection::readSend;
  int32_t id = nghttp2_submit_request(c.session_, nullptr, nva, 2, &prd, s.get());
  if (id < 0) {
    c.unreserve();
    co_return unavailable("stream_refused", nghttp2_strerror(id));
  }
  s->id_ = id;
  s->slot_ = true;
  c.live_[id] = s;
  if (c.metrics_) c.metrics_->tunnelStreams++;
  c.kick();

  auto deadline = Clock::now() + c.limits_.responseTimeout;
  while (!s->headersDone_ && !s->closed_) {
    if (Clock::now() >= deadline) {
      c.doReset(*s);
      co_return unavailable("timeout", fmt::format("no response to CONNECT {} in {} ms", authority,
                                                   c.limits_.responseTimeout.count()));
    }
    s->readSignal_.expires_at(deadline);
    error_code ec;
    co_await s->readSignal_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  s->readSignal_.expires_at(Clock::time_point::max());
  if (!s->headersDone_) {
    std::string reason = "stream_reset";
    if (s->closeCode_ == NGHTTP2_REFUSED_STREAM) reason = "stream_refused";
    std::string detail = c.error_;
    if (c.state_ != State::Closed) {
      detail = fmt::format("stream reset ({})", nghttp2_http2_strerror(s->closeCode_));
    }
    co_return unavailable(reason, detail);
  }
  if (s->status_ == 200) co_return s;
  c.doReset(*s);
  TunnelError e;
  e.status = s->status_;
  std::string shown;
  if (!s->denied_.empty()) shown = " (" + s->denied_ + ")";
  e.detail = fmt::format("gateway answered {} to CONNECT {}{}", s->status_, authority, shown);
  if (s->status_ == 403) {
    e.kind = TunnelError::Kind::Denied;
    e.reason = "denied";
    e.appReason = "denied_by_gateway";
  } else {
    e.kind = TunnelError::Kind::Failed;
    e.reason = "gateway_error";
    e.appReason = "gateway_unavailable";
    if (e.status < 500) e.status = 502;
  }
  if (!s->denied_.empty()) e.appReason = s->denied_;
  co_return std::unexpected(std::move(e));
}

awaitable<size_t> TunnelConnection::doRead(std::shared_ptr<TunnelStream> s,
                                           asio::mutable_buffer buf, error_code& ec) {
  ec = {};
  // What the previous read handed out has been written to the app by now: acknowledge it.
  if (s->unconsumed_ > 0) {
    if (!s->closed_ && session_) {
      nghttp2_session_consume(session_, s->id_, s->unconsumed_);
      kick();
    }
    s->unconsumed_ = 0;
  }
  for (;;) {
    size_t avail = s->recv_.size() - s->recvOff_;
    if (avail > 0) {
      if (buf.size() == 0) co_return 0;  // waitReadable()
      size_t n = std::min(avail, buf.size());
      std::memcpy(buf.data(), s->recv_.data() + s->recvOff_, n);
      s->recvOff_ += n;
      if (s->recvOff_ == s->recv_.size()) {
        s->recv_.clear();
        s->recvOff_ = 0;
      }
      s->unconsumed_ += n;
      co_return n;
    }
    if (s->remoteEnded_) {
      ec = asio::error::eof;
      co_return 0;
    }
    if (s->closed_) {
      ec = asio::error::connection_reset;
      co_return 0;
    }
    // Nothing to hand out: the stream is idle, so it gives its receive buffer back.
    std::string().swap(s->recv_);
    s->recvOff_ = 0;
    s->readSignal_.expires_at(Clock::time_point::max());
    error_code ignored;
    co_await s->readSignal_.async_wait(asio::redirect_error(use_awaitable, ignored));
  }
}

awaitable<void> TunnelConnection::doWrite(std::shared_ptr<TunnelStream> s, asio::const_buffer data,
                                          error_code& ec) {
  ec = {};
  const char* p = static_cast<const char*>(data.data());
  size_t left = data.size();
  while (left > 0) {
    if (s->closed_ || s->endRequested_ || !session_) {
      ec = asio::error::connection_reset;
      co_return;
    }
    size_t queued = s->send_.size() - s->sendOff_;
    if (queued >= limits_.sendBuffer) {
      s->writeSignal_.expires_at(Clock::time_point::max());
      error_code ignored;
      co_await s->writeSignal_.async_wait(asio::redirect_error(use_awaitable, ignored));
      continue;
    }
    if (s->sendOff_ > 0 && s->sendOff_ >= s->send_.size() / 2) {
      s->send_.erase(0, s->sendOff_);
      s->sendOff_ = 0;
    }
    size_t take = std::min(left, limits_.sendBuffer - queued);
    s->send_.append(p, take);
    p += take;
    left -= take;
    if (s->deferred_) {
      s->deferred_ = false;
      nghttp2_session_resume_data(session_, s->id_);
    }
    kick();
  }
}

void TunnelConnection::doShutdownWrite(TunnelStream& s) {
  if (s.closed_ || s.endRequested_ || !session_) return;
  s.endRequested_ = true;
  if (s.deferred_) {
    s.deferred_ = false;
    nghttp2_session_resume_data(session_, s.id_);
  }
  kick();
}

void TunnelConnection::doReset(TunnelStream& s) {
  if (s.closed_) return;
  if (session_ && s.id_ >= 0 && live_.count(s.id_)) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id_, NGHTTP2_CANCEL);
    kick();
  }
  s.closed_ = true;
  s.closeCode_ = NGHTTP2_CANCEL;
  notify(s.readSignal_);
  notify(s.writeSignal_);
}

int TunnelConnection::onHeader(nghttp2_session* session, const nghttp2_frame* frame,
                               const uint8_t* name, size_t namelen, const uint8_t* value,
                               size_t valuelen, uint8_t, void*) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s = static_cast<TunnelStream*>(
      nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (!s || s->headersDone_) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":status") {
    int st = 0;
    for (char ch : v) {
      if (ch < '0' || ch > '9') return 0;
      st = st * 10 + (ch - '0');
    }
    s->status_ = st;
  } else if (n == "x-tollgate-denied") {
    s->denied_ = std::string(v.substr(0, 128));
  }
  return 0;
}

int TunnelConnection::onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                                  void* user) {
  auto* c = static_cast<TunnelConnection*>(user);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        c->maxStreams_ =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
      }
      break;
    case NGHTTP2_GOAWAY:
      // No new streams here; the ones the gateway accepted finish.
      c->draining_ = true;
      break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      auto* s = static_cast<TunnelStream*>(
          nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
      if (!s) break;
      if (frame->hd.type == NGHTTP2_HEADERS && !s->headersDone_) {
        if (s->status_ >= 200) {
          s->headersDone_ = true;
        } else {
          s->status_ = 0;  // 1xx: informational, the final answer follows
        }
      }
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->remoteEnded_ = true;
      notify(s->readSignal_);
      break;
    }
    default:
      break;
  }
  return 0;
}

int TunnelConnection::onDataChunk(nghttp2_session* session, uint8_t, int32_t streamId,
                                  const uint8_t* data, size_t len, void*) {
  auto* s = static_cast<TunnelStream*>(nghttp2_session_get_stream_user_data(session, streamId));
  if (!s || s->closed_) {
    // Nobody will read these bytes: give the connection window back now.
    nghttp2_session_consume_connection(session, len);
    return 0;
  }
  s->recv_.append(reinterpret_cast<const char*>(data), len);
  notify(s->readSignal_);
  return 0;
}

int TunnelConnection::onStreamClose(nghttp2_session* session, int32_t streamId, uint32_t errorCode,
                                    void* user) {
  auto* c = static_cast<TunnelConnection*>(user);
  auto it = c->live_.find(streamId);
  if (it == c->live_.end()) return 0;
  auto s = it->second;
  c->live_.erase(it);
  // Bytes received but never acknowledged would otherwise shrink the connection window forever.
  size_t pending = s->unconsumed_ + (s->recv_.size() - s->recvOff_);
  if (pending > 0) nghttp2_session_consume_connection(session, pending);
  s->unconsumed_ = 0;
  if (!s->closed_) {
    s->closed_ = true;
    s->closeCode_ = errorCode;
    if (errorCode != NGHTTP2_NO_ERROR) {
      // A reset stream delivers nothing more, not even what was buffered.
      s->remoteEnded_ = false;
      s->recv_.clear();
      s->recvOff_ = 0;
    }
  }
  notify(s->readSignal_);
  notify(s->writeSignal_);
  c->streamEnded(*s);
  return 0;
}

ssize_t TunnelConnection::readSend(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                   uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<TunnelStream*>(source->ptr);
  size_t avail = s->send_.size() - s->sendOff_;
  if (avail == 0) {
    if (s->endRequested_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    s->deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = std::min(avail, length);
  std::memcpy(buf, s->send_.data() + s->sendOff_, n);
  s->sendOff_ += n;
  if (s->sendOff_ == s->send_.size()) {
    std::string().swap(s->send_);  // an idle stream holds no send buffer
    s->sendOff_ = 0;
    if (s->endRequested_) *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  notify(s->writeSignal_);
  return static_cast<ssize_t>(n);
}

}  // namespace tollgate::proxy
