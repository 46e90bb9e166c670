#include "gateway/tls_contexts.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <filesystem>

#include "policy/ip.h"

namespace tollgate::gateway {
namespace {

constexpr unsigned char kAlpn[] = "\x02h2\x08http/1.1";

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpn, sizeof(kAlpn) - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    // No common protocol: proceed without ALPN; the connection speaks HTTP/1.1.
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

std::string takeErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

Status readable(const std::string& path, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return fail(fmt::format("{} {}: not a readable file", what, path));
  }
  return {};
}

}  // namespace

std::string sslErrorText(SSL* ssl) {
  if (ssl) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) return X509_verify_cert_error_string(v);
  }
  return takeErrors();
}

Result<std::shared_ptr<ssl::context>> makeServerContext(const std::string& certFile,
                                                        const std::string& keyFile,
                                                        const std::string& trustBundleFile) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1) {
    return fail("server TLS: cannot require TLS 1.3: " + takeErrors());
  }
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  if (SSL_CTX_use_certificate_chain_file(native, certFile.c_str()) != 1) {
    return fail(fmt::format("server TLS: certificate {}: {}", certFile, takeErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(native, keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail(fmt::format("server TLS: key {}: {}", keyFile, takeErrors()));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return fail(fmt::format("server TLS: key {} does not match {}", keyFile, certFile));
  }
  if (SSL_CTX_load_verify_locations(native, trustBundleFile.c_str(), nullptr) != 1) {
    return fail(fmt::format("server TLS: trust bundle {}: {}", trustBundleFile, takeErrors()));
  }
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(native, 4);
  SSL_CTX_set_alpn_select_cb(native, selectAlpn, nullptr);
  return ctx;
}

Result<UpstreamTls> makeUpstreamTls(const policy::ClientTlsSettings& s, const std::string& host,
                                    const std::string& credentialsDir) {
  if (s.mode != policy::TlsMode::Simple && s.mode != policy::TlsMode::Mutual) {
    return fail(fmt::format("upstream TLS mode {} is not originated by the gateway",
                            policy::toString(s.mode)));
  }
  std::string ca = s.caCertificates;
  std::string cert = s.clientCertificate;
  std::string key = s.privateKey;
  if (!s.credentialName.empty()) {
    if (s.credentialName.find('/') != std::string::npos || s.credentialName.starts_with(".")) {
      return fail("credentialName " + s.credentialName + ": invalid");
    }
    std::string dir = credentialsDir + "/" + s.credentialName;
    if (s.mode == policy::TlsMode::Mutual) {
      cert = dir + "/tls.crt";
      key = dir + "/tls.key";
    }
    std::error_code ec;
    if (std::filesystem::exists(dir + "/ca.crt", ec)) ca = dir + "/ca.crt";
  }

  UpstreamTls out;
  out.ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX* native = out.ctx->native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  out.verify = !s.insecureSkipVerify;
  if (out.verify) {
    if (!ca.empty()) {
      if (auto st = readable(ca, "caCertificates"); !st) return std::unexpected(st.error());
      if (SSL_CTX_load_verify_locations(native, ca.c_str(), nullptr) != 1) {
        return fail(fmt::format("caCertificates {}: {}", ca, takeErrors()));
      }
    } else if (SSL_CTX_set_default_verify_paths(native) != 1) {
      return fail("system trust store: " + takeErrors());
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  }
  if (s.mode == policy::TlsMode::Mutual) {
    if (cert.empty() || key.empty()) {
      return fail("MUTUAL needs clientCertificate and privateKey (or credentialName)");
    }
    if (auto st = readable(cert, "clientCertificate"); !st) return std::unexpected(st.error());
    if (auto st = readable(key, "privateKey"); !st) return std::unexpected(st.error());
    if (SSL_CTX_use_certificate_chain_file(native, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(native, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(native) != 1) {
      return fail(fmt::format("client certificate {} / key {}: {}", cert, key, takeErrors()));
    }
  }
  const std::string& name = s.sni.empty() ? host : s.sni;
  if (!policy::IpAddress::parse(name)) out.sni = name;
  out.verifyHost = s.sni.empty() ? host : s.sni;
  out.subjectAltNames = s.subjectAltNames;
  return out;
}

bool certificateMatchesAny(X509* cert, const std::vector<std::string>& wanted) {
  if (!cert) return false;
  std::vector<std::string> uris;
  using Names = std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)>;
  Names names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)),
      &GENERAL_NAMES_free);
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
      if (gn->type != GEN_URI) continue;
      const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
      uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                        static_cast<size_t>(ASN1_STRING_length(s)));
    }
  }
  for (const auto& w : wanted) {
    if (w.find("://") != std::string::npos) {
      for (const auto& u : uris) {
        if (u == w) return true;
      }
    } else if (policy::IpAddress::parse(w)) {
      if (X509_check_ip_asc(cert, w.c_str(), 0) == 1) return true;
    } else if (X509_check_host(cert, w.data(), w.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                               nullptr) == 1) {
      return true;
    }
  }
  return false;
}

}  // namespace tollgate::gateway
