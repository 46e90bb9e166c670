#include "identity/svid.h"

#include <cctype>

#include <fmt/format.h>
#include <openssl/pem.h>

#include "identity/spiffe_id.h"

namespace tollgate::identity {

Result<std::vector<X509Ptr>> parseCertificates(std::string_view pem, std::string_view what) {
  ERR_clear_error();
  BioPtr bio = memBio(pem);
  if (!bio) return fail(fmt::format("{}: {}", what, opensslError()));
  std::vector<X509Ptr> certs;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(c);
  }
  // The loop always ends on an error: "no start line" after the last certificate is the normal
  // end; anything else (bad base64, bad DER) is a broken file.
  unsigned long e = ERR_peek_last_error();
  bool cleanEnd =
      e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
  if (certs.empty()) {
    return fail(fmt::format("{}: no PEM certificate found: {}", what, opensslError()));
  }
  if (!cleanEnd) return fail(fmt::format("{}: {}", what, opensslError()));
  ERR_clear_error();
  return certs;
}

Result<EvpPkeyPtr> parsePrivateKey(std::string_view pem, std::string_view what) {
  ERR_clear_error();
  BioPtr bio = memBio(pem);
  if (!bio) return fail(fmt::format("{}: {}", what, opensslError()));
  // A password callback that gives none: an encrypted key fails instead of prompting on a tty.
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (!key) return fail(fmt::format("{}: no usable private key: {}", what, opensslError()));
  return key;
}

Result<SvidCredentials> loadCredentials(const Svid& svid) {
  std::string what = "SVID " + svid.spiffeId;
  auto certs = parseCertificates(svid.certPem, what + " certificate");
  if (!certs) return std::unexpected(certs.error());
  auto key = parsePrivateKey(svid.keyPem, what + " key");
  if (!key) return std::unexpected(key.error());
  SvidCredentials out;
  out.cert = std::move(certs->front());
  out.key = std::move(*key);
  if (X509_check_private_key(out.cert.get(), out.key.get()) != 1) {
    return fail(fmt::format("{}: key does not match certificate: {}", what, opensslError()));
  }
  if (!svid.chainPem.empty()) {
    auto chain = parseCertificates(svid.chainPem, what + " chain");
    if (!chain) return std::unexpected(chain.error());
    out.chain = std::move(*chain);
  }
  return out;
}

Status useSvid(SSL_CTX* ctx, const Svid& svid) {
  auto creds = loadCredentials(svid);
  if (!creds) return std::unexpected(creds.error());
  std::string what = "SVID " + svid.spiffeId;
  if (SSL_CTX_use_certificate(ctx, creds->cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, creds->key.get()) != 1) {
    return fail(fmt::format("{}: install in TLS context: {}", what, opensslError()));
  }
  SSL_CTX_clear_chain_certs(ctx);
  for (const auto& c : creds->chain) {
    if (SSL_CTX_add1_chain_cert(ctx, c.get()) != 1) {
      return fail(fmt::format("{}: add chain certificate: {}", what, opensslError()));
    }
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail(fmt::format("{}: key does not match certificate: {}", what, opensslError()));
  }
  return {};
}

Result<X509StorePtr> makeTrustStore(std::string_view pem, std::string_view what) {
  auto certs = parseCertificates(pem, what);
  if (!certs) return std::unexpected(certs.error());
  X509StorePtr store(X509_STORE_new());
  if (!store) return fail(fmt::format("{}: {}", what, opensslError()));
  for (const auto& c : *certs) {
    if (X509_STORE_add_cert(store.get(), c.get()) != 1) {
      return fail(fmt::format("{}: {}", what, opensslError()));
    }
  }
  return store;
}

Status useTrustBundle(SSL_CTX* ctx, std::string_view pem) {
  auto store = makeTrustStore(pem);
  if (!store) return std::unexpected(store.error());
  SSL_CTX_set_cert_store(ctx, store->release());  // the context takes ownership
  return {};
}

Result<std::string> peerSpiffeId(const SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return fail("peer sent no certificate");
  if (SSL_get_verify_result(ssl) != X509_V_OK) {
    return fail(fmt::format("peer certificate not verified: {}",
                            X509_verify_cert_error_string(SSL_get_verify_result(ssl))));
  }
  return parseSpiffeIdFromCert(peer);
}

Result<std::string> toPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return fail("write certificate PEM: " + opensslError());
  }
  return bioToString(bio.get());
}

Result<std::string> toPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return fail("write private key PEM: " + opensslError());
  }
  return bioToString(bio.get());
}

Result<std::string> serialHex(std::string_view pem) {
  auto certs = parseCertificates(pem, "certificate");
  if (!certs) return std::unexpected(certs.error());
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(certs->front().get()), nullptr));
  if (!bn) return fail("serial: " + opensslError());
  char* hex = BN_bn2hex(bn.get());
  if (!hex) return fail("serial: " + opensslError());
  std::string out(hex);
  OPENSSL_free(hex);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace tollgate::identity
