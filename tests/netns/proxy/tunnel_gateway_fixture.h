#pragma once

// A small HTTP/2 CONNECT server over TLS 1.3 for the tunnel tests: client certificate required
// and verified against the test CA, ALPN h2, one thread per connection driving an nghttp2 server
// session over a non-blocking socket. What it does with a stream depends on the :authority:
//   deny.*            403 + x-tollgate-denied: denied_authz
//   unavail.*         503 + x-tollgate-denied: upstream_connect_failed
//   refuse.*          RST_STREAM(REFUSED_STREAM) instead of an answer
//   rst-after.*       200, then RST_STREAM after the first DATA
//   source-<N>.*      200, then N pattern bytes and END_STREAM (what the client sends is counted)
//   goaway.*          200 + echo, and a GOAWAY right after the answer
//   anything else     200 + echo; END_STREAM from the client is answered with END_STREAM
// Loopback only: it listens on 127.0.0.1, port 0.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "identity/certificate_authority.h"
#include "identity/svid.h"
#include "identity/spiffe_id.h"
#include "proxy/tunnel_client.h"

namespace tollgate::testing {

// The byte at offset i of a "source" stream.
inline char patternByte(uint64_t i) { return static_cast<char>((i * 7 + i / 251) & 0xff); }

class TestGateway {
 public:
  struct Options {
    uint32_t maxConcurrentStreams = 100;
    std::string spiffeId = "spiffe://cluster.local/ns/tollgate-system/sa/gateway";
  };

  TestGateway(const identity::CertificateAuthority& ca, Options o) : options_(std::move(o)) {
    auto svid = ca.issueSvid(options_.spiffeId);
    if (!svid) return;
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!identity::useSvid(ctx_, *svid) || !identity::useTrustBundle(ctx_, svid->trustBundlePem)) return;
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_alpn_select_cb(
        ctx_,
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
           unsigned int inlen, void*) -> int {
          static const unsigned char kH2[] = {2, 'h', '2'};
          unsigned char* sel = nullptr;
          if (SSL_select_next_proto(&sel, outlen, kH2, sizeof kH2, in, inlen) !=
              OPENSSL_NPN_NEGOTIATED) {
            return SSL_TLSEXT_ERR_ALERT_FATAL;
          }
          *out = sel;
          return SSL_TLSEXT_ERR_OK;
        },
        nullptr);
    listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listenFd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        ::listen(listenFd_, 128) != 0) {
      return;
    }
    socklen_t len = sizeof sin;
    ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
    acceptThread_ = std::thread([this] { acceptLoop(); });
  }

  ~TestGateway() { stop(); }

  // Stops accepting and closes every connection (the gateway goes down).
  void stop() {
    if (stopped_.exchange(true)) return;
    if (listenFd_ >= 0) ::shutdown(listenFd_, SHUT_RDWR);
    if (acceptThread_.joinable()) acceptThread_.join();
    if (listenFd_ >= 0) ::close(listenFd_);
    listenFd_ = -1;
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads = std::move(threads_);
    }
    for (auto& t : threads) t.join();
    if (ctx_) SSL_CTX_free(ctx_);
    ctx_ = nullptr;
  }

  bool ok() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int handshakeFailures() const { return handshakeFailures_.load(); }
  uint64_t sourceSent() const { return sourceSent_.load(); }
  uint64_t received() const { return received_.load(); }
  int endStreamsSeen() const { return endStreams_.load(); }
  int resetsSeen() const { return resets_.load(); }  // streams closed with an error code
  std::vector<std::string> peerIds() const {
    std::lock_guard lock(mu_);
    return peerIds_;
  }
  std::vector<std::string> peerCerts() const {
    std::lock_guard lock(mu_);
    return peerCerts_;
  }
  std::vector<std::string> authorities() const {
    std::lock_guard lock(mu_);
    return authorities_;
  }

 private:
  struct Stream {
    std::string authority;
    std::string out;
    bool peerEnded = false;
    bool source = false;
    uint64_t sourceLeft = 0;
    uint64_t sourceOff = 0;
    bool rstAfterData = false;
  };
  struct Conn {
    TestGateway* gw;
    nghttp2_session* session = nullptr;
    std::map<int32_t, std::unique_ptr<Stream>> streams;
    int32_t goawayAfter = 0;
  };

  void acceptLoop() {
    for (;;) {
      int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (stopped_) {
        ::close(fd);
        return;
      }
      std::lock_guard lock(mu_);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static ssize_t readData(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void* user) {
    auto* c = static_cast<Conn*>(user);
    auto* st = static_cast<Stream*>(source->ptr);
    if (st->source) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(length, st->sourceLeft));
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(patternByte(st->sourceOff + i));
      st->sourceOff += n;
      st->sourceLeft -= n;
      c->gw->sourceSent_ += n;
      if (st->sourceLeft == 0) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
    if (st->out.empty()) {
      if (st->peerEnded) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
      }
      return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = std::min(length, st->out.size());
    std::memcpy(buf, st->out.data(), n);
    st->out.erase(0, n);
    return static_cast<ssize_t>(n);
  }

  static int onBeginHeaders(nghttp2_session* s, const nghttp2_frame* f, void* user) {
    auto* c = static_cast<Conn*>(user);
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto st = std::make_unique<Stream>();
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st.get());
    c->streams[f->hd.stream_id] = std::move(st);
    return 0;
  }

  static int onHeader(nghttp2_session* s, const nghttp2_frame* f, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(s, f->hd.stream_id));
    if (!st) return 0;
    if (std::string_view(reinterpret_cast<const char*>(name), namelen) == ":authority") {
      st->authority.assign(reinterpret_cast<const char*>(value), valuelen);
    }
    return 0;
  }

  static nghttp2_nv nv(const char* n, const std::string& v) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), std::strlen(n),
                      v.size(), NGHTTP2_NV_FLAG_NONE};
  }

  static int onFrameRecv(nghttp2_session* s, const nghttp2_frame* f, void* user) {
    auto* c = static_cast<Conn*>(user);
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(s, f->hd.stream_id));
    if (!st) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      {
        std::lock_guard lock(c->gw->mu_);
        c->gw->authorities_.push_back(st->authority);
      }
      const std::string& a = st->authority;
      auto starts = [&](std::string_view p) { return a.rfind(p, 0) == 0; };
      if (starts("deny.") || starts("unavail.")) {
        std::string status = starts("deny.") ? "403" : "503";
        std::string reason = starts("deny.") ? "denied_authz" : "upstream_connect_failed";
        nghttp2_nv h[] = {nv(":status", status), nv("x-tollgate-denied", reason)};
        nghttp2_submit_response(s, f->hd.stream_id, h, 2, nullptr);
        return 0;
      }
      if (starts("refuse.")) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
      }
      if (starts("source-")) {
        st->source = true;
        st->sourceLeft = std::stoull(a.substr(7));
      }
      st->rstAfterData = starts("rst-after.");
      std::string ok = "200";
      nghttp2_nv h[] = {nv(":status", ok)};
      nghttp2_data_provider prd;
      prd.source.ptr = st;
      prd.read_callback = &TestGateway::readData;
      nghttp2_submit_response(s, f->hd.stream_id, h, 1, &prd);
      if (starts("goaway.")) {
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR, nullptr, 0);
      }
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      st->peerEnded = true;
      c->gw->endStreams_++;
      nghttp2_session_resume_data(s, f->hd.stream_id);
    }
    return 0;
  }

  static int onData(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* user) {
    auto* c = static_cast<Conn*>(user);
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(s, id));
    if (!st) return 0;
    c->gw->received_ += len;
    if (st->rstAfterData) {
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CONNECT_ERROR);
      return 0;
    }
    if (!st->source) {
      st->out.append(reinterpret_cast<const char*>(data), len);
      nghttp2_session_resume_data(s, id);
    }
    return 0;
  }

  static int onClose(nghttp2_session* s, int32_t id, uint32_t errorCode, void* user) {
    auto* c = static_cast<Conn*>(user);
    if (errorCode != NGHTTP2_NO_ERROR) c->gw->resets_++;
    nghttp2_session_set_stream_user_data(s, id, nullptr);
    c->streams.erase(id);
    return 0;
  }

  void serve(int fd) {
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (SSL_accept(ssl) != 1) {
      handshakeFailures_++;
      ERR_clear_error();
      SSL_free(ssl);
      ::close(fd);
      return;
    }
    X509* peer = SSL_get_peer_certificate(ssl);
    {
      std::lock_guard lock(mu_);
      peerIds_.push_back(identity::parseSpiffeIdFromCert(peer).value_or(""));
      auto pem = identity::toPem(peer);
      peerCerts_.push_back(pem ? *pem : std::string());
    }
    X509_free(peer);
    connections_++;
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

    Conn c{this};
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onClose);
    nghttp2_session_server_new(&c.session, cbs, &c);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options_.maxConcurrentStreams}};
    nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, settings, 1);

    std::string out;
    size_t retryLen = 0;
    bool dead = false;
    while (!dead && !stopped_) {
      for (;;) {
        const uint8_t* p = nullptr;
        ssize_t n = nghttp2_session_mem_send(c.session, &p);
        if (n < 0) dead = true;
        if (n <= 0) break;
        out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
        if (out.size() > (1u << 20)) break;
      }
      while (!dead && !out.empty()) {
        size_t len = retryLen ? retryLen : std::min<size_t>(out.size(), 16384);
        int w = SSL_write(ssl, out.data(), static_cast<int>(len));
        if (w > 0) {
          out.erase(0, static_cast<size_t>(w));
          retryLen = 0;
          continue;
        }
        int e = SSL_get_error(ssl, w);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
          retryLen = len;
          break;
        }
        dead = true;
      }
      if (dead) break;
      if (!nghttp2_session_want_read(c.session) && !nghttp2_session_want_write(c.session) &&
          out.empty()) {
        break;
      }
      pollfd pfd{fd, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
      ::poll(&pfd, 1, 20);
      for (;;) {
        uint8_t buf[16384];
        int r = SSL_read(ssl, buf, sizeof buf);
        if (r > 0) {
          if (nghttp2_session_mem_recv(c.session, buf, static_cast<size_t>(r)) < 0) dead = true;
          if (dead) break;
          continue;
        }
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) dead = true;
        break;
      }
    }
    nghttp2_session_del(c.session);
    ERR_clear_error();
    SSL_free(ssl);
    ::close(fd);
  }

  Options options_;
  SSL_CTX* ctx_ = nullptr;
  int listenFd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::thread acceptThread_;
  mutable std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<std::string> peerIds_;
  std::vector<std::string> peerCerts_;
  std::vector<std::string> authorities_;
  std::atomic<int> connections_{0};
  std::atomic<int> handshakeFailures_{0};
  std::atomic<uint64_t> sourceSent_{0};
  std::atomic<uint64_t> received_{0};
  std::atomic<int> endStreams_{0};
  std::atomic<int> resets_{0};
};

}  // namespace tollgate::testing
