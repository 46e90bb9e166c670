// The gateway's HTTP/2 abuse limits, attacked on loopback with hand-written frames over a real
// mTLS connection: rapid reset (CVE-2023-44487), SETTINGS and PING floods, a CONTINUATION flood,
// an oversized header list, more streams than SETTINGS_MAX_CONCURRENT_STREAMS, and a connection
// left idle. Each attack must end the attacker's connection and be counted by reason, while a
// second, well-behaved client opens tunnels through the same gateway with >= 99% success (its
// success rate and p99 are printed, never asserted: tests assert behaviour, not time).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <chrono>
#include <csignal>
#include <future>
#include <thread>

#include "gateway/gateway_metrics.h"
#include "gateway/gateway_server.h"
#include "gateway/h2_connection.h"
#include "gateway/reloader.h"
#include "proxy/access_log.h"
#include "proxy/resolver.h"
#include "tests/netns/gateway/gateway_fixture.h"
#include "tests/netns/gateway/test_servers.h"
#include "tests/unit/gateway/test_certs.h"
#include "tests/common/eventually.h"

namespace tollgate::gateway {
namespace {

using tollgate::tests::eventually;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Frames written by hand: what an attacker sends, with nothing (no nghttp2 client session)
// between it and the wire.
std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string f;
  uint32_t len = static_cast<uint32_t>(payload.size());
  f += static_cast<char>((len >> 16) & 0xff);
  f += static_cast<char>((len >> 8) & 0xff);
  f += static_cast<char>(len & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>((stream >> 24) & 0x7f);
  f += static_cast<char>((stream >> 16) & 0xff);
  f += static_cast<char>((stream >> 8) & 0xff);
  f += static_cast<char>(stream & 0xff);
  f += payload;
  return f;
}

constexpr uint8_t kData = 0, kHeaders = 1, kRst = 3, kSettings = 4, kPing = 6, kGoaway = 7,
                  kWindowUpdate = 8, kContinuation = 9;

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// An upstream that writes without end: what a client that never reads is sent.
void firehose(int fd) {
  std::string chunk(64 * 1024, 'f');
  for (int i = 0; i < 1024; ++i) {
    if (::write(fd, chunk.data(), chunk.size()) <= 0) return;
  }
}

// A port whose accept queue is full: the kernel drops further SYNs, so a connect to it hangs
// until its deadline.
class Blackhole {
 public:
  Blackhole() {
    fd_ = testing::listenLoopback(&port_);
    ::listen(fd_, 0);
    for (int& fd : fillers_) {
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      sin.sin_port = htons(port_);
      ::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    }
  }
  ~Blackhole() {
    for (int fd : fillers_) ::close(fd);
    ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  int fillers_[4] = {-1, -1, -1, -1};
};
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4, kAck = 0x1;

// HPACK for a CONNECT request (literal headers, no indexing, no Huffman), plus `extra` headers.
std::string hpackConnect(const std::string& authority,
                         const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  auto literal = [](std::string_view n, std::string_view v) {
    std::string out;
    out += '\0';  // literal without indexing, new name
    auto len = [&](size_t l) {
      if (l < 127) {
        out += static_cast<char>(l);
        return;
      }
      out += static_cast<char>(127);
      l -= 127;
      while (l >= 128) {
        out += static_cast<char>((l & 0x7f) | 0x80);
        l >>= 7;
      }
      out += static_cast<char>(l);
    };
    len(n.size());
    out += n;
    len(v.size());
    out += v;
    return out;
  };
  std::string block = literal(":method", "CONNECT") + literal(":authority", authority);
  for (const auto& [n, v] : extra) block += literal(n, v);
  return block;
}

// A raw HTTP/2 attacker over mTLS: writes frames, reads what comes back, and tells whether the
// gateway said GOAWAY (and with which code) and closed.
class RawH2 {
 public:
  RawH2(uint16_t port, const std::string& cert, const std::string& key, const std::string& ca)
      : tls_(port, cert, key, ca, "\x02h2") {
    if (!tls_.connected()) return;
    // Fails fast once the gateway is gone instead of waiting out the 10 s socket timeouts.
    ok_ = tls_.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(kSettings, 0, 0, ""));
  }
  bool ok() const { return ok_; }
  // Best effort: the gateway may have closed already (that is what the attacks are for).
  bool send(const std::string& bytes) { return tls_.write(bytes); }

  // Reads frames until the connection closes; true when a GOAWAY came first. *code: its error.
  bool goawayThenClose(uint32_t* code = nullptr) {
    std::string in;
    char buf[16384];
    bool sawGoaway = false;
    for (;;) {
      int n = SSL_read(tls_.ssl(), buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      while (in.size() >= 9) {
        size_t len = (static_cast<uint8_t>(in[0]) << 16) | (static_cast<uint8_t>(in[1]) << 8) |
                     static_cast<uint8_t>(in[2]);
        if (in.size() < 9 + len) break;
        if (static_cast<uint8_t>(in[3]) == kGoaway && len >= 8) {
          sawGoaway = true;
          if (code) {
            *code = (static_cast<uint32_t>(static_cast<uint8_t>(in[13])) << 24) |
                    (static_cast<uint32_t>(static_cast<uint8_t>(in[14])) << 16) |
                    (static_cast<uint32_t>(static_cast<uint8_t>(in[15])) << 8) |
                    static_cast<uint32_t>(static_cast<uint8_t>(in[16]));
          }
        }
        in.erase(0, 9 + len);
      }
    }
    return sawGoaway;
  }

 private:
  testing::TlsClient tls_;
  bool ok_ = false;
};

class H2LimitsTest : public GatewayTest {
 protected:
  RawH2 attacker() { return RawH2(port_, clientCert_, clientKey_, caFile_); }

  // The well-behaved client: `n` CONNECT tunnels to bigecho.test, ten at a time on one connection
  // per batch (as the agent's pool does), each carrying a payload that must come back.
  struct Outcome {
    size_t ok = 0, total = 0;
    std::vector<double> ms;
    double p99() {
      if (ms.empty()) return 0;
      std::sort(ms.begin(), ms.end());
      return ms[(ms.size() * 99) / 100];
    }
    std::string line(std::string_view attack) {
      return fmt::format("{}: victim {} of {} tunnels OK ({:.1f}%), p99 {:.2f} ms", attack, ok,
                         total, total ? 100.0 * static_cast<double>(ok) / static_cast<double>(total) : 0.0,
                         p99());
    }
  };
  Outcome victim(size_t n) {
    Outcome out;
    for (size_t done = 0; done < n; done += 10) {
      testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
      if (!tls.connected()) {
        out.total += 10;
        continue;
      }
      int one = 1;  // as the agent's tunnel client does; else delayed ACKs dominate the p99
      ::setsockopt(SSL_get_fd(tls.ssl()), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      testing::H2Client h2(tls);
      std::vector<int32_t> ids;
      auto t0 = Clock::now();
      for (int i = 0; i < 10; ++i) ids.push_back(h2.connect("bigecho.test:7000", fmt::format("v{}", done + i)));
      bool ran = h2.run(ids);
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      for (size_t i = 0; i < ids.size(); ++i) {
        out.total++;
        auto& s = h2.stream(ids[i]);
        if (ran && s.headers[":status"] == "200" && s.body == fmt::format("v{}", done + i)) {
          out.ok++;
          out.ms.push_back(ms);
        }
      }
    }
    return out;
  }

  // Runs `attack` on its own thread while the victim opens 100 tunnels; returns the victim's.
  template <typename Attack>
  Outcome underAttack(Attack attack) {
    std::thread t(attack);
    Outcome v = victim(100);
    t.join();
    return v;
  }

  // Upstreams only some of these tests need (hose.test:7001, hole.test:7002), added to the
  // fixture's config through a reload.
  void addUpstreams() {
    uint64_t reloads = metrics_.reloadsOk.load();
    dir_.write("config/limits.yaml", fmt::format(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: hose, namespace: default}}
spec:
  hosts: [hose.test]
  ports: [{{number: 7001, name: tcp-hose, protocol: TCP, targetPort: {hose}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: hole, namespace: default}}
spec:
  hosts: [hole.test]
  ports: [{{number: 7002, name: tcp-hole, protocol: TCP, targetPort: {hole}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
)",
                                                 fmt::arg("hose", hose_.port()),
                                                 fmt::arg("hole", hole_.port())));
    std::promise<void> done;
    asio::post(io_, [&] {
      reloader_->pollOnce();
      done.set_value();
    });
    done.get_future().wait();
    ASSERT_EQ(metrics_.reloadsOk.load(), reloads + 1) << "the extra upstreams did not load";
  }

  testing::TcpServer hose_{&firehose};
  Blackhole hole_;

};

TEST_F(H2LimitsTest, VictimAloneBaseline) {
  Outcome v = victim(100);
  std::printf("%s\n", v.line("no attack").c_str());
  EXPECT_EQ(v.ok, v.total);
}

TEST_F(H2LimitsTest, RapidResetIsCutAndUpstreamDialsAreCancelled) {
  uint32_t code = 0;
  bool goaway = false;
  Outcome v = underAttack([&] {
    RawH2 a = attacker();
    ASSERT_TRUE(a.ok());
    std::string burst;
    for (uint32_t i = 0; i < 1000; ++i) {
      uint32_t id = 1 + 2 * i;
      burst += frame(kHeaders, kEndHeaders, id, hpackConnect("svc.test:80"));
      burst += frame(kRst, 0, id, std::string("\0\0\0\x08", 4));  // CANCEL
    }
    a.send(burst);
    goaway = a.goawayThenClose(&code);
  });
  std::printf("%s\n", v.line("rapid reset 1000 x HEADERS+RST_STREAM").c_str());
  EXPECT_TRUE(goaway);
  EXPECT_EQ(code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  EXPECT_EQ(metrics_.h2Abuse("rapid_reset"), 1u);
  // Far fewer tunnels were opened upstream than requested, and none is left open.
  EXPECT_LT(http_.accepted(), 1000);
  EXPECT_TRUE(eventually([&] { return metrics_.tunnelsActive.load() == 0; }));
  EXPECT_GE(v.ok * 100, v.total * 99) << v.line("rapid reset");
}

TEST_F(H2LimitsTest, SettingsAndPingFloodsAreCut) {
  for (uint8_t type : {kSettings, kPing}) {
    uint32_t code = 0;
    bool goaway = false;
    Outcome v = underAttack([&] {
      RawH2 a = attacker();
      ASSERT_TRUE(a.ok());
      std::string burst;
      for (int i = 0; i < 1000; ++i) {
        burst += type == kPing ? frame(kPing, 0, 0, "12345678") : frame(kSettings, 0, 0, "");
      }
      a.send(burst);
      goaway = a.goawayThenClose(&code);
    });
    const char* name = type == kPing ? "ping_flood" : "settings_flood";
    std::printf("%s\n", v.line(fmt::format("{} x 1000", name)).c_str());
    EXPECT_TRUE(goaway) << name;
    EXPECT_EQ(code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM)) << name;
    EXPECT_EQ(metrics_.h2Abuse(name), 1u) << name;
    EXPECT_GE(v.ok * 100, v.total * 99) << v.line(name);
  }
}

TEST_F(H2LimitsTest, ContinuationFloodIsCut) {
  bool closed = false;
  Outcome v = underAttack([&] {
    RawH2 a = attacker();
    ASSERT_TRUE(a.ok());
    // HEADERS without END_HEADERS, then CONTINUATION frames (each a small valid header) that
    // never end the block.
    std::string burst = frame(kHeaders, 0, 1, hpackConnect("echo.test:7000"));
    for (int i = 0; i < 1000; ++i) {
      burst += frame(kContinuation, 0, 1, std::string("\0\x05" "x-pad" "\x01" "a", 9));
    }
    a.send(burst);
    a.goawayThenClose();
    closed = true;
  });
  std::printf("%s\n", v.line("CONTINUATION flood x 1000").c_str());
  EXPECT_TRUE(closed);
  EXPECT_EQ(metrics_.h2Abuse("continuation_flood"), 1u);
  EXPECT_GE(v.ok * 100, v.total * 99) << v.line("continuation");
}

TEST_F(H2LimitsTest, OversizedHeaderListIsCut) {
  uint32_t code = 0;
  bool goaway = false;
  Outcome v = underAttack([&] {
    RawH2 a = attacker();
    ASSERT_TRUE(a.ok());
    // 64 KiB of headers in 16 KiB frames (HEADERS + 3 CONTINUATION): over the 16 KiB list.
    std::string block = hpackConnect("echo.test:7000", {{"x-a", std::string(16000, 'a')},
                                                         {"x-b", std::string(16000, 'b')},
                                                         {"x-c", std::string(16000, 'c')},
                                                         {"x-d", std::string(16000, 'd')}});
    std::string burst;
    for (size_t off = 0; off < block.size(); off += 16384) {
      std::string part = block.substr(off, 16384);
      bool last = off + 16384 >= block.size();
      burst += frame(off == 0 ? kHeaders : kContinuation, last ? kEndHeaders : 0, 1, part);
    }
    a.send(burst);
    goaway = a.goawayThenClose(&code);
  });
  std::printf("%s\n", v.line("64 KiB header list").c_str());
  EXPECT_TRUE(goaway);
  EXPECT_EQ(metrics_.h2Abuse("header_list_too_large"), 1u);
  EXPECT_EQ(metrics_.tunnelsTotal.load(), v.total);  // the attacker's request never got a tunnel
  EXPECT_GE(v.ok * 100, v.total * 99) << v.line("header list");
}

TEST_F(H2LimitsTest, MoreStreamsThanAdvertisedAreRefused) {
  bool goaway = false;
  Outcome v = underAttack([&] {
    RawH2 a = attacker();
    ASSERT_TRUE(a.ok());
    // The client must wait for our SETTINGS; an attacker does not: 400 streams at once, held.
    std::string burst;
    for (uint32_t i = 0; i < 400; ++i) {
      burst += frame(kHeaders, kEndHeaders, 1 + 2 * i, hpackConnect("svc.test:80"));
    }
    a.send(burst);
    goaway = a.goawayThenClose();
  });
  std::printf("%s\n", v.line("400 concurrent streams (limit 256)").c_str());
  EXPECT_TRUE(goaway);
  EXPECT_EQ(metrics_.h2Abuse("streams_refused"), 1u);
  EXPECT_TRUE(eventually([&] { return metrics_.tunnelsActive.load() == 0; }));
  EXPECT_GE(v.ok * 100, v.total * 99) << v.line("streams");
}

TEST_F(H2LimitsTest, IdleConnectionWithoutStreamsGetsGoaway) {
  in_->options.h2IdleTimeout = 300ms;
  RawH2 idle = attacker();
  ASSERT_TRUE(idle.ok());
  uint32_t code = 99;
  EXPECT_TRUE(idle.goawayThenClose(&code));  // returns once the gateway closed it
  EXPECT_EQ(code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_EQ(metrics_.h2IdleClosed.load(), 1u);
  EXPECT_EQ(metrics_.h2Abuse("protocol_error"), 0u);
  // A connection with an open stream is not idle: the tunnel keeps working past the timeout.
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  testing::H2Client h2(tls);
  int32_t id = h2.connect("bigecho.test:7000", "still here", /*endStream=*/false);
  ASSERT_TRUE(h2.run({id}, [&] { return h2.stream(id).body == "still here"; }));
  std::this_thread::sleep_for(600ms);  // longer than the idle timeout, with the stream open
  h2.send(id, " and here", true);
  ASSERT_TRUE(h2.run({id}));
  EXPECT_EQ(h2.stream(id).body, "still here and here");
  EXPECT_EQ(h2.stream(id).errorCode, 0u);
}

// A client that stops reading (huge windows, so only TCP holds the gateway back) must not
// hold its connection and tunnel forever: the stalled write closes both.
TEST_F(H2LimitsTest, ClientThatStopsReadingIsClosed) {
  addUpstreams();
  in_->options.writeStallTimeout = 1s;
  Outcome v = underAttack([&] {
    RawH2 a = attacker();
    ASSERT_TRUE(a.ok());
    std::string settings = std::string("\0\x04", 2) + be32(0x7fffffff);  // INITIAL_WINDOW_SIZE
    a.send(frame(kSettings, 0, 0, settings) + frame(kSettings, kAck, 0, "") +
           frame(kWindowUpdate, 0, 0, be32(0x7fffffff - 65535)) +
           frame(kHeaders, kEndHeaders | kEndStream, 1, hpackConnect("hose.test:7001")));
    EXPECT_TRUE(eventually([&] { return metrics_.h2Abuse("write_stalled") == 1; }));
    // Never read: the gateway gave up on its own.
  });
  std::printf("%s\n", v.line("client that stops reading").c_str());
  EXPECT_EQ(metrics_.h2Abuse("write_stalled"), 1u);
  EXPECT_TRUE(eventually([&] { return metrics_.tunnelsActive.load() == 0; }));
  EXPECT_GE(v.ok * 100, v.total * 99) << v.line("write stall");
}

// A reset stream cancels its upstream dial in flight. The dial goes to a port that never
// answers; without the cancellation it would run to its 30 s connect timeout (past this test's
// hang bound) and be logged connect_timeout; with it, the tunnel ends as client_reset at once.
TEST_F(H2LimitsTest, ResetStreamCancelsItsUpstreamDial) {
  addUpstreams();
  in_->options.connectTimeout = 30s;
  RawH2 a = attacker();
  ASSERT_TRUE(a.ok());
  a.send(frame(kSettings, kAck, 0, "") +
         frame(kHeaders, kEndHeaders, 1, hpackConnect("hole.test:7002")));
  ASSERT_TRUE(eventually([&] { return metrics_.tunnelsTotal.load() == 1; }));
  a.send(frame(kRst, 0, 1, be32(NGHTTP2_CANCEL)));
  auto until = Clock::now() + 20s;  // a hang bound only, shorter than the connect timeout
  while (metrics_.streams("error", "client_reset") + metrics_.streams("error", "connect_timeout") ==
             0 &&
         Clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(metrics_.streams("error", "client_reset"), 1u);
  EXPECT_EQ(metrics_.streams("error", "connect_timeout"), 0u);
}

// nghttp2's own limit (entries per SETTINGS frame) is counted too, under settings_flood.
TEST_F(H2LimitsTest, SettingsFrameWithTooManyEntriesIsCut) {
  RawH2 a = attacker();
  ASSERT_TRUE(a.ok());
  std::string entries;
  for (int i = 0; i < 17; ++i) entries += std::string("\0\x02", 2) + be32(0);  // ENABLE_PUSH=0
  a.send(frame(kSettings, 0, 0, entries));
  uint32_t code = 0;
  EXPECT_TRUE(a.goawayThenClose(&code));
  EXPECT_EQ(code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  EXPECT_EQ(metrics_.h2Abuse("settings_flood"), 1u);
}

TEST_F(H2LimitsTest, BadClientPrefaceIsAProtocolError) {
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  tls.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");  // h2 by ALPN, then no preface
  tls.read();  // returns once the gateway closed
  EXPECT_TRUE(eventually([&] { return metrics_.h2Abuse("protocol_error") == 1; }));
}

}  // namespace
}  // namespace tollgate::gateway
