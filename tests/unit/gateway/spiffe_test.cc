#include "gateway/spiffe.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include "tests/unit/gateway/test_certs.h"

namespace tollgate::gateway {
namespace {

TEST(SpiffeId, Parses) {
  auto id = parseSpiffeId("spiffe://cluster.local/ns/default/sa/client");
  ASSERT_TRUE(id) << id.error().str();
  EXPECT_EQ(id->trustDomain, "cluster.local");
  EXPECT_EQ(id->ns, "default");
  EXPECT_EQ(id->serviceAccount, "client");
  EXPECT_EQ(id->str(), "spiffe://cluster.local/ns/default/sa/client");
}

TEST(SpiffeId, RejectsOtherShapes) {
  for (const char* bad :
       {"", "https://cluster.local/ns/default/sa/client", "spiffe://cluster.local",
        "spiffe://cluster.local/", "spiffe:///ns/default/sa/client",
        "spiffe://cluster.local/ns/default", "spiffe://cluster.local/ns/default/sa/",
        "spiffe://cluster.local/ns//sa/x", "spiffe://cluster.local/ns/default/sa/client/extra",
        "spiffe://cluster.local/sa/client/ns/default",
        "spiffe://cluster.local/ns/default/sa/cli%65nt",
        "spiffe://cluster.local/ns/default/sa/client?x=1",
        "spiffe://user@cluster.local/ns/default/sa/client",
        "spiffe://cluster.local:443/ns/default/sa/client"}) {
    EXPECT_FALSE(parseSpiffeId(bad)) << bad;
  }
}

X509* loadCert(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* c = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return c;
}

TEST(SpiffeId, FromCertificateWithOneUriSan) {
  testing::TestCa ca("test ca");
  auto leaf = ca.issue("client", {"URI:spiffe://cluster.local/ns/team-a/sa/api", "DNS:x.test"});
  X509* cert = loadCert(leaf.certPem);
  auto id = spiffeIdOf(cert);
  X509_free(cert);
  ASSERT_TRUE(id) << id.error().str();
  EXPECT_EQ(id->ns, "team-a");
  EXPECT_EQ(id->serviceAccount, "api");
}

TEST(SpiffeId, CertificateWithoutOrWithSeveralUrisIdentifiesNobody) {
  testing::TestCa ca("test ca");
  for (const auto& sans : std::vector<std::vector<std::string>>{
           {},
           {"DNS:client.test"},
           {"URI:spiffe://cluster.local/ns/a/sa/x", "URI:spiffe://cluster.local/ns/b/sa/y"},
           {"URI:https://cluster.local/ns/a/sa/x"}}) {
    X509* cert = loadCert(ca.issue("client", sans).certPem);
    EXPECT_FALSE(spiffeIdOf(cert)) << (sans.empty() ? "no SAN" : sans[0]);
    X509_free(cert);
  }
  EXPECT_FALSE(spiffeIdOf(nullptr));
}

}  // namespace
}  // namespace tollgate::gateway
