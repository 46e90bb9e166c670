#include "gateway/tls_contexts.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include "tests/unit/gateway/test_certs.h"

namespace tollgate::gateway {
namespace {

X509* loadCert(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* c = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return c;
}

TEST(UpstreamTls, SubjectAltNameMatching) {
  testing::TestCa ca("ca");
  X509* cert =
      loadCert(ca.issue("s", {"DNS:*.api.test", "IP:198.18.0.7", "URI:spiffe://other.td/ns/a/sa/b"})
                   .certPem);
  EXPECT_TRUE(certificateMatchesAny(cert, {"v1.api.test"}));
  EXPECT_TRUE(certificateMatchesAny(cert, {"nope.test", "198.18.0.7"}));
  EXPECT_TRUE(certificateMatchesAny(cert, {"spiffe://other.td/ns/a/sa/b"}));
  EXPECT_FALSE(certificateMatchesAny(cert, {"api.test"}));
  EXPECT_FALSE(certificateMatchesAny(cert, {"a.b.api.test"}));
  EXPECT_FALSE(certificateMatchesAny(cert, {"spiffe://other.td/ns/a/sa/c", "198.18.0.8"}));
  EXPECT_FALSE(certificateMatchesAny(cert, {}));
  X509_free(cert);
}

TEST(UpstreamTls, SettingsToContext) {
  testing::TempDir dir;
  testing::TestCa ca("ca");
  auto client = ca.issue("client", {"DNS:client.test"});
  std::string caFile = dir.write("ca.pem", ca.certPem());
  dir.write("creds/egress-client/tls.crt", client.certPem);
  dir.write("creds/egress-client/tls.key", client.keyPem);
  dir.write("creds/egress-client/ca.crt", ca.certPem());

  policy::ClientTlsSettings simple;
  simple.mode = policy::TlsMode::Simple;
  simple.caCertificates = caFile;
  auto t = makeUpstreamTls(simple, "api.test", dir.path() + "/creds");
  ASSERT_TRUE(t) << t.error().str();
  EXPECT_EQ(t->sni, "api.test");
  EXPECT_EQ(t->verifyHost, "api.test");
  EXPECT_TRUE(t->verify);

  simple.sni = "front.test";
  t = makeUpstreamTls(simple, "api.test", "");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->sni, "front.test");

  auto ipHost =
      makeUpstreamTls(policy::ClientTlsSettings{.mode = policy::TlsMode::Simple}, "198.18.0.7", "");
  ASSERT_TRUE(ipHost) << ipHost.error().str();
  EXPECT_EQ(ipHost->sni, "");  // SNI never carries an IP literal
  EXPECT_EQ(ipHost->verifyHost, "198.18.0.7");

  policy::ClientTlsSettings mutual;
  mutual.mode = policy::TlsMode::Mutual;
  mutual.credentialName = "egress-client";
  EXPECT_TRUE(makeUpstreamTls(mutual, "api.test", dir.path() + "/creds"));
  EXPECT_FALSE(makeUpstreamTls(mutual, "api.test", dir.path() + "/nowhere"));
  mutual.credentialName = "../creds/egress-client";
  EXPECT_FALSE(makeUpstreamTls(mutual, "api.test", dir.path() + "/creds"));

  policy::ClientTlsSettings missingCa = simple;
  missingCa.caCertificates = dir.path() + "/absent.pem";
  EXPECT_FALSE(makeUpstreamTls(missingCa, "api.test", ""));
  EXPECT_FALSE(makeUpstreamTls(policy::ClientTlsSettings{.mode = policy::TlsMode::IstioMutual},
                               "api.test", ""));
}

TEST(ServerTls, RequiresMatchingKeyAndBundle) {
  testing::TempDir dir;
  testing::TestCa ca("ca");
  auto gw = ca.issue("gw", {"URI:spiffe://cluster.local/ns/tollgate-system/sa/gateway"});
  auto other = ca.issue("other", {"DNS:o.test"});
  std::string cert = dir.write("gw.pem", gw.certPem);
  std::string key = dir.write("gw.key", gw.keyPem);
  std::string otherKey = dir.write("other.key", other.keyPem);
  std::string bundle = dir.write("ca.pem", ca.certPem());
  EXPECT_TRUE(makeServerContext(cert, key, bundle));
  EXPECT_FALSE(makeServerContext(cert, otherKey, bundle));
  EXPECT_FALSE(makeServerContext(cert, key, dir.path() + "/absent.pem"));
}

}  // namespace
}  // namespace tollgate::gateway
