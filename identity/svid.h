#pragma once

// An X.509 SVID (a workload's certificate and key) as PEM text, plus the helpers that turn it
// into the OpenSSL objects a TLS context needs.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "identity/openssl_util.h"
#include "common/error.h"

namespace tollgate::identity {

inline constexpr std::chrono::seconds kDefaultSvidLifetime = std::chrono::hours(24);
// notBefore is backdated by this much so that peers whose clocks lag a little accept a fresh SVID.
inline constexpr std::chrono::seconds kClockSkewAllowance = std::chrono::seconds(60);

struct Svid {
  std::string spiffeId;  // spiffe://<td>/ns/<ns>/sa/<sa>
  std::string certPem;   // the leaf
  std::string keyPem;    // PKCS#8 ECDSA P-256 private key
  // Certificates to send after the leaf: the issuing CA and any intermediates above it, without
  // the root. Empty when a root CA issued the leaf directly.
  std::string chainPem;
  std::string trustBundlePem;  // the root(s) peers of this trust domain are verified against
  std::chrono::system_clock::time_point issuedAt;
  std::chrono::system_clock::time_point notBefore;  // issuedAt - kClockSkewAllowance
  std::chrono::system_clock::time_point notAfter;

  // Half way through the usable life (from issuance, not from the backdated notBefore).
  std::chrono::system_clock::time_point rotateAt() const {
    return issuedAt + (notAfter - issuedAt) / 2;
  }
};

// An SVID as OpenSSL objects, ready for SSL_CTX_use_certificate / SSL_CTX_use_PrivateKey /
// SSL_CTX_add1_chain_cert.
struct SvidCredentials {
  X509Ptr cert;
  EvpPkeyPtr key;
  std::vector<X509Ptr> chain;
};

// Every certificate in `pem` (at least one). `what` names the source in errors ("CA chain
// /etc/tollgate/ca/cert-chain.pem").
Result<std::vector<X509Ptr>> parseCertificates(std::string_view pem, std::string_view what);
Result<EvpPkeyPtr> parsePrivateKey(std::string_view pem, std::string_view what);

Result<SvidCredentials> loadCredentials(const Svid& svid);

// Installs the SVID's certificate, key and chain into `ctx` and checks that key and certificate
// belong together.
Status useSvid(SSL_CTX* ctx, const Svid& svid);

// A verification store holding every certificate of `pem`.
Result<X509StorePtr> makeTrustStore(std::string_view pem, std::string_view what = "trust bundle");

// Installs `pem` as the trust anchors of `ctx` (peers' certificates are verified against it).
Status useTrustBundle(SSL_CTX* ctx, std::string_view pem);

// The verified peer's SPIFFE ID after a handshake (parseSpiffeIdFromCert on its leaf).
Result<std::string> peerSpiffeId(const SSL* ssl);

// PEM text of a certificate / a private key (PKCS#8, unencrypted).
Result<std::string> toPem(X509* cert);

// The serial number of the first certificate in `pem`, as lowercase hex (tollgatectl certs).
Result<std::string> serialHex(std::string_view pem);
Result<std::string> toPem(EVP_PKEY* key);

}  // namespace tollgate::identity
