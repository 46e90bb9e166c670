// The egress gateway end to end on loopback (no root needed): mTLS tunnel listener, HTTP/1.1
// and HTTP/2 CONNECT, authorization, special-address refusal and TLS origination, against
// in-test upstreams registered by STATIC ServiceEntries that list 127.0.0.1.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "gateway/gateway_metrics.h"
#include "gateway/gateway_server.h"
#include "gateway/reloader.h"
#include "identity/spiffe_id.h"
#include "proxy/access_log.h"
#include "proxy/resolver.h"
#include "tests/common/command.h"
#include "tests/netns/gateway/gateway_fixture.h"
#include "tests/netns/gateway/test_servers.h"
#include "tests/unit/gateway/test_certs.h"

namespace tollgate::gateway {
namespace {

using tests::runCommand;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(GatewayTest, CurlThroughHttp1Connect) {
  if (::access("/usr/bin/curl", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/curl";
  auto r = runCommand(curl("http://svc.test/", clientCert_, clientKey_));
  EXPECT_EQ(r.exitCode, 0) << r.output;
  EXPECT_EQ(r.output, "hello from upstream");
  EXPECT_EQ(metrics_.tlsConnectionsTotal.load(), 1u);
  EXPECT_GE(http_.accepted(), 1);
}

TEST_F(GatewayTest, CurlForwardProxyRequestWithoutTunnel) {
  if (::access("/usr/bin/curl", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/curl";
  // Without --proxytunnel curl sends "GET http://svc.test/ HTTP/1.1" to the proxy.
  auto r = runCommand(curl("http://svc.test/", clientCert_, clientKey_, false));
  EXPECT_EQ(r.exitCode, 0) << r.output;
  EXPECT_EQ(r.output, "hello from upstream");
  auto denied = runCommand(curl("http://forbidden.test/", clientCert_, clientKey_, false) +
                           " -o /dev/null -w '%{http_code}'");
  EXPECT_EQ(denied.output, "403");
  EXPECT_EQ(metrics_.streams("deny", "not_in_registry"), 1u);
}

TEST_F(GatewayTest, HandshakeNeedsClientCertificateFromTheTrustBundle) {
  if (::access("/usr/bin/curl", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/curl";
  auto none = runCommand(curl("http://svc.test/", "", ""));
  EXPECT_NE(none.exitCode, 0) << none.output;
  EXPECT_EQ(none.output.find("hello from upstream"), std::string::npos);
  auto rogue = runCommand(curl("http://svc.test/", rogueCert_, rogueKey_));
  EXPECT_NE(rogue.exitCode, 0) << rogue.output;
  EXPECT_EQ(rogue.output.find("hello from upstream"), std::string::npos);
  EXPECT_EQ(http_.accepted(), 0);
  EXPECT_EQ(metrics_.tlsConnectionsTotal.load(), 0u);
}

TEST_F(GatewayTest, ListenerSpeaksOnlyTls13) {
  if (::access("/usr/bin/openssl", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/openssl";
  auto cmd = [&](const char* version) {
    return fmt::format(
        "openssl s_client {} -connect 127.0.0.1:{} -cert {} -key {} -CAfile {} "
        "-verify_return_error </dev/null 2>&1",
        version, port_, clientCert_, clientKey_, caFile_);
  };
  auto v12 = runCommand(cmd("-tls1_2"));
  EXPECT_NE(v12.exitCode, 0) << v12.output;
  auto v13 = runCommand(cmd("-tls1_3"));
  EXPECT_EQ(v13.exitCode, 0) << v13.output;
  EXPECT_NE(v13.output.find("TLSv1.3"), std::string::npos) << v13.output;
}

TEST_F(GatewayTest, Http2TwoConcurrentStreamsOnOneConnection) {
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  ASSERT_EQ(tls.alpn(), "h2");
  testing::H2Client h2(tls);
  // The echo upstream answers only once both tunnels are open at the same time.
  int32_t a = h2.connect("echo.test:7000", "ping from stream one");
  int32_t b = h2.connect("echo.test:7000", "ping from stream two");
  ASSERT_TRUE(h2.run({a, b}));
  for (auto [id, payload] : {std::pair{a, "ping from stream one"}, {b, "ping from stream two"}}) {
    auto& s = h2.stream(id);
    EXPECT_EQ(s.headers[":status"], "200") << id;
    EXPECT_EQ(s.body, payload) << id;  // echoed, then END_STREAM after the upstream's FIN
    EXPECT_EQ(s.errorCode, 0u) << id;
  }
  EXPECT_EQ(metrics_.tlsConnectionsTotal.load(), 1u);
  EXPECT_EQ(metrics_.streams("allow", policy::toString(policy::Reason::AllowedRegistry)), 2u);
  EXPECT_EQ(metrics_.tunnelsActive.load(), 0);
}

TEST_F(GatewayTest, Http2FlowControlCarriesMoreThanTheWindows) {
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  testing::H2Client h2(tls);
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  int32_t id = h2.connect("bigecho.test:7000", big);
  ASSERT_TRUE(h2.run({id}));
  EXPECT_EQ(h2.stream(id).headers[":status"], "200");
  EXPECT_EQ(h2.stream(id).body.size(), big.size());
  EXPECT_TRUE(h2.stream(id).body == big);
  EXPECT_EQ(metrics_.bytesUp.load(), big.size());
  EXPECT_EQ(metrics_.bytesDown.load(), big.size());
}

TEST_F(GatewayTest, Http2ManyStreamsShareOneConnection) {
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  testing::H2Client h2(tls);
  std::vector<int32_t> ids;
  std::vector<std::string> payloads;
  for (int i = 0; i < 40; ++i) {
    payloads.push_back(fmt::format("stream {} ", i) + std::string(64 * 1024, 'a' + i % 26));
    ids.push_back(h2.connect("bigecho.test:7000", payloads.back()));
  }
  ASSERT_TRUE(h2.run(ids));
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(h2.stream(ids[i]).headers[":status"], "200") << i;
    EXPECT_TRUE(h2.stream(ids[i]).body == payloads[i]) << i;
  }
  EXPECT_EQ(metrics_.tlsConnectionsTotal.load(), 1u);
}

TEST_F(GatewayTest, IdleHttp2TunnelIsReset) {
  in_->options.idleTimeout = std::chrono::milliseconds(300);
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  testing::H2Client h2(tls);
  int32_t id = h2.connect("bigecho.test:7000", "then silence", /*endStream=*/false);
  ASSERT_TRUE(h2.run({id}));  // returns once the gateway gives up on the silent tunnel
  EXPECT_EQ(h2.stream(id).headers[":status"], "200");
  EXPECT_EQ(h2.stream(id).body, "then silence");
  EXPECT_EQ(h2.stream(id).errorCode, static_cast<uint32_t>(NGHTTP2_CANCEL));
}

TEST_F(GatewayTest, DeniedAuthoritiesGet403WithReason) {
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  testing::H2Client h2(tls);
  int32_t notListed = h2.connect("forbidden.test:80", "x");
  int32_t wrongPort = h2.connect("svc.test:8080", "x");
  int32_t authz = h2.connect("authz-denied.test:80", "x");
  int32_t bad = h2.connect("svc.test", "x");
  ASSERT_TRUE(h2.run({notListed, wrongPort, authz, bad}));
  EXPECT_EQ(h2.stream(notListed).headers[":status"], "403");
  EXPECT_EQ(h2.stream(notListed).headers["x-tollgate-denied"], "not_in_registry");
  EXPECT_EQ(h2.stream(wrongPort).headers[":status"], "403");
  EXPECT_EQ(h2.stream(wrongPort).headers["x-tollgate-denied"], "port_not_in_registry");
  EXPECT_EQ(h2.stream(authz).headers[":status"], "403");
  EXPECT_EQ(h2.stream(authz).headers["x-tollgate-denied"], "authz");
  EXPECT_EQ(h2.stream(bad).headers[":status"], "400");
  EXPECT_EQ(h2.stream(bad).headers["x-tollgate-denied"], "bad_authority");
  EXPECT_EQ(http_.accepted(), 0);

  std::string h1 = connectHttp1("forbidden.test:80");
  EXPECT_TRUE(h1.starts_with("HTTP/1.1 403 ")) << h1;
  EXPECT_NE(h1.find("x-tollgate-denied: not_in_registry\r\n"), std::string::npos) << h1;

  // The access log names the peer identity, the authority and the reason.
  std::string log = readFile(accessLogPath_);
  EXPECT_NE(log.find(kClientId), std::string::npos) << log;
  EXPECT_NE(log.find("forbidden.test:80"), std::string::npos) << log;
  EXPECT_NE(log.find("authz"), std::string::npos) << log;
  std::string text = metrics_.render();
  EXPECT_NE(text.find("tollgate_gateway_tls_connections_total 2"), std::string::npos) << text;
  EXPECT_NE(text.find("tollgate_gateway_streams_total{protocol=\"h2\",result=\"deny\","
                      "reason=\"not_in_registry\"} 1"),
            std::string::npos)
      << text;
}

TEST_F(GatewayTest, SimpleTlsOriginationAndVerificationFailure) {
  std::string ok = connectHttp1("secure.test:443", "GET / HTTP/1.1\r\nHost: secure.test\r\n\r\n");
  EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK\r\n\r\n")) << ok;
  EXPECT_NE(ok.find("secure hello"), std::string::npos) << ok;
  EXPECT_EQ(tls_->handshakes(), 1);

  std::string bad = connectHttp1("badca.test:443");
  EXPECT_TRUE(bad.starts_with("HTTP/1.1 502 ")) << bad;
  EXPECT_NE(bad.find("x-tollgate-denied: upstream_tls\r\n"), std::string::npos) << bad;
  EXPECT_EQ(metrics_.streams("error", "upstream_tls"), 1u);

  // Right CA, wrong name: the certificate is for secure.test.
  std::string wrong = connectHttp1("wrongname.test:443");
  EXPECT_TRUE(wrong.starts_with("HTTP/1.1 502 ")) << wrong;
  EXPECT_NE(wrong.find("x-tollgate-denied: upstream_tls\r\n"), std::string::npos) << wrong;
  // subjectAltNames replace the hostname check.
  std::string san = connectHttp1("san.test:443", "GET / HTTP/1.1\r\nHost: san.test\r\n\r\n");
  EXPECT_NE(san.find("secure hello"), std::string::npos) << san;
  EXPECT_EQ(metrics_.streams("error", "upstream_tls"), 2u);
}

TEST_F(GatewayTest, MutualTlsOriginationWithCredentialName) {
  std::string ok = connectHttp1("mtls.test:443", "GET / HTTP/1.1\r\nHost: mtls.test\r\n\r\n");
  EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK\r\n\r\n")) << ok;
  EXPECT_NE(ok.find("mutual hello"), std::string::npos) << ok;
  // The upstream only completes handshakes that present a certificate from its CA.
  EXPECT_EQ(mtls_->handshakes(), 1);
  EXPECT_NE(readFile(accessLogPath_).find("MUTUAL"), std::string::npos);
}

TEST_F(GatewayTest, SpecialAddressAnswersAreRefused) {
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  testing::H2Client h2(tls);
  int32_t meta = h2.connect("meta.test:80", "");  // DNS answer 169.254.169.254
  int32_t loop = h2.connect("loop.test:80", "");  // DNS answer 127.0.0.1
  ASSERT_TRUE(h2.run({meta, loop}));
  EXPECT_EQ(h2.stream(meta).headers[":status"], "403");
  EXPECT_EQ(h2.stream(meta).headers["x-tollgate-denied"], "special_address");
  EXPECT_EQ(h2.stream(loop).headers[":status"], "403");
  EXPECT_EQ(h2.stream(loop).headers["x-tollgate-denied"], "special_address");
  EXPECT_EQ(metrics_.streams("deny", "special_address"), 2u);
}

TEST_F(GatewayTest, ConfigReloadAddsEntriesAndKeepsTheLastGoodSnapshot) {
  auto poll = [&] {
    std::promise<void> done;
    asio::post(io_, [&] {
      reloader_->pollOnce();
      done.set_value();
    });
    done.get_future().wait();
  };
  EXPECT_TRUE(connectHttp1("late.test:80").starts_with("HTTP/1.1 403 "));
  dir_.write("config/late.yaml", fmt::format(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: late, namespace: default}}
spec:
  hosts: [late.test]
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
)",
                                             http_.port()));
  poll();
  EXPECT_EQ(metrics_.reloadsOk.load(), 1u);
  std::string ok = connectHttp1("late.test:80", "GET / HTTP/1.1\r\nHost: late.test\r\n\r\n");
  EXPECT_NE(ok.find("hello from upstream"), std::string::npos) << ok;

  dir_.write("config/zz-broken.yaml",
             "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
             "metadata: {name: broken}\nspec: {hosts: 7}\n");
  poll();
  EXPECT_EQ(metrics_.reloadsFailed.load(), 1u);
  EXPECT_TRUE(connectHttp1("late.test:80").starts_with("HTTP/1.1 200 "));  // still the good one
}

TEST_F(GatewayTest, RotatedGatewayCertificateIsServedToNewConnections) {
  auto peerId = [&] {
    testing::TlsClient c(port_, clientCert_, clientKey_, caFile_, "\x02h2");
    EXPECT_TRUE(c.connected());
    auto id = identity::workloadIdOf(SSL_get0_peer_certificate(c.ssl()));
    return id ? id->str() : id.error().str();
  };
  EXPECT_EQ(peerId(), "spiffe://cluster.local/ns/tollgate-system/sa/gateway");
  auto rotated = meshCa_.issue(
      "gateway", {"URI:spiffe://cluster.local/ns/tollgate-system/sa/gateway-v2", "IP:127.0.0.1"});
  dir_.write("pki/gw.pem", rotated.certPem);
  dir_.write("pki/gw.key", rotated.keyPem);
  std::promise<void> done;
  asio::post(io_, [&] {
    reloader_->pollOnce();
    done.set_value();
  });
  done.get_future().wait();
  EXPECT_EQ(peerId(), "spiffe://cluster.local/ns/tollgate-system/sa/gateway-v2");
}

TEST_F(GatewayTest, DrainStopsAcceptingAndGoesAway) {
  testing::TlsClient tls(port_, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  testing::H2Client h2(tls);
  int32_t first = h2.connect("bigecho.test:7000", "before drain");
  ASSERT_TRUE(h2.run({first}));
  EXPECT_EQ(h2.stream(first).body, "before drain");
  std::promise<void> drained;
  asio::post(io_, [&] {
    server_->startDrain();
    drained.set_value();
  });
  drained.get_future().wait();
  // GOAWAY arrives: the new stream is refused (or the connection ends) and never relayed.
  int32_t second = h2.connect("bigecho.test:7000", "after drain");
  h2.run({second});
  EXPECT_TRUE(h2.stream(second).headers[":status"].empty());
  EXPECT_TRUE(h2.stream(second).body.empty());
  EXPECT_LT(testing::connectLoopback(port_), 0);  // the listener is closed
}

// Reads `fd` until `needle` shows up, EOF, or `timeout` without progress; returns all read.
std::string readUntil(int fd, std::string& acc, const std::string& needle,
                      std::chrono::milliseconds timeout) {
  char buf[4096];
  while (needle.empty() || acc.find(needle) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    acc.append(buf, static_cast<size_t>(n));
  }
  return acc;
}

TEST_F(GatewayTest, BinaryDrainsOnSigtermAndExitsZero) {
  const std::string bin = TOLLGATE_BINARY_DIR "/gateway/tollgate-gateway";
  if (::access(bin.c_str(), X_OK) != 0) GTEST_SKIP() << "needs " << bin;
  int pipefd[2];
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  std::vector<std::string> args = {
      bin,           "--config-dir",    dir_.path() + "/config",
      "--cert",      gwCert_,           "--key",
      gwKey_,        "--trust-bundle",  caFile_,
      "--listen",    "127.0.0.1:0",     "--metrics-port",
      "0",           "--health-port",   "0",
      "--namespace", "tollgate-system", "--drain-seconds",
      "20",          "--access-log",    dir_.path() + "/binary-access.log"};
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(pipefd[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string err;
  readUntil(pipefd[0], err, " (metrics", std::chrono::seconds(10));
  auto at = err.find("listening on 127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << err;
  uint16_t port = static_cast<uint16_t>(std::stoi(err.substr(at + 23)));

  testing::TlsClient tls(port, clientCert_, clientKey_, caFile_, "\x02h2");
  ASSERT_TRUE(tls.connected());
  testing::H2Client h2(tls);
  int32_t id = h2.connect("bigecho.test:7000", "before ", /*endStream=*/false);
  ASSERT_TRUE(h2.run({id}, [&] { return h2.stream(id).body == "before "; }));

  ::kill(pid, SIGTERM);
  readUntil(pipefd[0], err, "draining", std::chrono::seconds(10));
  ASSERT_NE(err.find("draining"), std::string::npos) << err;
  EXPECT_LT(testing::connectLoopback(port), 0);  // no longer accepting
  // The tunnel opened before SIGTERM keeps relaying until it ends by itself.
  h2.send(id, "after", /*end=*/true);
  ASSERT_TRUE(h2.run({id}));
  EXPECT_EQ(h2.stream(id).body, "before after");
  EXPECT_EQ(h2.stream(id).errorCode, 0u);

  auto exited = std::async(std::launch::async, [pid] {
    int st = 0;
    ::waitpid(pid, &st, 0);
    return st;
  });
  if (exited.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ::kill(pid, SIGKILL);
    exited.wait();
    FAIL() << "gateway did not exit after draining: " << readUntil(pipefd[0], err, "", {});
  }
  int status = exited.get();
  readUntil(pipefd[0], err, "", std::chrono::seconds(1));
  ::close(pipefd[0]);
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 0) << err;
  EXPECT_NE(readFile(dir_.path() + "/binary-access.log").find("bigecho.test:7000"),
            std::string::npos);
}

}  // namespace
}  // namespace tollgate::gateway
