#include "identity/certificate_authority.h"

#include <fmt/format.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

#include "identity/spiffe_id.h"

namespace tollgate::identity {
namespace {

using std::chrono::system_clock;

// CA files are a few KiB; anything this large is not one, and is not read into memory.
constexpr std::streamsize kMaxPemFile = 1 << 20;

Result<std::string> readFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return failErrno(fmt::format("{} {}: open", what, path));
  std::string data(static_cast<size_t>(kMaxPemFile) + 1, '\0');
  in.read(data.data(), kMaxPemFile + 1);
  if (in.bad()) return failErrno(fmt::format("{} {}: read", what, path));
  if (in.gcount() > kMaxPemFile) {
    return fail(fmt::format("{} {}: larger than {} bytes", what, path, kMaxPemFile));
  }
  data.resize(static_cast<size_t>(in.gcount()));
  return data;
}

Result<system_clock::time_point> toTimePoint(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return fail("bad ASN.1 time: " + opensslError());
  return system_clock::from_time_t(timegm(&tm));
}

std::string rfc3339(system_clock::time_point t) {
  std::time_t tt = system_clock::to_time_t(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Adds one extension written in openssl.cnf syntax; `ctx` supplies the issuer and subject that
// "hash" and "keyid" refer to.
Status addExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return fail(fmt::format("add extension {}={}: {}", OBJ_nid2sn(nid), value, opensslError()));
  }
  return {};
}

// The URI SAN is built by hand rather than through the config syntax, where ',' and ':' in a
// value would be parsed as separators.
Status addUriSan(X509* cert, std::string_view uri) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* gn = GENERAL_NAME_new();
  ASN1_IA5STRING* s = ASN1_IA5STRING_new();
  if (!names || !gn || !s || ASN1_STRING_set(s, uri.data(), static_cast<int>(uri.size())) != 1) {
    GENERAL_NAME_free(gn);
    ASN1_IA5STRING_free(s);
    return fail("build subjectAltName: " + opensslError());
  }
  GENERAL_NAME_set0_value(gn, GEN_URI, s);
  if (sk_GENERAL_NAME_push(names.get(), gn) == 0) {
    GENERAL_NAME_free(gn);
    return fail("build subjectAltName: " + opensslError());
  }
  // Critical: the subject is empty, and RFC 5280 4.2.1.6 then requires a critical SAN.
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 1, X509V3_ADD_DEFAULT) != 1) {
    return fail("add subjectAltName: " + opensslError());
  }
  return {};
}

Result<Asn1IntegerPtr> randomSerial() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return fail("random serial: " + opensslError());
  bytes[sizeof bytes - 1] |= 1;  // never zero, which RFC 5280 forbids
  BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  Asn1IntegerPtr serial(bn ? BN_to_ASN1_INTEGER(bn.get(), nullptr) : nullptr);
  if (!serial) return fail("random serial: " + opensslError());
  return serial;
}

// Ed25519/Ed448 keys sign without a separate digest; everything else gets SHA-256.
const EVP_MD* signingDigest(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448")) return nullptr;
  return EVP_sha256();
}

}  // namespace

Result<CertificateAuthority> CertificateAuthority::fromFiles(const std::string& certPemPath,
                                                             const std::string& keyPemPath,
                                                             const std::string& chainPemPath) {
  auto cert = readFile(certPemPath, "CA certificate");
  if (!cert) return std::unexpected(cert.error());
  auto key = readFile(keyPemPath, "CA key");
  if (!key) return std::unexpected(key.error());
  std::string chain;
  if (!chainPemPath.empty()) {
    auto c = readFile(chainPemPath, "CA chain");
    if (!c) return std::unexpected(c.error());
    chain = std::move(*c);
  }
  return load(*cert, *key, chain, "CA certificate " + certPemPath, "CA key " + keyPemPath,
              chainPemPath.empty() ? std::string() : "CA chain " + chainPemPath);
}

Result<CertificateAuthority> CertificateAuthority::fromPem(std::string_view certPem,
                                                           std::string_view keyPem,
                                                           std::string_view chainPem,
                                                           std::string_view origin) {
  std::string o(origin);
  return load(certPem, keyPem, chainPem, o + " certificate", o + " key",
              chainPem.empty() ? std::string() : o + " chain");
}

Result<CertificateAuthority> CertificateAuthority::load(
    std::string_view certPem, std::string_view keyPem, std::string_view chainPem,
    const std::string& certWhat, const std::string& keyWhat, const std::string& chainWhat) {
  auto certs = parseCertificates(certPem, certWhat);
  if (!certs) return std::unexpected(certs.error());
  auto key = parsePrivateKey(keyPem, keyWhat);
  if (!key) return std::unexpected(key.error());

  CertificateAuthority ca;
  ca.cert_ = std::move(certs->front());
  ca.key_ = std::move(*key);
  X509* cert = ca.cert_.get();
  if (X509_check_private_key(cert, ca.key_.get()) != 1) {
    return fail(fmt::format("{} does not match {}: {}", keyWhat, certWhat, opensslError()));
  }
  if (X509_check_ca(cert) == 0) {
    return fail(
        fmt::format("{}: not a CA certificate (needs basicConstraints CA:TRUE and, if "
                    "keyUsage is present, keyCertSign)",
                    certWhat));
  }

  // Extra certificates may come after the CA in its own file or in the chain file. Self-signed
  // ones are roots (trust anchors); the rest are untrusted intermediates that X509_verify_cert
  // puts in order for us.
  std::vector<X509Ptr> extra(std::make_move_iterator(certs->begin() + 1),
                             std::make_move_iterator(certs->end()));
  if (!chainWhat.empty()) {  // a chain was given: an empty file is an error, not "no chain"
    auto chain = parseCertificates(chainPem, chainWhat);
    if (!chain) return std::unexpected(chain.error());
    for (auto& c : *chain) extra.push_back(std::move(c));
  }
  bool caIsRoot = X509_self_signed(cert, 1) == 1;
  X509StorePtr roots(X509_STORE_new());
  X509StackPtr untrustedOwner(sk_X509_new_null());
  STACK_OF(X509)* untrusted = untrustedOwner.get();
  if (!roots || !untrusted) return fail(certWhat + ": " + opensslError());
  int rootCount = 0;
  if (caIsRoot) {
    X509_STORE_add_cert(roots.get(), cert);
    ++rootCount;
  }
  for (const auto& c : extra) {
    if (X509_cmp(c.get(), cert) == 0) continue;
    if (X509_self_signed(c.get(), 1) == 1) {
      X509_STORE_add_cert(roots.get(), c.get());
      ++rootCount;
    } else {
      sk_X509_push(untrusted, c.get());  // borrowed: `extra` outlives the verification
    }
  }
  ERR_clear_error();
  // Where the roots were looked for, for the errors below.
  std::string searched = chainWhat.empty() ? "the CA file (no chain file given)" : chainWhat;
  if (rootCount == 0) {
    return fail(
        fmt::format("{}: an intermediate CA needs the chain up to its root; no "
                    "self-signed root certificate in {}",
                    certWhat, searched));
  }

  X509StoreCtxPtr vctx(X509_STORE_CTX_new());
  if (!vctx || X509_STORE_CTX_init(vctx.get(), roots.get(), cert, untrusted) != 1) {
    return fail(certWhat + ": " + opensslError());
  }
  if (X509_verify_cert(vctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(vctx.get());
    ERR_clear_error();
    return fail(fmt::format("{}: CA does not chain to a root in {}: {}", certWhat, searched,
                            X509_verify_cert_error_string(err)),
                err);
  }

  // The verified path [CA, intermediates..., root]: SVIDs present all but the root.
  STACK_OF(X509)* path = X509_STORE_CTX_get0_chain(vctx.get());
  int n = sk_X509_num(path);
  ca.notAfter_ = system_clock::time_point::max();
  for (int i = 0; i < n; ++i) {
    X509* c = sk_X509_value(path, i);
    auto pem = toPem(c);
    if (!pem) return std::unexpected(pem.error().wrap(certWhat));
    if (i + 1 < n) {
      ca.chainPem_ += *pem;
    } else {
      ca.trustBundlePem_ = *pem;
    }
    // No leaf can outlive any certificate above it.
    auto end = toTimePoint(X509_get0_notAfter(c));
    if (!end) return std::unexpected(end.error().wrap(certWhat));
    ca.notAfter_ = std::min(ca.notAfter_, *end);
  }
  return ca;
}

Result<Svid> CertificateAuthority::issueSvid(std::string_view spiffeId,
                                             std::chrono::seconds lifetime,
                                             const Clock& clock) const {
  return issueSvidAt(spiffeId, lifetime, clock.now());
}

Result<Svid> CertificateAuthority::issueSvidAt(std::string_view spiffeId,
                                               std::chrono::seconds lifetime,
                                               system_clock::time_point now) const {
  auto id = parseSpiffeId(spiffeId);
  if (!id) return std::unexpected(id.error().wrap("issue SVID"));
  std::string what = "issue SVID " + id->str();
  if (id->path.empty()) return fail(what + ": a workload SPIFFE ID needs a path");
  if (lifetime <= std::chrono::seconds(0)) return fail(what + ": lifetime must be positive");

  Svid svid;
  svid.spiffeId = id->str();
  svid.issuedAt = std::chrono::time_point_cast<std::chrono::seconds>(now);
  svid.notBefore = svid.issuedAt - kClockSkewAllowance;
  svid.notAfter = svid.issuedAt + lifetime;
  if (svid.issuedAt >= notAfter_) {
    return fail(fmt::format("{}: the CA chain expired at {}", what, rfc3339(notAfter_)));
  }
  svid.notAfter = std::min(svid.notAfter, notAfter_);
  svid.chainPem = chainPem_;
  svid.trustBundlePem = trustBundlePem_;

  ERR_clear_error();
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return fail(fmt::format("{}: generate P-256 key: {}", what, opensslError()));

  X509Ptr cert(X509_new());
  auto serial = randomSerial();
  if (!serial) return std::unexpected(serial.error().wrap(what));
  X509NamePtr emptySubject(X509_NAME_new());
  if (!cert || !emptySubject || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_serialNumber(cert.get(), serial->get()) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) != 1 ||
      X509_set_subject_name(cert.get(), emptySubject.get()) != 1 ||
      !ASN1_TIME_set(X509_getm_notBefore(cert.get()), system_clock::to_time_t(svid.notBefore)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), system_clock::to_time_t(svid.notAfter)) ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    return fail(fmt::format("{}: build certificate: {}", what, opensslError()));
  }

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert_.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, "critical,digitalSignature"},
                            std::pair{NID_ext_key_usage, "serverAuth,clientAuth"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (auto s = addExtension(cert.get(), &ctx, nid, value); !s) {
      return std::unexpected(s.error().wrap(what));
    }
  }
  // A CA without a subjectKeyIdentifier (hand-made, old) cannot give a key id: name it by its
  // issuer and serial instead of refusing to issue.
  if (!addExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always")) {
    ERR_clear_error();
    if (auto s = addExtension(cert.get(), &ctx, NID_authority_key_identifier, "issuer:always");
        !s) {
      return std::unexpected(s.error().wrap(what));
    }
  }
  if (auto s = addUriSan(cert.get(), svid.spiffeId); !s) {
    return std::unexpected(s.error().wrap(what));
  }
  if (X509_sign(cert.get(), key_.get(), signingDigest(key_.get())) <= 0) {
    return fail(fmt::format("{}: sign: {}", what, opensslError()));
  }

  auto certPem = toPem(cert.get());
  if (!certPem) return std::unexpected(certPem.error().wrap(what));
  auto keyPem = toPem(key.get());
  if (!keyPem) return std::unexpected(keyPem.error().wrap(what));
  svid.certPem = std::move(*certPem);
  svid.keyPem = std::move(*keyPem);
  return svid;
}

}  // namespace tollgate::identity
