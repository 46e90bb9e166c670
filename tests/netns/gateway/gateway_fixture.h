#pragma once

// The gateway every netns gateway test runs against, on loopback (no root needed): the mesh CA
// and client certificates, in-test upstreams registered by STATIC ServiceEntries that list
// 127.0.0.1 (svc.test:80 HTTP, echo.test:7000 answering once two tunnels are open,
// bigecho.test:7000 plain echo, TLS and mTLS origination targets, names resolving to special
// addresses), and a GatewayServer with two worker threads.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <csignal>
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

inline constexpr const char* kClientId = "spiffe://cluster.local/ns/default/sa/client";

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

}  // namespace tollgate::gateway
