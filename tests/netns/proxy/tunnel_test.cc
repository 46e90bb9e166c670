// The gateway tunnel client (HTTP/2 CONNECT over TLS 1.3 mTLS) against a small in-test gateway on
// loopback, then sessions through the outbound listener whose gateway routes use it. The pool
// tests need no privileges; the session tests build a pod netns and skip without root.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "identity/certificate_authority.h"
#include "identity/clock.h"
#include "agent/netns.h"
#include "agent/redirect.h"
#include "identity/svid_manager.h"
#include "agent/tunnel_identity.h"
#include "policy/config_loader.h"
#include "policy/snapshot.h"
#include "proxy/access_log.h"
#include "proxy/metrics.h"
#include "proxy/outbound_listener.h"
#include "proxy/relay_buffer.h"
#include "proxy/resolver.h"
#include "proxy/tunnel_pool.h"
#include "tests/netns/proxy/tunnel_gateway_fixture.h"
#include "tests/common/eventually.h"

namespace tollgate::proxy {
namespace {

using tollgate::tests::eventually;

namespace fs = std::filesystem;
using boost::system::error_code;
using testing::TestGateway;
using namespace std::chrono_literals;

constexpr char kTrustDomain[] = "cluster.local";
constexpr char kClientId[] = "spiffe://cluster.local/ns/default/sa/client";

class FakeClock : public identity::Clock {
 public:
  explicit FakeClock(std::chrono::system_clock::time_point t) : t_(t) {}
  std::chrono::system_clock::time_point now() const override {
    std::lock_guard lock(mu_);
    return t_;
  }
  void set(std::chrono::system_clock::time_point t) {
    std::lock_guard lock(mu_);
    t_ = t;
  }

 private:
  mutable std::mutex mu_;
  std::chrono::system_clock::time_point t_;
};

// Runs `fn` (returning awaitable<T>) on `io` and waits for its result.
template <typename F>
auto runOn(asio::io_context& io, F fn) {
  return asio::co_spawn(io, std::move(fn), asio::use_future).get();
}

uint16_t unusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  socklen_t len = sizeof sin;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
  ::close(fd);  // nothing listens there afterwards: connects are refused
  return ntohs(sin.sin_port);
}


// CAs made by scripts/gen-ca, once for the suite: ours and a foreign one.
class CaDir {
 public:
  static CaDir& get() {
    static CaDir dir;
    return dir;
  }
  std::shared_ptr<const identity::CertificateAuthority> load(const std::string& name) {
    auto r = identity::CertificateAuthority::fromFiles((dir_ / name / "ca-cert.pem").string(),
                                                    (dir_ / name / "ca-key.pem").string(),
                                                    (dir_ / name / "cert-chain.pem").string());
    if (!r) return nullptr;
    return std::make_shared<const identity::CertificateAuthority>(std::move(*r));
  }
  ~CaDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

 private:
  CaDir() {
    char tmpl[] = "/tmp/tollgate-tunnel-XXXXXX";
    if (!::mkdtemp(tmpl)) return;
    dir_ = tmpl;
    for (auto [sub, flags] : {std::pair{"root", ""}, std::pair{"foreign", "--name foreign"}}) {
      std::string cmd = std::string(TOLLGATE_SOURCE_DIR "/scripts/gen-ca ") + flags + " " +
                        (dir_ / sub).string() + " >/dev/null 2>&1";
      if (std::system(cmd.c_str()) != 0) return;
    }
  }
  fs::path dir_;
};

class TunnelPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = CaDir::get().load("root");
    ASSERT_TRUE(ca_) << "gen-ca failed";
    // Starts 61 s in the past so a 2-minute SVID is past half-life "now" (rotation test) while
    // every certificate stays valid at the real time the TLS stacks check.
    clock_ = std::make_unique<FakeClock>(std::chrono::system_clock::now() - 61s);
    svids_ = std::make_unique<identity::SvidManager>(ca_, kTrustDomain, *clock_, 120s);
    ASSERT_TRUE(svids_->addPod("default", "client", "client"));
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    if (pool_) pool_->shutdown();
    work_.reset();
    for (auto& t : threads_) t.join();
    pool_.reset();
  }

  TunnelPool& pool(TunnelPoolOptions o = {}) {
    pool_ = std::make_unique<TunnelPool>(io_, agent::makeSvidSource(*svids_), &metrics_, o);
    return *pool_;
  }

  TunnelRequest request(uint16_t port, std::string authority) {
    TunnelRequest r;
    r.ns = "default";
    r.serviceAccount = "client";
    r.gateway = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
    r.authority = std::move(authority);
    r.sockets = [](int family) { return makeMarkedSocket(family, 0); };
    return r;
  }

  TunnelPool::OpenResult open(uint16_t port, std::string authority) {
    auto req = request(port, std::move(authority));
    return runOn(io_, [this, req]() { return pool_->open(req); });
  }

  // Writes `data`, then reads until `want` bytes came back.
  std::string roundTrip(const std::shared_ptr<TunnelStream>& s, std::string data, size_t want) {
    return runOn(io_, [s, data, want]() -> awaitable<std::string> {
      error_code ec;
      co_await s->write(asio::buffer(data), ec);
      std::string got;
      char buf[4096];
      while (!ec && got.size() < want) {
        size_t n = co_await s->read(asio::buffer(buf), ec);
        got.append(buf, n);
      }
      co_return got;
    });
  }

  // Reads to END_STREAM; *ec gets how it ended.
  std::string readAll(const std::shared_ptr<TunnelStream>& s, error_code* ecOut) {
    return runOn(io_, [s, ecOut]() -> awaitable<std::string> {
      error_code ec;
      std::string got;
      std::vector<char> buf(64 * 1024);
      for (;;) {
        size_t n = co_await s->read(asio::buffer(buf), ec);
        got.append(buf.data(), n);
        if (ec) break;
      }
      *ecOut = ec;
      co_return got;
    });
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::vector<std::thread> threads_;
  std::shared_ptr<const identity::CertificateAuthority> ca_;
  std::unique_ptr<FakeClock> clock_;
  std::unique_ptr<identity::SvidManager> svids_;
  Metrics metrics_;
  std::unique_ptr<TunnelPool> pool_;
};

TEST_F(TunnelPoolTest, TwoFlowsShareOneTlsConnection) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  pool();
  auto a = open(gw.port(), "a.test:80");
  auto b = open(gw.port(), "b.test:443");
  ASSERT_TRUE(a) << a.error().detail;
  ASSERT_TRUE(b) << b.error().detail;
  EXPECT_EQ((*a)->connection(), (*b)->connection());
  EXPECT_EQ(roundTrip(*a, "ping-a", 6), "ping-a");
  EXPECT_EQ(roundTrip(*b, "ping-b", 6), "ping-b");
  EXPECT_EQ(gw.connections(), 1);
  EXPECT_EQ(pool_->connectionCount(), 1u);
  EXPECT_EQ(metrics_.tunnelStreams.load(), 2u);
  EXPECT_EQ(metrics_.tunnelConnectionsActive.load(), 1);
  // The gateway saw the client's SVID and the names it was asked for.
  EXPECT_EQ(gw.peerIds(), std::vector<std::string>{kClientId});
  EXPECT_EQ(gw.authorities(), (std::vector<std::string>{"a.test:80", "b.test:443"}));
  EXPECT_EQ((*a)->presentedIdentity(), kClientId);
}

TEST_F(TunnelPoolTest, SequentialShortFlowsReuseAHandfulOfConnections) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  pool();
  for (int i = 0; i < 200; ++i) {
    auto s = open(gw.port(), fmt::format("f{}.test:80", i));
    ASSERT_TRUE(s) << i << ": " << s.error().detail;
    ASSERT_EQ(roundTrip(*s, "x", 1), "x");
    (*s)->shutdownWrite();
    error_code ec;
    readAll(*s, &ec);
    ASSERT_EQ(ec, asio::error::eof);
    (*s)->release();
  }
  EXPECT_LE(gw.connections(), 3);
  EXPECT_EQ(metrics_.tunnelStreams.load(), 200u);
  EXPECT_LE(metrics_.tunnelConnectionsOpened.load(), 3u);
}

TEST_F(TunnelPoolTest, WithoutPoolingEveryFlowGetsItsOwnConnection) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  TunnelPoolOptions o;
  o.pooling = false;
  pool(o);
  for (int i = 0; i < 5; ++i) {
    auto s = open(gw.port(), "x.test:80");
    ASSERT_TRUE(s) << s.error().detail;
    EXPECT_EQ(roundTrip(*s, "y", 1), "y");
    (*s)->shutdownWrite();
    error_code ec;
    readAll(*s, &ec);
  }
  EXPECT_EQ(gw.connections(), 5);
  // Each connection closes once its only flow is done.
  EXPECT_TRUE(eventually([&] { return metrics_.tunnelConnectionsActive.load() == 0; }));
}

TEST_F(TunnelPoolTest, FourMebibytesEchoBothWaysConcurrently) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  pool();
  auto s = open(gw.port(), "bulk.test:80");
  ASSERT_TRUE(s) << s.error().detail;
  constexpr size_t kSize = 4 << 20;
  std::string data(kSize, '\0');
  std::mt19937 rng(7);
  for (auto& c : data) c = static_cast<char>(rng());
  auto stream = *s;
  auto writer = asio::co_spawn(
      io_,
      [stream, &data]() -> awaitable<bool> {
        error_code ec;
        for (size_t off = 0; off < data.size() && !ec; off += 64 * 1024) {
          co_await stream->write(asio::buffer(data.data() + off, 64 * 1024), ec);
        }
        stream->shutdownWrite();
        co_return !ec;
      },
      asio::use_future);
  error_code ec;
  std::string got = readAll(stream, &ec);
  EXPECT_TRUE(writer.get());
  EXPECT_EQ(ec, asio::error::eof);
  ASSERT_EQ(got.size(), kSize);
  EXPECT_TRUE(got == data);
}

TEST_F(TunnelPoolTest, GatewayIsHeldBackWhileTheAppDoesNotRead) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  TunnelPoolOptions o;
  pool(o);
  constexpr uint64_t kSize = 4 << 20;
  auto s = open(gw.port(), fmt::format("source-{}.test:80", kSize));
  ASSERT_TRUE(s) << s.error().detail;
  // Nothing reads: the gateway may send one stream window and then must stop. (Waiting for
  // something NOT to happen needs a pause; the counter must settle.)
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(25ms);
    uint64_t now = gw.sourceSent();
    if (now == last && now > 0) break;
    last = now;
  }
  EXPECT_GT(gw.sourceSent(), 0u);
  EXPECT_LE(gw.sourceSent(), static_cast<uint64_t>(o.limits.streamWindow));
  error_code ec;
  std::string got = readAll(*s, &ec);
  EXPECT_EQ(ec, asio::error::eof);
  ASSERT_EQ(got.size(), kSize);
  bool same = true;
  for (uint64_t i = 0; i < kSize && same; ++i) same = got[i] == testing::patternByte(i);
  EXPECT_TRUE(same);
}

TEST_F(TunnelPoolTest, ConnectionWindowComesBackFromFinishedAndResetStreams) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  TunnelPoolOptions o;
  o.limits.connectionWindow = 1 << 20;  // small, so a leak would stall the connection quickly
  pool(o);
  // Streams reset with unread bytes in flight, then more bytes in total than the connection
  // window: everything must still flow over the one connection.
  for (int i = 0; i < 4; ++i) {
    uint64_t before = gw.sourceSent();
    auto s = open(gw.port(), "source-1000000.test:80");
    ASSERT_TRUE(s) << s.error().detail;
    // At least a default-sized window is in flight, unread, when the stream is reset.
    EXPECT_TRUE(eventually([&] { return gw.sourceSent() >= before + 65535; }));
    (*s)->reset();
  }
  for (int i = 0; i < 3; ++i) {
    auto s = open(gw.port(), "source-1000000.test:80");
    ASSERT_TRUE(s) << s.error().detail;
    error_code ec;
    EXPECT_EQ(readAll(*s, &ec).size(), 1000000u) << i;
    EXPECT_EQ(ec, asio::error::eof);
  }
  EXPECT_EQ(gw.connections(), 1);
}

TEST_F(TunnelPoolTest, HalfCloseBothWays) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  pool();
  // App EOF -> END_STREAM: the gateway still answers, then ends its side.
  auto s = open(gw.port(), "echo.test:80");
  ASSERT_TRUE(s) << s.error().detail;
  auto stream = *s;
  error_code ec;
  runOn(io_, [stream]() -> awaitable<void> {
    error_code e;
    co_await stream->write(asio::buffer(std::string_view("hello")), e);
    stream->shutdownWrite();
  });
  EXPECT_EQ(readAll(stream, &ec), "hello");
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_GE(gw.endStreamsSeen(), 1);

  // END_STREAM from the gateway first: the app's direction keeps flowing.
  auto t = open(gw.port(), "source-5.test:80");
  ASSERT_TRUE(t) << t.error().detail;
  EXPECT_EQ(readAll(*t, &ec).size(), 5u);
  EXPECT_EQ(ec, asio::error::eof);
  uint64_t before = gw.received();
  runOn(io_, [stream = *t]() -> awaitable<void> {
    error_code e;
    co_await stream->write(asio::buffer(std::string_view("late")), e);
    stream->shutdownWrite();
  });
  EXPECT_TRUE(eventually([&] { return gw.received() == before + 4; }));
}

TEST_F(TunnelPoolTest, DenialAndGatewayErrorsCarryTheGatewaysReason) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  pool();
  auto d = open(gw.port(), "deny.test:443");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().kind, TunnelError::Kind::Denied);
  EXPECT_EQ(d.error().status, 403);
  EXPECT_EQ(d.error().appReason, "denied_authz");
  auto u = open(gw.port(), "unavail.test:443");
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().kind, TunnelError::Kind::Failed);
  EXPECT_EQ(u.error().status, 503);
  EXPECT_EQ(u.error().appReason, "upstream_connect_failed");
  auto r = open(gw.port(), "refuse.test:443");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, "stream_refused");
  EXPECT_EQ(r.error().appReason, "gateway_unavailable");
  // None of this hurt the connection: the next flow still uses it.
  auto ok = open(gw.port(), "fine.test:80");
  ASSERT_TRUE(ok) << ok.error().detail;
  EXPECT_EQ(roundTrip(*ok, "z", 1), "z");
  EXPECT_EQ(gw.connections(), 1);
}

TEST_F(TunnelPoolTest, RstStreamResetsTheFlow) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  pool();
  auto s = open(gw.port(), "rst-after.test:80");
  ASSERT_TRUE(s) << s.error().detail;
  runOn(io_, [stream = *s]() -> awaitable<void> {
    error_code e;
    co_await stream->write(asio::buffer(std::string_view("x")), e);
  });
  error_code ec;
  readAll(*s, &ec);
  EXPECT_EQ(ec, asio::error::connection_reset);
}

TEST_F(TunnelPoolTest, GatewayDownIsUnavailableThenBacksOff) {
  pool();
  uint16_t port = unusedPort();
  auto a = open(port, "x.test:80");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().kind, TunnelError::Kind::Unavailable);
  EXPECT_EQ(a.error().reason, "gateway_unreachable");
  EXPECT_EQ(a.error().appReason, "gateway_unavailable");
  EXPECT_EQ(a.error().status, 503);
  auto b = open(port, "x.test:80");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().reason, "backoff");
  EXPECT_EQ(metrics_.tunnelConnectionsActive.load(), 0);
}

TEST_F(TunnelPoolTest, GatewayOfAnotherTrustDomainFailsTheHandshake) {
  auto foreign = CaDir::get().load("foreign");
  ASSERT_TRUE(foreign);
  TestGateway gw(*foreign, {});
  ASSERT_TRUE(gw.ok());
  pool();
  auto s = open(gw.port(), "x.test:80");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().reason, "tls_handshake_failed");
  EXPECT_EQ(s.error().appReason, "gateway_unavailable");
  EXPECT_EQ(gw.connections(), 0);
}

TEST_F(TunnelPoolTest, RotatedSvidIsUsedByNewConnectionsOldOnesKeepWorking) {
  // One stream per connection, so the second flow needs a second connection.
  TestGateway gw(*ca_, TestGateway::Options{.maxConcurrentStreams = 1});
  ASSERT_TRUE(gw.ok());
  pool();
  auto a = open(gw.port(), "a.test:80");
  ASSERT_TRUE(a) << a.error().detail;
  EXPECT_EQ(roundTrip(*a, "1", 1), "1");
  auto before = svids_->svidFor("default", "client");
  ASSERT_TRUE(before);

  clock_->set(std::chrono::system_clock::now());
  ASSERT_TRUE(svids_->needsRotation(clock_->now()));
  ASSERT_TRUE(svids_->rotate(clock_->now()));
  auto after = svids_->svidFor("default", "client");
  ASSERT_TRUE(after);
  ASSERT_NE((*before)->certPem, (*after)->certPem);

  auto b = open(gw.port(), "b.test:80");
  ASSERT_TRUE(b) << b.error().detail;
  EXPECT_NE((*a)->connection(), (*b)->connection());
  auto certs = gw.peerCerts();
  ASSERT_EQ(certs.size(), 2u);
  EXPECT_EQ(certs[0], (*before)->certPem);
  EXPECT_EQ(certs[1], (*after)->certPem);
  EXPECT_EQ(gw.peerIds(), (std::vector<std::string>{kClientId, kClientId}));
  // The connection made with the old SVID still carries its stream.
  EXPECT_EQ(roundTrip(*a, "still", 5), "still");
  EXPECT_EQ(roundTrip(*b, "new", 3), "new");
}

TEST_F(TunnelPoolTest, RespectsTheGatewaysStreamLimitAndTheConnectionCap) {
  TestGateway gw(*ca_, TestGateway::Options{.maxConcurrentStreams = 1});
  ASSERT_TRUE(gw.ok());
  pool();  // 2 connections per key
  auto a = open(gw.port(), "a.test:80");
  ASSERT_TRUE(a) << a.error().detail;
  EXPECT_EQ(roundTrip(*a, "a", 1), "a");  // the gateway's SETTINGS have arrived
  auto b = open(gw.port(), "b.test:80");
  ASSERT_TRUE(b) << b.error().detail;
  EXPECT_NE((*a)->connection(), (*b)->connection());
  auto c = open(gw.port(), "c.test:80");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().reason, "stream_limit");
  EXPECT_EQ(gw.connections(), 2);
  // A finished stream gives its slot back.
  (*a)->shutdownWrite();
  error_code ec;
  readAll(*a, &ec);
  auto d = open(gw.port(), "d.test:80");
  ASSERT_TRUE(d) << d.error().detail;
  EXPECT_EQ((*d)->connection(), (*a)->connection());
  EXPECT_EQ(roundTrip(*d, "d", 1), "d");
  EXPECT_EQ(gw.connections(), 2);
}

TEST_F(TunnelPoolTest, GoawayLetsOpenStreamsFinishAndMovesNewOnes) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  pool();
  auto a = open(gw.port(), "goaway.test:80");
  ASSERT_TRUE(a) << a.error().detail;
  EXPECT_EQ(roundTrip(*a, "before", 6), "before");
  auto b = open(gw.port(), "b.test:80");
  ASSERT_TRUE(b) << b.error().detail;
  EXPECT_NE((*a)->connection(), (*b)->connection());
  EXPECT_EQ(gw.connections(), 2);
  // The stream the gateway accepted before GOAWAY finishes normally.
  EXPECT_EQ(roundTrip(*a, "after", 5), "after");
  (*a)->shutdownWrite();
  error_code ec;
  readAll(*a, &ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(TunnelPoolTest, IdleConnectionIsClosed) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  TunnelPoolOptions o;
  o.limits.idleTimeout = 200ms;
  pool(o);
  auto s = open(gw.port(), "a.test:80");
  ASSERT_TRUE(s);
  (*s)->shutdownWrite();
  error_code ec;
  readAll(*s, &ec);
  EXPECT_TRUE(eventually([&] { return pool_->connectionCount() == 0; }));
  EXPECT_EQ(metrics_.tunnelConnectionsActive.load(), 0);
}

// Manual interop check against a running tollgate-gateway (not part of the suite):
//   TOLLGATE_INTEROP_GATEWAY=127.0.0.1:15008 TOLLGATE_INTEROP_CA_DIR=<gen-ca dir>
//   TOLLGATE_INTEROP_AUTHORITY=host:port netns_proxy_tests --gtest_also_run_disabled_tests
//   --gtest_filter='*Interop*'
// Sends an HTTP/1.1 GET through one CONNECT stream and expects an HTTP response back.
TEST_F(TunnelPoolTest, DISABLED_InteropWithARunningGateway) {
  const char* gwEnv = std::getenv("TOLLGATE_INTEROP_GATEWAY");
  const char* caEnv = std::getenv("TOLLGATE_INTEROP_CA_DIR");
  const char* authEnv = std::getenv("TOLLGATE_INTEROP_AUTHORITY");
  if (!gwEnv || !caEnv || !authEnv) GTEST_SKIP() << "TOLLGATE_INTEROP_* not set";
  auto ca = identity::CertificateAuthority::fromFiles(std::string(caEnv) + "/ca-cert.pem",
                                                   std::string(caEnv) + "/ca-key.pem",
                                                   std::string(caEnv) + "/cert-chain.pem");
  ASSERT_TRUE(ca) << ca.error().str();
  svids_ = std::make_unique<identity::SvidManager>(
      std::make_shared<const identity::CertificateAuthority>(std::move(*ca)), kTrustDomain,
      identity::systemClock());
  ASSERT_TRUE(svids_->addPod("default", "client", "client"));
  pool();
  std::string gw = gwEnv;
  auto colon = gw.rfind(':');
  ASSERT_NE(colon, std::string::npos);
  auto req = request(static_cast<uint16_t>(std::stoi(gw.substr(colon + 1))), authEnv);
  req.gateway =
      asio::ip::tcp::endpoint(asio::ip::make_address(gw.substr(0, colon)), req.gateway.port());
  auto s = runOn(io_, [this, req]() { return pool_->open(req); });
  ASSERT_TRUE(s) << s.error().reason << " " << s.error().appReason << " " << s.error().status
                 << ": " << s.error().detail;
  std::string host = authEnv;
  host = host.substr(0, host.rfind(':'));
  std::string get = "GET / HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
  runOn(io_, [stream = *s, get]() -> awaitable<void> {
    error_code e;
    co_await stream->write(asio::buffer(get), e);
  });
  error_code ec;
  std::string resp = readAll(*s, &ec);
  std::cout << resp.substr(0, 300) << "\n";
  EXPECT_TRUE(resp.starts_with("HTTP/1.")) << resp;
}

// ---------------------------------------------------------------------------------------------
// Sessions through the outbound listener in a pod netns (root).

int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

class SessionTunnelTest : public TunnelPoolTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    TunnelPoolTest::SetUp();
    std::random_device rd;
    int r = static_cast<int>(rd() % 250) + 1;
    pod_ = fmt::format("tgtun-{}-pod", r);
    sh("ip netns del " + pod_);
    ASSERT_EQ(sh("ip netns add " + pod_), 0);
    std::string in = "ip -n " + pod_ + " ";
    ASSERT_EQ(sh(in + "link set lo up"), 0);
    // A route for the app's connect(); the redirect takes the flow before it would leave.
    ASSERT_EQ(sh(in + "link add d0 type veth peer name d1"), 0);
    ASSERT_EQ(sh(in + "link set d0 up"), 0);
    ASSERT_EQ(sh(in + "link set d1 up"), 0);
    ASSERT_EQ(sh(in + fmt::format("addr add 10.254.{}.1/24 dev d0", r)), 0);
    ASSERT_EQ(sh(in + "route add 198.18.0.0/24 dev d0"), 0);
    auto p = agent::Netns::open("/var/run/netns/" + pod_);
    ASSERT_TRUE(p);
    podNs_.emplace(std::move(*p));
    auto redirect = agent::NftRedirect::create(agent::RedirectParams{});
    ASSERT_TRUE(redirect) << redirect.error().str();
    ASSERT_TRUE(redirect->install(*podNs_));
    accessLogPath_ = fmt::format("/tmp/tgtun-{}-access.log", r);
    ASSERT_TRUE(accessLog_.open(accessLogPath_, LogFormat::Text));
    resolver_ = std::make_unique<Resolver>(io_);
  }

  void TearDown() override {
    if (listener_) listener_->close(true);
    TunnelPoolTest::TearDown();
    listener_.reset();
    if (!pod_.empty()) {
      sh("ip netns del " + pod_);
      ::unlink(accessLogPath_.c_str());
    }
  }

  void startProxy(uint16_t gatewayPort, bool withTunnels = true) {
    std::string yaml = config(gatewayPort, "[allowed.test, deny.test, rst-after.test]");
    auto loaded = policy::ConfigLoader::loadString(yaml, "test.yaml");
    ASSERT_TRUE(loaded);
    auto snap = policy::Snapshot::compile(std::move(loaded->config));
    ASSERT_TRUE(snap) << snap.error().str();
    snapshots_.store(*snap);
    if (withTunnels) pool();
    ProxyOptions opts;
    opts.sniffTimeout = 2000ms;
    opts.externalFromNode = true;  // tunnels leave from the test's (node) netns: loopback
    inputs_ = std::make_unique<ProxyInputs>(
        ProxyInputs{io_, opts, snapshots_, metrics_, accessLog_, *resolver_});
    inputs_->tunnels = withTunnels ? pool_.get() : nullptr;
    PodInfo pod;
    pod.ns = "default";
    pod.name = "client";
    pod.serviceAccount = "client";
    const agent::Netns* ns = &*podNs_;
    auto l = OutboundListener::create(
        *inputs_, pod, [ns](const std::function<Result<int>()>& fn) { return ns->runFd(fn); });
    ASSERT_TRUE(l) << l.error().str();
    listener_ = *l;
    listener_->start();
  }

  // Swaps in a new snapshot, as a config reload does.
  void reload(const std::string& yaml) {
    auto loaded = policy::ConfigLoader::loadString(yaml, "test.yaml");
    ASSERT_TRUE(loaded);
    auto snap = policy::Snapshot::compile(std::move(loaded->config));
    ASSERT_TRUE(snap) << snap.error().str();
    snapshots_.store(*snap);
  }

  static std::string config(uint16_t gatewayPort, std::string_view hosts) {
    return fmt::format(R"(
apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  gateways:
  - {{name: egress, address: 127.0.0.1, port: {}, default: true}}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: allowed
  namespace: default
spec:
  hosts: {}
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 443, name: tls, protocol: TLS}}
  resolution: DNS
)",
                       gatewayPort, hosts);
  }

  // A blocking app socket in the pod, connected to 198.18.0.10:port (captured by the redirect).
  int appConnect(uint16_t port) {
    auto fd = podNs_->runFd([]() -> Result<int> {
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (s < 0) return failErrno("socket");
      return s;
    });
    if (!fd) return -1;
    timeval tv{5, 0};
    ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    ::inet_pton(AF_INET, "198.18.0.10", &sin.sin_addr);
    if (::connect(*fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      ::close(*fd);
      return -1;
    }
    return *fd;
  }

  static void sendAll(int fd, std::string_view d) {
    while (!d.empty()) {
      ssize_t n = ::send(fd, d.data(), d.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      d.remove_prefix(static_cast<size_t>(n));
    }
  }

  static std::string readUntil(int fd, std::string_view stop, int* err = nullptr) {
    std::string out;
    char buf[4096];
    if (err) *err = 0;
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && err) *err = errno;
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
      if (!stop.empty() && out.find(stop) != std::string::npos) return out;
    }
  }

  std::string accessLogText() {
    std::ifstream in(accessLogPath_);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  std::string pod_, accessLogPath_;
  std::optional<agent::Netns> podNs_;
  SnapshotHolder snapshots_;
  AccessLog accessLog_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<ProxyInputs> inputs_;
  std::shared_ptr<OutboundListener> listener_;
};

TEST_F(SessionTunnelTest, HttpFlowGoesThroughTheTunnelByName) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  startProxy(gw.port());
  int c = appConnect(80);
  ASSERT_GE(c, 0);
  std::string req = "GET /x HTTP/1.1\r\nHost: allowed.test\r\n\r\n";
  sendAll(c, req);
  // The test gateway echoes: what comes back is the request, carried both ways by the tunnel.
  std::string got = readUntil(c, "\r\n\r\n");
  ::shutdown(c, SHUT_WR);
  std::string rest = readUntil(c, "");  // END_STREAM from the gateway -> FIN here
  ::close(c);
  EXPECT_EQ(got + rest, req);
  EXPECT_EQ(gw.authorities(), std::vector<std::string>{"allowed.test:80"});
  EXPECT_EQ(gw.peerIds(), std::vector<std::string>{kClientId});
  EXPECT_EQ(metrics_.tunnelStreams.load(), 1u);
  EXPECT_TRUE(eventually([&] {
    return accessLogText().find(fmt::format("gateway egress(127.0.0.1:{})", gw.port())) !=
           std::string::npos;
  })) << accessLogText();
}

// Issue 15: kept-alive flows through the tunnel hold no relay buffer while idle (neither the
// request pump nor the stream's reader).
TEST_F(SessionTunnelTest, IdleTunnelledFlowsHoldNoRelayBuffer) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  startProxy(gw.port());
  std::vector<int> conns;
  for (int i = 0; i < 4; ++i) {
    int c = appConnect(80);
    ASSERT_GE(c, 0);
    std::string req = fmt::format("GET /{} HTTP/1.1\r\nHost: allowed.test\r\n\r\n", i);
    sendAll(c, req);
    EXPECT_EQ(readUntil(c, "\r\n\r\n"), req);  // echoed through the tunnel
    conns.push_back(c);
  }
  EXPECT_TRUE(eventually([] { return RelayBuffer::held() == 0; }, 5000ms))
      << RelayBuffer::held() << " relay buffers held by 4 idle tunnelled flows";
  // Still working after idling without buffers.
  std::string again = "GET /again HTTP/1.1\r\nHost: allowed.test\r\n\r\n";
  sendAll(conns[0], again);
  EXPECT_EQ(readUntil(conns[0], "\r\n\r\n"), again);
  for (int c : conns) ::close(c);
}

TEST_F(SessionTunnelTest, KeepAliveHostSwitchOnATunnelGets403) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  startProxy(gw.port());
  int c = appConnect(80);
  ASSERT_GE(c, 0);
  std::string first = "GET /1 HTTP/1.1\r\nHost: allowed.test\r\n\r\n";
  sendAll(c, first);
  EXPECT_EQ(readUntil(c, "\r\n\r\n"), first);  // echoed through the tunnel
  // Same connection, another host: checked request by request, as on a direct relay.
  sendAll(c, "GET /2 HTTP/1.1\r\nHost: deny.test\r\n\r\n");
  std::string resp = readUntil(c, "");
  ::close(c);
  EXPECT_TRUE(resp.starts_with("HTTP/1.1 403")) << resp;
  EXPECT_NE(resp.find("x-tollgate-denied: host_changed"), std::string::npos) << resp;
  EXPECT_EQ(gw.authorities(), std::vector<std::string>{"allowed.test:80"});
}

TEST_F(SessionTunnelTest, ReloadRemovingTheEntryCutsATunnelledFlow) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  startProxy(gw.port());
  int c = appConnect(80);
  ASSERT_GE(c, 0);
  std::string first = "GET /1 HTTP/1.1\r\nHost: allowed.test\r\n\r\n";
  sendAll(c, first);
  ASSERT_EQ(readUntil(c, "\r\n\r\n"), first);  // echoed through the tunnel
  EXPECT_EQ(gw.resetsSeen(), 0);

  reload(config(gw.port(), "[deny.test]"));
  EXPECT_TRUE(eventually(
      [&] { return metrics_.revocations("default/client", "not_in_registry", true) == 1; },
      60000ms));
  int err = 0;
  readUntil(c, "", &err);
  ::close(c);
  EXPECT_EQ(err, ECONNRESET);  // the app sees a reset
  // RST_STREAM to the gateway.
  EXPECT_TRUE(eventually([&] { return gw.resetsSeen() == 1; }, 60000ms));

  int d = appConnect(80);
  ASSERT_GE(d, 0);
  sendAll(d, "GET /2 HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
  std::string resp = readUntil(d, "");
  ::close(d);
  EXPECT_TRUE(resp.starts_with("HTTP/1.1 403")) << resp;
  EXPECT_EQ(gw.authorities(), std::vector<std::string>{"allowed.test:80"});
}

TEST_F(SessionTunnelTest, RstStreamFromTheGatewayResetsTheApp) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  startProxy(gw.port());
  int c = appConnect(80);
  ASSERT_GE(c, 0);
  sendAll(c, "GET / HTTP/1.1\r\nHost: rst-after.test\r\n\r\n");
  int err = 0;
  std::string got = readUntil(c, "", &err);
  ::close(c);
  EXPECT_TRUE(got.empty()) << got;
  EXPECT_EQ(err, ECONNRESET);
  EXPECT_EQ(gw.authorities(), std::vector<std::string>{"rst-after.test:80"});
}

TEST_F(SessionTunnelTest, GatewayDownGives503GatewayUnavailableAndIsCounted) {
  uint16_t port = unusedPort();
  startProxy(port);
  int c = appConnect(80);
  ASSERT_GE(c, 0);
  sendAll(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
  std::string resp = readUntil(c, "");
  ::close(c);
  EXPECT_TRUE(resp.starts_with("HTTP/1.1 503")) << resp;
  EXPECT_NE(resp.find("x-tollgate-denied: gateway_unavailable"), std::string::npos) << resp;
  EXPECT_EQ(metrics_.gatewayFailures("gateway_unreachable"), 1u);
  EXPECT_NE(
      metrics_.render().find("tollgate_gateway_failures_total{reason=\"gateway_unreachable\"} 1"),
      std::string::npos);
  EXPECT_TRUE(eventually([&] {
    return accessLogText().find("gateway_unavailable") != std::string::npos;
  })) << accessLogText();
}

TEST_F(SessionTunnelTest, GatewayDownResetsATlsFlow) {
  startProxy(unusedPort());
  int c = appConnect(443);
  ASSERT_GE(c, 0);
  // A ClientHello for allowed.test, made by OpenSSL.
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_tlsext_host_name(ssl, "allowed.test");
  SSL_connect(ssl);
  char* data = nullptr;
  long len = BIO_get_mem_data(wbio, &data);
  sendAll(c, std::string_view(data, static_cast<size_t>(len)));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  int err = 0;
  std::string got = readUntil(c, "", &err);
  ::close(c);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(err, ECONNRESET);
  EXPECT_EQ(metrics_.gatewayFailures("gateway_unreachable"), 1u);
}

TEST_F(SessionTunnelTest, GatewayDenialGives403WithItsReason) {
  TestGateway gw(*ca_, {});
  ASSERT_TRUE(gw.ok());
  startProxy(gw.port());
  int c = appConnect(80);
  ASSERT_GE(c, 0);
  sendAll(c, "GET / HTTP/1.1\r\nHost: deny.test\r\n\r\n");
  std::string resp = readUntil(c, "");
  ::close(c);
  EXPECT_TRUE(resp.starts_with("HTTP/1.1 403")) << resp;
  EXPECT_NE(resp.find("x-tollgate-denied: denied_authz"), std::string::npos) << resp;
  EXPECT_EQ(metrics_.gatewayFailures("denied"), 1u);
}

TEST_F(SessionTunnelTest, WithoutTunnelsGatewayRoutesFailClosed) {
  startProxy(unusedPort(), /*withTunnels=*/false);
  int c = appConnect(80);
  ASSERT_GE(c, 0);
  sendAll(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
  std::string resp = readUntil(c, "");
  ::close(c);
  EXPECT_TRUE(resp.starts_with("HTTP/1.1 503")) << resp;
  EXPECT_NE(resp.find("x-tollgate-denied: gateway_unavailable"), std::string::npos) << resp;
  EXPECT_EQ(metrics_.gatewayFailures("no_tunnel_client"), 1u);
}

}  // namespace
}  // namespace tollgate::proxy
