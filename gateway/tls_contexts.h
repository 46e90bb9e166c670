#pragma once

#include <memory>
#include <string>
#include <vector>

// asio.h first: Boost 1.74 needs <utility> before awaitable.hpp.
#include <boost/asio/ssl.hpp>

#include "common/error.h"
#include "policy/model.h"
#include "proxy/asio.h"

namespace tollgate::gateway {

namespace ssl = boost::asio::ssl;

// The tunnel listener's context: TLS 1.3 only, a client certificate REQUIRED and verified
// against the trust bundle, ALPN h2 preferred over http/1.1 (no ALPN: http/1.1).
Result<std::shared_ptr<ssl::context>> makeServerContext(const std::string& certFile,
                                                        const std::string& keyFile,
                                                        const std::string& trustBundleFile);

// How the gateway talks TLS to one upstream (DestinationRule SIMPLE / MUTUAL).
struct UpstreamTls {
  std::shared_ptr<ssl::context> ctx;
  std::string sni;                           // "" for IP literals (SNI forbids them)
  std::string verifyHost;                    // hostname/IP checked when no SANs are given
  std::vector<std::string> subjectAltNames;  // any one must be in the certificate
  bool verify = true;                        // false only with insecureSkipVerify
};

// Builds the client context for `settings` towards `host`. credentialName is read from
// <credentialsDir>/<name>/{tls.crt,tls.key,ca.crt} (the standalone layout of a Kubernetes TLS
// secret). Fails on DISABLE/ISTIO_MUTUAL and on unreadable files.
Result<UpstreamTls> makeUpstreamTls(const policy::ClientTlsSettings& settings,
                                    const std::string& host, const std::string& credentialsDir);

// After a verified handshake: does the certificate carry one of the wanted SANs? DNS names use
// X509_check_host (wildcards), IP literals X509_check_ip_asc, URIs compare exactly.
bool certificateMatchesAny(X509* cert, const std::vector<std::string>& subjectAltNames);

// The OpenSSL error queue (or the verify result) as text, for logs.
std::string sslErrorText(SSL* ssl = nullptr);

}  // namespace tollgate::gateway
