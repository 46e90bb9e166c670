#pragma once

// Test-only X.509 helpers: a P-256 CA that issues leaf certificates with the SANs a test needs
// (SPIFFE URIs for workloads, DNS names and IPs for servers), plus a scratch directory.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tollgate::gateway::testing {

struct Issued {
  std::string certPem;
  std::string keyPem;
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tollgate-gw-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p, std::ios::trunc) << content;
    return p;
  }

 private:
  std::string path_;
};

class TestCa {
 public:
  explicit TestCa(const std::string& cn) : key_(newKey()), cert_(X509_new(), &X509_free) {
    build(cert_.get(), cn, key_.get(), nullptr, nullptr,
          {{NID_basic_constraints, "critical,CA:TRUE"},
           {NID_key_usage, "critical,keyCertSign,cRLSign"}});
  }

  std::string certPem() const { return pem(cert_.get()); }

  // sans: "URI:spiffe://...", "DNS:svc.test", "IP:127.0.0.1" (OpenSSL config syntax).
  Issued issue(const std::string& cn, const std::vector<std::string>& sans) const {
    auto key = newKey();
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
    std::string san;
    for (const auto& s : sans) san += (san.empty() ? "" : ",") + s;
    std::vector<std::pair<int, std::string>> ext = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
        {NID_ext_key_usage, "serverAuth,clientAuth"}};
    if (!san.empty()) ext.emplace_back(NID_subject_alt_name, san);
    build(cert.get(), cn, key.get(), cert_.get(), key_.get(), ext);
    Issued out;
    out.certPem = pem(cert.get());
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    out.keyPem = bioString(b);
    BIO_free(b);
    return out;
  }

 private:
  using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

  static Key newKey() { return Key(EVP_EC_gen("P-256"), &EVP_PKEY_free); }

  static std::string bioString(BIO* b) {
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    return std::string(data, static_cast<size_t>(n));
  }

  static std::string pem(X509* c) {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, c);
    std::string s = bioString(b);
    BIO_free(b);
    return s;
  }

  static void build(X509* c, const std::string& cn, EVP_PKEY* key, X509* issuer,
                    EVP_PKEY* issuerKey, const std::vector<std::pair<int, std::string>>& ext) {
    static int serial = 1;
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), ++serial);
    X509_gmtime_adj(X509_getm_notBefore(c), -60);
    X509_gmtime_adj(X509_getm_notAfter(c), 3600);
    X509_NAME* name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(c, key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : c, c, nullptr, nullptr, 0);
    for (const auto& [nid, value] : ext) {
      X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      if (!e) throw std::runtime_error("bad extension " + value);
      X509_add_ext(c, e, -1);
      X509_EXTENSION_free(e);
    }
    X509_sign(c, issuerKey ? issuerKey : key, EVP_sha256());
  }

  Key key_;
  std::unique_ptr<X509, decltype(&X509_free)> cert_;
};

}  // namespace tollgate::gateway::testing
