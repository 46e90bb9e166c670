#pragma once

// Loopback peers for the gateway tests: plain HTTP and echo upstreams, a TLS upstream, a DNS
// stub, and blocking TLS / HTTP/2 clients. Everything binds 127.0.0.1 port 0.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tollgate::gateway::testing {

inline void setTimeouts(int fd, int seconds) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline int listenLoopback(uint16_t* port, int type = SOCK_STREAM) {
  int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) return -1;
  if (type == SOCK_STREAM) ::listen(fd, 64);
  socklen_t len = sizeof sin;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
  *port = ntohs(sin.sin_port);
  return fd;
}

inline int connectLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
    ::close(fd);
    return -1;
  }
  setTimeouts(fd, 10);
  return fd;
}

// Accepts on 127.0.0.1:0 and runs handler(fd) on a thread per connection (joined on exit).
class TcpServer {
 public:
  using Handler = std::function<void(int fd)>;
  explicit TcpServer(Handler h) : handler_(std::move(h)) {
    fd_ = listenLoopback(&port_);
    acceptor_ = std::thread([this] {
      for (;;) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        accepted_++;
        setTimeouts(c, 10);
        std::lock_guard lock(mu_);
        workers_.emplace_back([this, c] {
          handler_(c);
          ::close(c);
        });
      }
    });
  }
  ~TcpServer() {
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(fd_);
    std::lock_guard lock(mu_);
    for (auto& t : workers_) t.join();
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::thread acceptor_;
};

inline std::string readHead(int fd) {
  std::string in;
  char buf[4096];
  while (in.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  return in;
}

inline std::string httpResponse(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

inline void writeAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Echoes every byte back, but only once `barrier` connections are open at the same time: a
// client whose tunnels were served one after another would wait forever (and time out).
class BarrierEcho {
 public:
  explicit BarrierEcho(int barrier) : barrier_(barrier), server_([this](int fd) { serve(fd); }) {}
  uint16_t port() const { return server_.port(); }

 private:
  void serve(int fd) {
    {
      std::unique_lock lock(mu_);
      ++open_;
      cv_.notify_all();
      if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return open_ >= barrier_; })) {
        return;
      }
    }
    char buf[16384];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      writeAll(fd, std::string(buf, static_cast<size_t>(n)));
    }
    ::shutdown(fd, SHUT_WR);
  }
  int barrier_;
  std::mutex mu_;
  std::condition_variable cv_;
  int open_ = 0;
  TcpServer server_;  // last: its threads use the members above
};

// Answers A queries from a name -> IPv4 table, AAAA with no records, everything else NXDOMAIN.
class DnsStub {
 public:
  explicit DnsStub(std::map<std::string, std::string> table) : table_(std::move(table)) {
    fd_ = listenLoopback(&port_, SOCK_DGRAM);
    thread_ = std::thread([this] { loop(); });
  }
  ~DnsStub() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void loop() {
    unsigned char buf[512];
    for (;;) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) return;
      if (n < 17) continue;
      std::string name;
      size_t i = 12;
      while (i < static_cast<size_t>(n) && buf[i] != 0) {
        size_t l = buf[i];
        if (!name.empty()) name += '.';
        name.append(reinterpret_cast<char*>(buf + i + 1), l);
        i += l + 1;
      }
      size_t qend = i + 5;
      if (qend > static_cast<size_t>(n)) continue;
      uint16_t qtype = static_cast<uint16_t>(buf[i + 1] << 8 | buf[i + 2]);
      std::string resp(reinterpret_cast<char*>(buf), qend);
      resp[2] = static_cast<char>(0x81);
      resp[3] = static_cast<char>(0x80);
      resp[6] = resp[7] = resp[8] = resp[9] = resp[10] = resp[11] = 0;
      auto it = table_.find(name);
      if (it == table_.end()) {
        resp[3] = static_cast<char>(0x83);  // NXDOMAIN
      } else if (qtype == 1) {
        in_addr a{};
        ::inet_pton(AF_INET, it->second.c_str(), &a);
        resp[7] = 1;
        resp += std::string("\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04", 12);
        resp.append(reinterpret_cast<char*>(&a), 4);
      }
      ::sendto(fd_, resp.data(), resp.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  std::map<std::string, std::string> table_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

inline SSL_CTX* newCtx(const SSL_METHOD* m, const std::string& cert, const std::string& key,
                       const std::string& ca) {
  SSL_CTX* ctx = SSL_CTX_new(m);
  if (!cert.empty()) {
    SSL_CTX_use_certificate_chain_file(ctx, cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM);
  }
  if (!ca.empty()) {
    SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

// A TLS upstream: answers one HTTP request per connection with `body`.
class TlsHttpServer {
 public:
  // clientCa non-empty: a client certificate issued by it is required (mutual TLS).
  TlsHttpServer(const std::string& cert, const std::string& key, std::string body,
                const std::string& clientCa = "")
      : ctx_(newCtx(TLS_server_method(), cert, key, clientCa), &SSL_CTX_free),
        body_(std::move(body)),
        server_([this](int fd) { serve(fd); }) {
    if (!clientCa.empty()) {
      SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
  }
  ~TlsHttpServer() = default;
  uint16_t port() const { return server_.port(); }
  int handshakes() const { return handshakes_.load(); }

 private:
  void serve(int fd) {
    SSL* ssl = SSL_new(ctx_.get());
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      handshakes_++;
      std::string in;
      char buf[4096];
      while (in.find("\r\n\r\n") == std::string::npos) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      std::string out = httpResponse(body_);
      SSL_write(ssl, out.data(), static_cast<int>(out.size()));
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
  }
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  std::string body_;
  std::atomic<int> handshakes_{0};
  TcpServer server_;
};

// A blocking TLS client connection to the gateway.
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& cert, const std::string& key, const std::string& ca,
            const std::string& alpnWire)
      : ctx_(newCtx(TLS_client_method(), cert, key, ca), &SSL_CTX_free) {
    fd_ = connectLoopback(port);
    ssl_ = SSL_new(ctx_.get());
    SSL_set_fd(ssl_, fd_);
    SSL_set1_host(ssl_, "127.0.0.1");
    if (!alpnWire.empty()) {
      SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(alpnWire.data()),
                          static_cast<unsigned>(alpnWire.size()));
    }
    connected_ = fd_ >= 0 && SSL_connect(ssl_) == 1;
  }
  ~TlsClient() {
    SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  SSL* ssl() { return ssl_; }
  std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned n = 0;
    SSL_get0_alpn_selected(ssl_, &p, &n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  bool write(const std::string& s) {
    return SSL_write(ssl_, s.data(), static_cast<int>(s.size())) == static_cast<int>(s.size());
  }
  // Reads until `until` appears, the peer closes, or an error/timeout.
  std::string read(const std::string& until = {}) {
    std::string in;
    char buf[4096];
    while (until.empty() || in.find(until) == std::string::npos) {
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    return in;
  }

 private:
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool connected_ = false;
};

// A minimal HTTP/2 client over a TlsClient: CONNECT streams with a request body, collected
// responses. Blocking; everything runs in the calling thread.
class H2Client {
 public:
  struct StreamResult {
    std::map<std::string, std::string> headers;
    std::string body;
    std::string toSend;
    size_t sent = 0;
    bool endStream = true;  // send END_STREAM after toSend
    bool closed = false;
    uint32_t errorCode = 0;
  };

  explicit H2Client(TlsClient& tls) : tls_(tls) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs,
        [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v,
           size_t vl, uint8_t, void* u) -> int {
          auto* self = static_cast<H2Client*>(u);
          self->streams_[f->hd.stream_id]
              .headers[std::string(reinterpret_cast<const char*>(n), nl)] =
              std::string(reinterpret_cast<const char*>(v), vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t l, void* u) -> int {
          static_cast<H2Client*>(u)->streams_[id].body.append(reinterpret_cast<const char*>(d), l);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t id, uint32_t code, void* u) -> int {
          auto& s = static_cast<H2Client*>(u)->streams_[id];
          s.closed = true;
          s.errorCode = code;
          return 0;
        });
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~H2Client() { nghttp2_session_del(session_); }

  int32_t connect(const std::string& authority, std::string body, bool endStream = true) {
    nghttp2_nv nva[] = {nv(":method", "CONNECT"), nv(":authority", authority)};
    nghttp2_data_provider prd{};
    prd.read_callback = [](nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source*, void* u) -> ssize_t {
      auto& s = static_cast<H2Client*>(u)->streams_[id];
      size_t n = std::min(len, s.toSend.size() - s.sent);
      std::memcpy(buf, s.toSend.data() + s.sent, n);
      s.sent += n;
      if (s.sent == s.toSend.size()) {
        if (!s.endStream) return n ? static_cast<ssize_t>(n) : ssize_t{NGHTTP2_ERR_DEFERRED};
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      }
      return static_cast<ssize_t>(n);
    };
    int32_t id = nghttp2_submit_request(session_, nullptr, nva, 2, &prd, nullptr);
    streams_[id].toSend = std::move(body);
    streams_[id].endStream = endStream;
    return id;
  }

  // More request bytes on an open stream (END_STREAM after them when `end`).
  void send(int32_t id, const std::string& more, bool end) {
    auto& s = streams_[id];
    s.toSend += more;
    s.endStream = end;
    nghttp2_session_resume_data(session_, id);
  }

  // Exchanges frames until every stream in `ids` is closed or `done()` (or an I/O error).
  bool run(const std::vector<int32_t>& ids, std::function<bool()> done = {}) {
    auto allClosed = [&] {
      if (done && done()) return true;
      for (int32_t id : ids) {
        if (!streams_[id].closed) return false;
      }
      return true;
    };
    char buf[16384];
    for (;;) {
      for (;;) {
        const uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) return false;
        if (n == 0) break;
        if (!tls_.write(std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(n)))) {
          return false;
        }
      }
      if (allClosed()) return true;
      int n = SSL_read(tls_.ssl(), buf, sizeof buf);
      if (n <= 0) return false;
      if (nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buf),
                                   static_cast<size_t>(n)) < 0) {
        return false;
      }
    }
  }

  StreamResult& stream(int32_t id) { return streams_[id]; }

 private:
  static nghttp2_nv nv(const char* n, std::string_view v) {
    return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(n)),
                      const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(v.data())),
                      std::strlen(n), v.size(), NGHTTP2_NV_FLAG_NONE};
  }
  TlsClient& tls_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, StreamResult> streams_;
};

}  // namespace tollgate::gateway::testing
