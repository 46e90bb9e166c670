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
#include "tests/netns/gateway/test_servers.h"
#include "tests/unit/gateway/test_certs.h"

namespace tollgate::gateway {
namespace {

constexpr const char* kClientId = "spiffe://cluster.local/ns/default/sa/client";

struct CommandResult {
  int exitCode = -1;
  std::string output;
};

CommandResult runCommand(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int st = ::pclose(p);
  r.exitCode = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class GatewayTest : public ::testing::Test {
 protected:
  GatewayTest()
      : meshCa_("mesh ca"),
        foreignCa_("foreign ca"),
        upstreamCa_("upstream ca"),
        http_([](int fd) {
          testing::readHead(fd);
          testing::writeAll(fd, testing::httpResponse("hello from upstream"));
        }),
        echo_(2),
        bigEcho_(1),
        dns_({{"meta.test", "169.254.169.254"}, {"loop.test", "127.0.0.1"}}) {}

  void SetUp() override {
    // The blocking test clients write to sockets the gateway may have closed (GOAWAY, refusals).
    std::signal(SIGPIPE, SIG_IGN);
    auto gw = meshCa_.issue(
        "gateway", {"URI:spiffe://cluster.local/ns/tollgate-system/sa/gateway", "IP:127.0.0.1"});
    auto client = meshCa_.issue("client", {std::string("URI:") + kClientId});
    auto rogue = foreignCa_.issue("rogue", {std::string("URI:") + kClientId});
    auto upstream = upstreamCa_.issue("secure", {"DNS:secure.test"});
    caFile_ = dir_.write("pki/ca.pem", meshCa_.certPem());
    gwCert_ = dir_.write("pki/gw.pem", gw.certPem);
    gwKey_ = dir_.write("pki/gw.key", gw.keyPem);
    clientCert_ = dir_.write("pki/client.pem", client.certPem);
    clientKey_ = dir_.write("pki/client.key", client.keyPem);
    rogueCert_ = dir_.write("pki/rogue.pem", rogue.certPem);
    rogueKey_ = dir_.write("pki/rogue.key", rogue.keyPem);
    std::string upstreamCaFile = dir_.write("pki/upstream-ca.pem", upstreamCa_.certPem());
    std::string foreignCaFile = dir_.write("pki/foreign-ca.pem", foreignCa_.certPem());
    tls_ = std::make_unique<testing::TlsHttpServer>(dir_.write("pki/up.pem", upstream.certPem),
                                                    dir_.write("pki/up.key", upstream.keyPem),
                                                    "secure hello");
    auto mtlsServer = upstreamCa_.issue("mtls", {"DNS:mtls.test"});
    auto gwClient = upstreamCa_.issue("gateway client", {"DNS:gateway.test"});
    dir_.write("creds/egress-mtls/tls.crt", gwClient.certPem);
    dir_.write("creds/egress-mtls/tls.key", gwClient.keyPem);
    dir_.write("creds/egress-mtls/ca.crt", upstreamCa_.certPem());
    mtls_ = std::make_unique<testing::TlsHttpServer>(dir_.write("pki/mtls.pem", mtlsServer.certPem),
                                                     dir_.write("pki/mtls.key", mtlsServer.keyPem),
                                                     "mutual hello", upstreamCaFile);

    dir_.write("config/mesh.yaml",
               fmt::format(R"(apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata: {{name: mesh}}
spec:
  trustDomain: cluster.local
  clusterCIDRs:
    pods: ["10.244.0.0/16"]
    services: ["10.96.0.0/12"]
  dns:
    upstreams: ["{dns}"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc, namespace: default}}
spec:
  hosts: [svc.test, authz-denied.test]
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {http}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.test]
  ports: [{{number: 7000, name: tcp-echo, protocol: TCP, targetPort: {echo}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: bigecho, namespace: default}}
spec:
  hosts: [bigecho.test]
  ports: [{{number: 7000, name: tcp-echo, protocol: TCP, targetPort: {bigEcho}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure, namespace: default}}
spec:
  hosts: [secure.test, badca.test, wrongname.test, san.test]
  ports: [{{number: 443, name: https, protocol: HTTPS, targetPort: {tls}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: secure, namespace: default}}
spec:
  host: secure.test
  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: "{upCa}"}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: badca, namespace: default}}
spec:
  host: badca.test
  trafficPolicy:
    tls: {{mode: SIMPLE, sni: secure.test, caCertificates: "{foreignCa}"}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: wrongname, namespace: default}}
spec:
  host: wrongname.test
  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: "{upCa}"}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: san, namespace: default}}
spec:
  host: san.test
  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: "{upCa}", subjectAltNames: [other.test, secure.test]}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: mtls, namespace: default}}
spec:
  hosts: [mtls.test]
  ports: [{{number: 443, name: https, protocol: HTTPS, targetPort: {mtls}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: mtls, namespace: default}}
spec:
  host: mtls.test
  trafficPolicy:
    tls: {{mode: MUTUAL, credentialName: egress-mtls}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: resolved, namespace: default}}
spec:
  hosts: [meta.test, loop.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: no-authz-denied, namespace: tollgate-system}}
spec:
  action: DENY
  rules:
  - to: [{{operation: {{hosts: ["authz-denied.test"]}}}}]
)",
                           fmt::arg("dns", dns_.address()), fmt::arg("http", http_.port()),
                           fmt::arg("echo", echo_.port()), fmt::arg("bigEcho", bigEcho_.port()),
                           fmt::arg("tls", tls_->port()), fmt::arg("mtls", mtls_->port()),
                           fmt::arg("upCa", upstreamCaFile), fmt::arg("foreignCa", foreignCaFile)));

    Options o;
    o.configDir = dir_.path() + "/config";
    o.certFile = gwCert_;
    o.keyFile = gwKey_;
    o.trustBundleFile = caFile_;
    o.ns = "tollgate-system";
    o.credentialsDir = dir_.path() + "/creds";
    o.connectTimeout = std::chrono::milliseconds(3000);
    accessLogPath_ = dir_.path() + "/access.log";
    ASSERT_TRUE(accessLog_.open(accessLogPath_, proxy::LogFormat::Text));
    in_ = std::make_unique<GatewayInputs>(
        GatewayInputs{io_, o, state_, metrics_, accessLog_, resolver_, {}});
    server_ = std::make_unique<GatewayServer>(*in_);
    // Two data-plane threads, as on a 2-CPU gateway: connections alternate between them.
    server_->setWorkers({&workers_[0], &workers_[1]});
    reloader_ = std::make_unique<Reloader>(*in_, *server_);
    auto st = reloader_->loadInitial();
    ASSERT_TRUE(st) << st.error().str();
    ASSERT_TRUE(server_->listen("127.0.0.1", 0));
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
    for (int i = 0; i < 2; ++i) workerThreads_.emplace_back([this, i] { workers_[i].run(); });
  }

  void TearDown() override {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    for (auto& w : workers_) w.stop();
    for (auto& t : workerThreads_) t.join();
  }

  std::string curl(const std::string& url, const std::string& cert, const std::string& key,
                   bool tunnel = true) {
    std::string certArgs =
        cert.empty() ? "" : fmt::format("--proxy-cert {} --proxy-key {}", cert, key);
    return fmt::format(
        "curl -sS --max-time 10 --noproxy '' {} --proxy https://127.0.0.1:{} "
        "--proxy-cacert {} {} {} 2>&1",
        tunnel ? "--proxytunnel" : "", port_, caFile_, certArgs, url);
  }

  // One HTTP/1.1 CONNECT; returns the gateway's response head (and whatever followed).
  std::string connectHttp1(const std::string& authority, const std::string& afterOk = {}) {
    testing::TlsClient c(port_, clientCert_, clientKey_, caFile_, "\x08http/1.1");
    if (!c.connected()) return "handshake failed";
    EXPECT_EQ(c.alpn(), "http/1.1");
    c.write(fmt::format("CONNECT {} HTTP/1.1\r\nHost: {}\r\n\r\n", authority, authority));
    std::string head = c.read("\r\n\r\n");
    if (head.starts_with("HTTP/1.1 200") && !afterOk.empty()) {
      c.write(afterOk);
      head += c.read();
    } else if (!head.starts_with("HTTP/1.1 200")) {
      head += c.read();  // a refusal closes the connection
    }
    return head;
  }

  testing::TempDir dir_;
  testing::TestCa meshCa_;
  testing::TestCa foreignCa_;
  testing::TestCa upstreamCa_;
  testing::TcpServer http_;
  testing::BarrierEcho echo_;
  testing::BarrierEcho bigEcho_;
  testing::DnsStub dns_;
  std::unique_ptr<testing::TlsHttpServer> tls_;
  std::unique_ptr<testing::TlsHttpServer> mtls_;
  std::string caFile_, gwCert_, gwKey_, clientCert_, clientKey_, rogueCert_, rogueKey_;
  std::string accessLogPath_;

  // Worker contexts outlive the main one: an accept pending on the main context holds a
  // socket of a worker context.
  asio::io_context workers_[2] = {asio::io_context(1), asio::io_context(1)};
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> workerWork_ = {
      asio::make_work_guard(workers_[0]), asio::make_work_guard(workers_[1])};
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  StateHolder state_;
  GatewayMetrics metrics_;
  proxy::AccessLog accessLog_;
  proxy::Resolver resolver_{io_};
  std::unique_ptr<GatewayInputs> in_;
  std::unique_ptr<GatewayServer> server_;
  std::unique_ptr<Reloader> reloader_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::thread> workerThreads_;
};

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
