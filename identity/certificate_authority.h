#pragma once

// The built-in CA that issues workload SVIDs, loaded from PEM files (the lab and tests generate
// them with scripts/gen-ca). It may be a root or an intermediate; for an intermediate the chain up
// to the root must be given, and is what SVIDs present after their leaf.

#include <chrono>
#include <string>
#include <string_view>

#include "identity/clock.h"
#include "identity/openssl_util.h"
#include "identity/svid.h"
#include "common/error.h"

namespace tollgate::identity {

class CertificateAuthority {
 public:
  // certPemPath: the issuing CA certificate; keyPemPath: its private key (unencrypted);
  // chainPemPath (optional for a root): the certificates from the CA up to and including the
  // root, in any order (the CA certificate itself may be repeated, as in Istio's
  // cert-chain.pem). Errors name the file and carry the OpenSSL error text.
  static Result<CertificateAuthority> fromFiles(const std::string& certPemPath,
                                                const std::string& keyPemPath,
                                                const std::string& chainPemPath = {});
  // The same from PEM text; `origin` prefixes errors.
  static Result<CertificateAuthority> fromPem(std::string_view certPem, std::string_view keyPem,
                                              std::string_view chainPem = {},
                                              std::string_view origin = "CA");

  // A new ECDSA P-256 key and an X.509 v3 leaf for `spiffeId`: URI SAN only (critical, empty
  // subject), keyUsage digitalSignature, extendedKeyUsage serverAuth+clientAuth, CA:FALSE,
  // subject/authority key ids, random 128-bit serial, valid from now - 60 s to now + lifetime
  // (cut at the CA's own notAfter).
  Result<Svid> issueSvid(std::string_view spiffeId,
                         std::chrono::seconds lifetime = kDefaultSvidLifetime,
                         const Clock& clock = systemClock()) const;
  Result<Svid> issueSvidAt(std::string_view spiffeId, std::chrono::seconds lifetime,
                           std::chrono::system_clock::time_point now) const;

  X509* certificate() const { return cert_.get(); }
  bool isRoot() const { return chainPem_.empty(); }
  // Certificates SVIDs present after the leaf (CA and intermediates, no root); empty for a root.
  const std::string& chainPem() const { return chainPem_; }
  // The root(s): what every peer of this trust domain verifies against.
  const std::string& trustBundlePem() const { return trustBundlePem_; }
  std::chrono::system_clock::time_point notAfter() const { return notAfter_; }

 private:
  CertificateAuthority() = default;
  static Result<CertificateAuthority> load(std::string_view certPem, std::string_view keyPem,
                                           std::string_view chainPem, const std::string& certWhat,
                                           const std::string& keyWhat,
                                           const std::string& chainWhat);

  X509Ptr cert_;
  EvpPkeyPtr key_;
  std::string chainPem_;
  std::string trustBundlePem_;
  std::chrono::system_clock::time_point notAfter_;
};

}  // namespace tollgate::identity
