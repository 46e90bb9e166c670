#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "identity/certificate_authority.h"
#include "identity/clock.h"
#include "identity/openssl_util.h"
#include "identity/spiffe_id.h"
#include "identity/svid.h"
#include "identity/svid_manager.h"

namespace tollgate::identity {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::seconds;
using std::chrono::system_clock;

class FakeClock : public Clock {
 public:
  explicit FakeClock(system_clock::time_point t) : t_(t) {}
  system_clock::time_point now() const override { return t_; }
  void advance(system_clock::duration d) { t_ += d; }

 private:
  system_clock::time_point t_;
};

// Whole seconds, near the real time: generated CAs are valid from "now".
system_clock::time_point testNow() {
  return std::chrono::time_point_cast<seconds>(system_clock::now());
}

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void writeFile(const fs::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary) << data;
}

X509Ptr certFromPem(const std::string& pem) {
  auto certs = parseCertificates(pem, "test");
  EXPECT_TRUE(certs) << certs.error().str();
  return certs ? std::move(certs->front()) : nullptr;
}

system_clock::time_point asTimePoint(const ASN1_TIME* t) {
  struct tm tm {};
  EXPECT_EQ(ASN1_TIME_to_tm(t, &tm), 1);
  return system_clock::from_time_t(timegm(&tm));
}

// Verifies `leafPem` against the certificates of `trustedPem`, with `untrustedPem` as
// intermediates, for the TLS purpose given (checks extendedKeyUsage too), at time `at` (default:
// the real time). Returns the X509_V_* code.
int verify(const std::string& leafPem, const std::string& trustedPem,
           const std::string& untrustedPem, int purpose = X509_PURPOSE_SSL_CLIENT,
           std::optional<system_clock::time_point> at = std::nullopt) {
  X509Ptr leaf = certFromPem(leafPem);
  auto store = makeTrustStore(trustedPem);
  EXPECT_TRUE(store) << store.error().str();
  std::vector<X509Ptr> inter;
  if (!untrustedPem.empty()) {
    auto c = parseCertificates(untrustedPem, "untrusted");
    EXPECT_TRUE(c);
    inter = std::move(*c);
  }
  X509StackPtr untrustedOwner(sk_X509_new_null());
  STACK_OF(X509)* untrusted = untrustedOwner.get();
  for (auto& c : inter) sk_X509_push(untrusted, c.get());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  EXPECT_EQ(X509_STORE_CTX_init(ctx.get(), store->get(), leaf.get(), untrusted), 1);
  X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  if (at) X509_STORE_CTX_set_time(ctx.get(), 0, system_clock::to_time_t(*at));
  int ok = X509_verify_cert(ctx.get());
  int err = X509_STORE_CTX_get_error(ctx.get());
  return ok == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

// Three CAs made by scripts/gen-ca, once for the whole suite: a root, an intermediate under its
// own root, and a foreign root standing for another trust domain's CA.
class IdentityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/tollgate-identity-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new fs::path(tmpl);
    for (auto [sub, flags] : {std::pair{"root", ""}, std::pair{"inter", "--intermediate"},
                              std::pair{"foreign", "--name foreign"}}) {
      std::string cmd = std::string(TOLLGATE_SOURCE_DIR "/scripts/gen-ca ") + flags + " " +
                        (*dir_ / sub).string() + " >/dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }

  static fs::path path(const std::string& ca, const std::string& file) { return *dir_ / ca / file; }

  static CertificateAuthority load(const std::string& ca) {
    auto r = CertificateAuthority::fromFiles(path(ca, "ca-cert.pem"), path(ca, "ca-key.pem"),
                                             path(ca, "cert-chain.pem"));
    EXPECT_TRUE(r) << r.error().str();
    return std::move(*r);
  }

  static inline fs::path* dir_ = nullptr;
};

// ---- SPIFFE IDs ------------------------------------------------------------------------------

TEST(SpiffeIdTest, BuildsValidatedIds) {
  EXPECT_EQ(spiffeId("cluster.local", "default", "client").value(),
            "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(spiffeId("my_td-1.example", "a.b", "c_d-E").value(),
            "spiffe://my_td-1.example/ns/a.b/sa/c_d-E");
  EXPECT_FALSE(spiffeId("Cluster.local", "default", "client"));  // trust domain is lowercase
  EXPECT_FALSE(spiffeId("", "default", "client"));
  EXPECT_FALSE(spiffeId("cluster.local:8080", "default", "client"));
  EXPECT_FALSE(spiffeId("cluster.local", "", "client"));
  EXPECT_FALSE(spiffeId("cluster.local", "default", ".."));
  EXPECT_FALSE(spiffeId("cluster.local", ".", "client"));
  EXPECT_FALSE(spiffeId("cluster.local", "default", "a/b"));
  EXPECT_FALSE(spiffeId("cluster.local", "default", "a b"));
  EXPECT_FALSE(spiffeId(std::string(256, 'a'), "default", "client"));
  auto e = spiffeId("cluster.local", "default", "..");
  EXPECT_NE(e.error().str().find("service account"), std::string::npos) << e.error().str();
}

TEST(SpiffeIdTest, ParsesAndRejects) {
  auto id = parseSpiffeId("spiffe://cluster.local/ns/default/sa/client");
  ASSERT_TRUE(id) << id.error().str();
  EXPECT_EQ(id->trustDomain, "cluster.local");
  EXPECT_EQ(id->path, "/ns/default/sa/client");
  EXPECT_EQ(id->ns, "default");
  EXPECT_EQ(id->serviceAccount, "client");
  EXPECT_EQ(id->principal(), "cluster.local/ns/default/sa/client");
  EXPECT_EQ(id->str(), "spiffe://cluster.local/ns/default/sa/client");

  auto other = parseSpiffeId("spiffe://td/workload/x");
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->ns.empty());
  EXPECT_TRUE(parseSpiffeId("spiffe://td"));  // a trust domain's own id

  for (const char* bad : {"SPIFFE://td/a", "https://td/a", "spiffe://", "spiffe:///a",
                          "spiffe://td/", "spiffe://td//a", "spiffe://td/a/../b", "spiffe://td/./a",
                          "spiffe://td:443/a", "spiffe://u@td/a", "spiffe://td/a?q=1",
                          "spiffe://td/a#f", "spiffe://TD/a", "spiffe://td/a%20b"}) {
    EXPECT_FALSE(parseSpiffeId(bad)) << bad;
  }
  EXPECT_FALSE(parseSpiffeId("spiffe://td/" + std::string(2048, 'a')));
}

// A self-signed certificate whose SAN holds `uris` (none: no SAN at all).
X509Ptr certWithUris(const std::vector<std::string>& uris) {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  if (!uris.empty()) {
    GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
    for (const auto& u : uris) {
      GENERAL_NAME* gn = GENERAL_NAME_new();
      ASN1_IA5STRING* s = ASN1_IA5STRING_new();
      ASN1_STRING_set(s, u.data(), static_cast<int>(u.size()));
      GENERAL_NAME_set0_value(gn, GEN_URI, s);
      sk_GENERAL_NAME_push(names.get(), gn);
    }
    X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names.get(), 1, X509V3_ADD_DEFAULT);
  }
  X509_sign(cert.get(), key.get(), EVP_sha256());
  return cert;
}

TEST(SpiffeIdTest, FromCertNeedsExactlyOneSpiffeUri) {
  auto one = parseSpiffeIdFromCert(
      certWithUris({"https://example.com/x", "spiffe://cluster.local/ns/a/sa/b"}).get());
  ASSERT_TRUE(one) << one.error().str();
  EXPECT_EQ(*one, "spiffe://cluster.local/ns/a/sa/b");

  auto none = parseSpiffeIdFromCert(certWithUris({}).get());
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().str().find("no subjectAltName"), std::string::npos);
  EXPECT_FALSE(parseSpiffeIdFromCert(certWithUris({"https://example.com/x"}).get()));

  auto two = parseSpiffeIdFromCert(
      certWithUris({"spiffe://cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/c"}).get());
  ASSERT_FALSE(two);
  EXPECT_NE(two.error().str().find("2 SPIFFE IDs"), std::string::npos) << two.error().str();

  EXPECT_FALSE(parseSpiffeIdFromCert(certWithUris({"spiffe://cluster.local/ns//sa/b"}).get()));
  EXPECT_FALSE(parseSpiffeIdFromCert(certWithUris({"spiffe://cluster.local"}).get()));
  EXPECT_FALSE(parseSpiffeIdFromCert(nullptr));
}

// ---- CertificateAuthority --------------------------------------------------------------------

TEST_F(IdentityTest, LoadsRootCa) {
  // The chain file is optional for a root.
  auto ca =
      CertificateAuthority::fromFiles(path("root", "ca-cert.pem"), path("root", "ca-key.pem"));
  ASSERT_TRUE(ca) << ca.error().str();
  EXPECT_TRUE(ca->isRoot());
  EXPECT_TRUE(ca->chainPem().empty());
  EXPECT_EQ(ca->trustBundlePem(), readAll(path("root", "root-cert.pem")));
  // gen-ca makes 10-year roots.
  EXPECT_GT(ca->notAfter(), testNow() + hours(24 * 365 * 9));
}

TEST_F(IdentityTest, LoadsIntermediateCaWithChainToRoot) {
  CertificateAuthority ca = load("inter");
  EXPECT_FALSE(ca.isRoot());
  EXPECT_EQ(ca.chainPem(), readAll(path("inter", "ca-cert.pem")));  // root left out
  EXPECT_EQ(ca.trustBundlePem(), readAll(path("inter", "root-cert.pem")));

  // Chain given as the root alone also works (the CA certificate need not be repeated).
  auto rootOnly = CertificateAuthority::fromFiles(
      path("inter", "ca-cert.pem"), path("inter", "ca-key.pem"), path("inter", "root-cert.pem"));
  ASSERT_TRUE(rootOnly) << rootOnly.error().str();
  EXPECT_EQ(rootOnly->trustBundlePem(), ca.trustBundlePem());
}

TEST_F(IdentityTest, IntermediateWithoutItsRootIsAnError) {
  auto noChain =
      CertificateAuthority::fromFiles(path("inter", "ca-cert.pem"), path("inter", "ca-key.pem"));
  ASSERT_FALSE(noChain);
  EXPECT_NE(noChain.error().str().find("root"), std::string::npos) << noChain.error().str();

  // A root that did not sign the intermediate.
  auto wrongRoot = CertificateAuthority::fromFiles(
      path("inter", "ca-cert.pem"), path("inter", "ca-key.pem"), path("foreign", "root-cert.pem"));
  ASSERT_FALSE(wrongRoot);
  EXPECT_NE(wrongRoot.error().str().find("does not chain"), std::string::npos)
      << wrongRoot.error().str();
}

TEST_F(IdentityTest, BadFilesGiveErrorsNamingTheFile) {
  fs::path garbage = *dir_ / "garbage.pem";
  writeFile(garbage, "not a pem file\n");
  fs::path broken = *dir_ / "broken.pem";
  writeFile(broken, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
  std::string rootCert = path("root", "ca-cert.pem");
  std::string rootKey = path("root", "ca-key.pem");

  auto e1 = CertificateAuthority::fromFiles(garbage, rootKey);
  ASSERT_FALSE(e1);
  EXPECT_NE(e1.error().str().find(garbage.string()), std::string::npos) << e1.error().str();
  EXPECT_NE(e1.error().str().find("error:"), std::string::npos) << e1.error().str();  // OpenSSL

  auto e2 = CertificateAuthority::fromFiles(broken, rootKey);
  ASSERT_FALSE(e2);
  EXPECT_NE(e2.error().str().find(broken.string()), std::string::npos) << e2.error().str();

  auto e3 = CertificateAuthority::fromFiles(rootCert, garbage);
  ASSERT_FALSE(e3);
  EXPECT_NE(e3.error().str().find("CA key " + garbage.string()), std::string::npos)
      << e3.error().str();
  EXPECT_NE(e3.error().str().find("error:"), std::string::npos) << e3.error().str();

  auto missing = (*dir_ / "missing.pem").string();
  auto e4 = CertificateAuthority::fromFiles(missing, rootKey);
  ASSERT_FALSE(e4);
  EXPECT_NE(e4.error().str().find(missing), std::string::npos);
  EXPECT_NE(e4.error().str().find("No such file"), std::string::npos) << e4.error().str();

  auto e5 = CertificateAuthority::fromFiles(rootCert, rootKey, garbage);
  ASSERT_FALSE(e5);
  EXPECT_NE(e5.error().str().find("CA chain " + garbage.string()), std::string::npos)
      << e5.error().str();

  fs::path empty = *dir_ / "empty.pem";
  writeFile(empty, "");
  auto e7 = CertificateAuthority::fromFiles(rootCert, rootKey, empty);
  ASSERT_FALSE(e7);
  EXPECT_NE(e7.error().str().find("CA chain " + empty.string()), std::string::npos)
      << e7.error().str();

  // Key of another CA.
  auto e6 = CertificateAuthority::fromFiles(rootCert, path("foreign", "ca-key.pem"));
  ASSERT_FALSE(e6);
  EXPECT_NE(e6.error().str().find(path("foreign", "ca-key.pem")), std::string::npos);
  EXPECT_NE(e6.error().str().find("does not match"), std::string::npos) << e6.error().str();
}

TEST_F(IdentityTest, LeafCertificateIsNotACa) {
  CertificateAuthority ca = load("root");
  FakeClock clock(testNow());
  auto svid = ca.issueSvid("spiffe://cluster.local/ns/a/sa/b", hours(1), clock);
  ASSERT_TRUE(svid) << svid.error().str();
  auto notCa = CertificateAuthority::fromPem(svid->certPem, svid->keyPem, {}, "leaf");
  ASSERT_FALSE(notCa);
  EXPECT_NE(notCa.error().str().find("not a CA"), std::string::npos) << notCa.error().str();
}

// ---- issued SVIDs ----------------------------------------------------------------------------

TEST_F(IdentityTest, SvidVerifiesAgainstRootCa) {
  CertificateAuthority ca = load("root");
  auto svid = ca.issueSvid("spiffe://cluster.local/ns/default/sa/client");
  ASSERT_TRUE(svid) << svid.error().str();
  EXPECT_EQ(verify(svid->certPem, ca.trustBundlePem(), svid->chainPem, X509_PURPOSE_SSL_CLIENT),
            X509_V_OK);
  EXPECT_EQ(verify(svid->certPem, ca.trustBundlePem(), svid->chainPem, X509_PURPOSE_SSL_SERVER),
            X509_V_OK);
  EXPECT_NE(verify(svid->certPem, readAll(path("foreign", "root-cert.pem")), ""), X509_V_OK);
}

TEST_F(IdentityTest, SvidFromIntermediateVerifiesAgainstRootWithChain) {
  CertificateAuthority ca = load("inter");
  auto svid = ca.issueSvid("spiffe://cluster.local/ns/default/sa/client");
  ASSERT_TRUE(svid) << svid.error().str();
  std::string root = readAll(path("inter", "root-cert.pem"));
  EXPECT_EQ(svid->trustBundlePem, root);
  EXPECT_EQ(verify(svid->certPem, root, svid->chainPem), X509_V_OK);
  // Without the presented chain the root alone cannot vouch for the leaf.
  EXPECT_EQ(verify(svid->certPem, root, ""), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST_F(IdentityTest, SvidProfile) {
  CertificateAuthority ca = load("inter");
  auto svid = ca.issueSvid("spiffe://cluster.local/ns/default/sa/client");
  ASSERT_TRUE(svid) << svid.error().str();
  X509Ptr cert = certFromPem(svid->certPem);
  ASSERT_TRUE(cert);

  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(cert.get())), 0);
  EXPECT_EQ(
      X509_NAME_cmp(X509_get_issuer_name(cert.get()), X509_get_subject_name(ca.certificate())), 0);

  // Exactly one SAN entry, the URI, critical because the subject is empty.
  int crit = -1;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, &crit, nullptr)));
  ASSERT_TRUE(names);
  EXPECT_EQ(crit, 1);
  ASSERT_EQ(sk_GENERAL_NAME_num(names.get()), 1);
  const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), 0);
  ASSERT_EQ(gn->type, GEN_URI);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(
                            ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier)),
                        ASN1_STRING_length(gn->d.uniformResourceIdentifier)),
            "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(parseSpiffeIdFromCert(cert.get()).value(), svid->spiffeId);

  // ECDSA P-256 key, matching the PEM key.
  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  EXPECT_TRUE(EVP_PKEY_is_a(pub, "EC"));
  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(pub, group, sizeof group, &len), 1);
  EXPECT_STREQ(group, "prime256v1");
  auto creds = loadCredentials(*svid);
  ASSERT_TRUE(creds) << creds.error().str();
  EXPECT_EQ(EVP_PKEY_eq(pub, creds->key.get()), 1);
  EXPECT_EQ(creds->chain.size(), 1u);

  // Key usage, extended key usage, basic constraints.
  uint32_t ku = X509_get_key_usage(cert.get());
  EXPECT_EQ(ku, static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  int kuIdx = X509_get_ext_by_NID(cert.get(), NID_key_usage, -1);
  ASSERT_GE(kuIdx, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(cert.get(), kuIdx)), 1);
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()),
            static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_GE(X509_get_ext_by_NID(cert.get(), NID_basic_constraints, -1), 0);

  // Key ids: the leaf's authority key id is the CA's subject key id.
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert.get());
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert.get());
  ASSERT_NE(ski, nullptr);
  ASSERT_NE(aki, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(ca.certificate())), 0);

  // Random 128-bit serials: large and different each time.
  BignumPtr s1(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  auto again = ca.issueSvid(svid->spiffeId);
  ASSERT_TRUE(again);
  X509Ptr cert2 = certFromPem(again->certPem);
  BignumPtr s2(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert2.get()), nullptr));
  EXPECT_LE(BN_num_bits(s1.get()), 128);
  EXPECT_GT(BN_num_bits(s1.get()), 96);  // fails with probability 2^-32
  EXPECT_NE(BN_cmp(s1.get(), s2.get()), 0);
  EXPECT_NE(again->keyPem, svid->keyPem);  // a new key per issuance
}

TEST_F(IdentityTest, LifetimeFollowsTheClock) {
  CertificateAuthority ca = load("root");
  FakeClock clock(testNow() + hours(3));
  auto svid = ca.issueSvid("spiffe://cluster.local/ns/a/sa/b", hours(2), clock);
  ASSERT_TRUE(svid) << svid.error().str();
  EXPECT_EQ(svid->issuedAt, clock.now());
  EXPECT_EQ(svid->notBefore, clock.now() - seconds(60));
  EXPECT_EQ(svid->notAfter, clock.now() + hours(2));
  EXPECT_EQ(svid->rotateAt(), clock.now() + hours(1));
  X509Ptr cert = certFromPem(svid->certPem);
  EXPECT_EQ(asTimePoint(X509_get0_notBefore(cert.get())), clock.now() - seconds(60));
  EXPECT_EQ(asTimePoint(X509_get0_notAfter(cert.get())), clock.now() + hours(2));

  auto byDefault = ca.issueSvid("spiffe://cluster.local/ns/a/sa/b", kDefaultSvidLifetime, clock);
  ASSERT_TRUE(byDefault);
  EXPECT_EQ(byDefault->notAfter - byDefault->issuedAt, hours(24));

  // Never beyond the CA itself.
  auto tooLong = ca.issueSvid("spiffe://cluster.local/ns/a/sa/b", hours(24 * 365 * 20), clock);
  ASSERT_TRUE(tooLong);
  EXPECT_EQ(tooLong->notAfter, ca.notAfter());

  FakeClock afterCa(ca.notAfter() + hours(1));
  EXPECT_FALSE(ca.issueSvid("spiffe://cluster.local/ns/a/sa/b", hours(1), afterCa));
  EXPECT_FALSE(ca.issueSvid("spiffe://cluster.local/ns/a/sa/b", seconds(0), clock));
  EXPECT_FALSE(ca.issueSvid("spiffe://cluster.local", hours(1), clock));  // no workload path
  EXPECT_FALSE(ca.issueSvid("spiffe://Cluster/ns/a/sa/b", hours(1), clock));
}

TEST_F(IdentityTest, CredentialsRefuseAMismatchedKey) {
  CertificateAuthority ca = load("root");
  auto a = ca.issueSvid("spiffe://cluster.local/ns/a/sa/a");
  auto b = ca.issueSvid("spiffe://cluster.local/ns/b/sa/b");
  ASSERT_TRUE(a && b);
  Svid mixed = *a;
  mixed.keyPem = b->keyPem;
  auto creds = loadCredentials(mixed);
  ASSERT_FALSE(creds);
  EXPECT_NE(creds.error().str().find("does not match"), std::string::npos) << creds.error().str();
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  EXPECT_FALSE(useSvid(ctx.get(), mixed));
  EXPECT_TRUE(useSvid(ctx.get(), *a));
  EXPECT_FALSE(useTrustBundle(ctx.get(), "no certificates here"));
}

TEST_F(IdentityTest, GenCaRefusesToOverwriteWithoutForce) {
  std::string script = TOLLGATE_SOURCE_DIR "/scripts/gen-ca";
  std::string out = (*dir_ / "again").string();
  ASSERT_EQ(std::system((script + " " + out + " >/dev/null").c_str()), 0);
  std::string before = readAll(fs::path(out) / "ca-key.pem");
  EXPECT_NE(std::system((script + " " + out + " >/dev/null 2>&1").c_str()), 0);
  EXPECT_EQ(readAll(fs::path(out) / "ca-key.pem"), before);
  ASSERT_EQ(std::system((script + " --force --intermediate " + out + " >/dev/null").c_str()), 0);
  EXPECT_NE(readAll(fs::path(out) / "ca-key.pem"), before);
  EXPECT_EQ(fs::status(fs::path(out) / "ca-key.pem").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  auto ca =
      CertificateAuthority::fromFiles(fs::path(out) / "ca-cert.pem", fs::path(out) / "ca-key.pem",
                                      fs::path(out) / "cert-chain.pem");
  ASSERT_TRUE(ca) << ca.error().str();
  EXPECT_FALSE(ca->isRoot());
}

// ---- SvidManager -----------------------------------------------------------------------------

TEST_F(IdentityTest, ManagerIssuesOnFirstUseOnlyForEnrolledAccounts) {
  auto ca = std::make_shared<const CertificateAuthority>(load("root"));
  FakeClock clock(testNow());
  SvidManager m(ca, "cluster.local", clock, hours(24));

  auto refused = m.svidFor("default", "client");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().str(), "no enrolled pod uses default/client");

  ASSERT_TRUE(m.addPod("default", "client-1", "client"));
  ASSERT_TRUE(m.addPod("default", "client-2", "client"));
  ASSERT_TRUE(m.addPod("default", "client-2", "client"));  // idempotent
  EXPECT_EQ(m.pods(), 2u);
  EXPECT_FALSE(m.nextRotation());  // nothing issued yet

  auto a = m.svidFor("default", "client");
  ASSERT_TRUE(a) << a.error().str();
  EXPECT_EQ((*a)->spiffeId, "spiffe://cluster.local/ns/default/sa/client");
  auto b = m.svidFor("default", "client");
  ASSERT_TRUE(b);
  EXPECT_EQ(a->get(), b->get());  // one SVID per service account
  EXPECT_FALSE(m.svidFor("other", "client"));
  EXPECT_EQ(m.serviceAccounts(), std::vector<std::string>{"default/client"});

  EXPECT_FALSE(m.addPod("default", "bad", "Not/Valid"));

  // The account lives while a pod uses it.
  m.removePod("default", "client-1");
  EXPECT_TRUE(m.svidFor("default", "client"));
  m.removePod("default", "client-2");
  auto gone = m.svidFor("default", "client");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().str(), "no enrolled pod uses default/client");
  EXPECT_TRUE(m.serviceAccounts().empty());
  // Holders keep a usable SVID (nothing is revoked).
  EXPECT_EQ(verify((*a)->certPem, ca->trustBundlePem(), ""), X509_V_OK);
}

TEST_F(IdentityTest, ManagerIssuesOncePerAccountUnderConcurrentUse) {
  auto ca = std::make_shared<const CertificateAuthority>(load("root"));
  FakeClock clock(testNow());
  SvidManager m(ca, "cluster.local", clock);
  ASSERT_TRUE(m.addPod("default", "p", "sa"));
  std::vector<const Svid*> seen(4, nullptr);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] {
      auto s = m.svidFor("default", "sa");
      if (s) seen[i] = s->get();
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_NE(seen[0], nullptr);
  for (const Svid* s : seen) EXPECT_EQ(s, seen[0]);
}

TEST_F(IdentityTest, ManagerMovesPodBetweenAccounts) {
  auto ca = std::make_shared<const CertificateAuthority>(load("root"));
  FakeClock clock(testNow());
  SvidManager m(ca, "cluster.local", clock);
  ASSERT_TRUE(m.addPod("default", "p", "old"));
  ASSERT_TRUE(m.addPod("default", "p", "new"));
  EXPECT_FALSE(m.svidFor("default", "old"));
  EXPECT_TRUE(m.svidFor("default", "new"));
  EXPECT_EQ(m.pods(), 1u);
}

TEST_F(IdentityTest, ManagerRotatesAtHalfLife) {
  auto ca = std::make_shared<const CertificateAuthority>(load("inter"));
  FakeClock clock(testNow());
  SvidManager m(ca, "cluster.local", clock, hours(24));
  ASSERT_TRUE(m.addPod("default", "client-1", "client"));
  ASSERT_TRUE(m.addPod("prod", "web-1", "web"));
  auto first = m.svidFor("default", "client");
  ASSERT_TRUE(first);
  clock.advance(hours(1));
  auto web = m.svidFor("prod", "web");  // issued an hour later: rotates an hour later
  ASSERT_TRUE(web);
  EXPECT_EQ(m.nextRotation(), (*first)->issuedAt + hours(12));

  auto start = (*first)->issuedAt;
  EXPECT_FALSE(m.needsRotation(start + hours(12) - seconds(1)));
  EXPECT_TRUE(m.needsRotation(start + hours(12)));

  ASSERT_TRUE(m.rotate(start + hours(12)));
  auto second = m.svidFor("default", "client");
  ASSERT_TRUE(second);
  EXPECT_NE(second->get(), first->get());
  EXPECT_NE((*second)->certPem, (*first)->certPem);
  EXPECT_EQ((*second)->issuedAt, start + hours(12));
  EXPECT_EQ((*second)->notAfter, start + hours(36));
  // web was not due yet and keeps its SVID.
  EXPECT_EQ(m.svidFor("prod", "web")->get(), web->get());
  EXPECT_FALSE(m.needsRotation(start + hours(12)));
  EXPECT_TRUE(m.needsRotation(start + hours(13)));

  // At the rotation instant both verify: the replaced SVID is still valid for the connections
  // that hold it. The old one lapses at its own notAfter.
  auto at = start + hours(12);
  for (const auto& svid : {*first, *second}) {
    EXPECT_EQ(
        verify(svid->certPem, ca->trustBundlePem(), ca->chainPem(), X509_PURPOSE_SSL_CLIENT, at),
        X509_V_OK);
  }
  EXPECT_EQ(verify((*first)->certPem, ca->trustBundlePem(), ca->chainPem(), X509_PURPOSE_SSL_CLIENT,
                   start + hours(25)),
            X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST_F(IdentityTest, ManagerReissuesAnExpiredSvidOnUse) {
  auto ca = std::make_shared<const CertificateAuthority>(load("root"));
  FakeClock clock(testNow());
  SvidManager m(ca, "cluster.local", clock, hours(1));
  ASSERT_TRUE(m.addPod("default", "p", "sa"));
  auto first = m.svidFor("default", "sa");
  ASSERT_TRUE(first);
  clock.advance(hours(2));  // the rotation timer never ran
  auto second = m.svidFor("default", "sa");
  ASSERT_TRUE(second);
  EXPECT_NE(first->get(), second->get());
  EXPECT_GT((*second)->notAfter, clock.now());
}

// ---- mTLS handshake in memory ----------------------------------------------------------------

// The verify callback a tunnel endpoint uses: chain must verify, then the leaf must carry exactly
// one SPIFFE ID, which is recorded for authorization.
int recordSpiffeId(int preverifyOk, X509_STORE_CTX* ctx) {
  if (!preverifyOk) return 0;
  if (X509_STORE_CTX_get_error_depth(ctx) != 0) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto id = parseSpiffeIdFromCert(X509_STORE_CTX_get_current_cert(ctx));
  if (!id) return 0;
  *static_cast<std::string*>(SSL_get_app_data(ssl)) = *id;
  return 1;
}

SslCtxPtr tlsContext(const Svid* svid, const std::string& trustBundle) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  EXPECT_TRUE(ctx);
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  if (svid) {
    auto s = useSvid(ctx.get(), *svid);
    EXPECT_TRUE(s) << s.error().str();
  }
  auto t = useTrustBundle(ctx.get(), trustBundle);
  EXPECT_TRUE(t) << t.error().str();
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, recordSpiffeId);
  return ctx;
}

struct HandshakeResult {
  bool ok = false;
  std::string clientSawServer;  // SPIFFE id recorded by the client's verify callback
  std::string serverSawClient;
  std::string serverPeer;  // peerSpiffeId() on the server after the handshake
  int tlsVersion = 0;
};

// Runs client and server over a BIO pair until both finish or one fails, then proves the
// connection by a round trip of application data (in TLS 1.3 the client finishes before the
// server has judged its certificate).
HandshakeResult handshake(SSL_CTX* clientCtx, SSL_CTX* serverCtx) {
  HandshakeResult r;
  SslPtr client(SSL_new(clientCtx));
  SslPtr server(SSL_new(serverCtx));
  BIO* cbio = nullptr;
  BIO* sbio = nullptr;
  EXPECT_EQ(BIO_new_bio_pair(&cbio, 0, &sbio, 0), 1);
  SSL_set_bio(client.get(), cbio, cbio);
  SSL_set_bio(server.get(), sbio, sbio);
  SSL_set_app_data(client.get(), &r.clientSawServer);
  SSL_set_app_data(server.get(), &r.serverSawClient);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());

  auto pending = [](SSL* s, int rc) {
    int e = SSL_get_error(s, rc);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
  };
  bool cDone = false, sDone = false;
  for (int i = 0; i < 20 && !(cDone && sDone); ++i) {
    if (!cDone) {
      int rc = SSL_do_handshake(client.get());
      if (rc == 1)
        cDone = true;
      else if (!pending(client.get(), rc))
        break;
    }
    if (!sDone) {
      int rc = SSL_do_handshake(server.get());
      if (rc == 1)
        sDone = true;
      else if (!pending(server.get(), rc))
        break;
    }
  }
  ERR_clear_error();
  if (!cDone || !sDone) return r;

  const char ping[] = "ping";
  char buf[8] = {};
  if (SSL_write(client.get(), ping, 4) != 4) return r;
  if (SSL_read(server.get(), buf, sizeof buf) != 4 || std::string(buf, 4) != "ping") return r;
  if (SSL_write(server.get(), "pong", 4) != 4) return r;
  if (SSL_read(client.get(), buf, sizeof buf) != 4 || std::string(buf, 4) != "pong") return r;
  auto peer = peerSpiffeId(server.get());
  if (peer) r.serverPeer = *peer;
  r.tlsVersion = SSL_version(client.get());
  r.ok = true;
  return r;
}

TEST_F(IdentityTest, MtlsHandshakeWithSvidsOfTheSameCa) {
  CertificateAuthority ca = load("inter");
  auto client = ca.issueSvid("spiffe://cluster.local/ns/default/sa/client");
  auto gateway = ca.issueSvid("spiffe://cluster.local/ns/tollgate/sa/gateway");
  ASSERT_TRUE(client && gateway);
  auto clientCtx = tlsContext(&*client, ca.trustBundlePem());
  auto serverCtx = tlsContext(&*gateway, ca.trustBundlePem());

  HandshakeResult r = handshake(clientCtx.get(), serverCtx.get());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.tlsVersion, TLS1_3_VERSION);
  EXPECT_EQ(r.serverSawClient, "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(r.serverPeer, "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(r.clientSawServer, "spiffe://cluster.local/ns/tollgate/sa/gateway");
}

TEST_F(IdentityTest, MtlsHandshakeFailsWithAForeignCasSvid) {
  CertificateAuthority ca = load("inter");
  CertificateAuthority foreign = load("foreign");
  auto gateway = ca.issueSvid("spiffe://cluster.local/ns/tollgate/sa/gateway");
  auto intruder = foreign.issueSvid("spiffe://cluster.local/ns/default/sa/client");
  ASSERT_TRUE(gateway && intruder);
  auto serverCtx = tlsContext(&*gateway, ca.trustBundlePem());

  // Client with a foreign SVID that trusts the right root: the server refuses it.
  auto intruderCtx = tlsContext(&*intruder, ca.trustBundlePem());
  HandshakeResult r = handshake(intruderCtx.get(), serverCtx.get());
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.serverSawClient.empty());

  // Server with a foreign SVID: a good client refuses it.
  auto good = ca.issueSvid("spiffe://cluster.local/ns/default/sa/client");
  ASSERT_TRUE(good);
  auto goodCtx = tlsContext(&*good, ca.trustBundlePem());
  auto fakeServerCtx = tlsContext(&*intruder, foreign.trustBundlePem());
  HandshakeResult r2 = handshake(goodCtx.get(), fakeServerCtx.get());
  EXPECT_FALSE(r2.ok);
  EXPECT_TRUE(r2.clientSawServer.empty());

  // No client certificate at all: required, so refused.
  auto anonCtx = tlsContext(nullptr, ca.trustBundlePem());
  EXPECT_FALSE(handshake(anonCtx.get(), serverCtx.get()).ok);

  // Control: the same server accepts a good client.
  EXPECT_TRUE(handshake(goodCtx.get(), serverCtx.get()).ok);
}

}  // namespace
}  // namespace tollgate::identity
