#include "gateway/upstream.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "policy/ip.h"

namespace tollgate::gateway {

Upstream::Upstream(asio::ip::tcp::socket sock) : plain_(std::move(sock)) {}

Upstream::Upstream(asio::ip::tcp::socket sock, UpstreamTls tls)
    : tlsConfig_(std::move(tls)),
      tls_(std::make_unique<ssl::stream<asio::ip::tcp::socket>>(std::move(sock), *tlsConfig_.ctx)) {
}

Upstream::~Upstream() { close(); }

asio::ip::tcp::socket& Upstream::socket() { return tls_ ? tls_->next_layer() : *plain_; }

awaitable<error_code> Upstream::handshake() {
  error_code ec;
  if (!tls_) co_return ec;
  SSL* ssl = tls_->native_handle();
  if (!tlsConfig_.sni.empty()) SSL_set_tlsext_host_name(ssl, tlsConfig_.sni.c_str());
  if (tlsConfig_.verify && tlsConfig_.subjectAltNames.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (policy::IpAddress::parse(tlsConfig_.verifyHost)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, tlsConfig_.verifyHost.c_str());
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl, tlsConfig_.verifyHost.c_str());
    }
  }
  co_await tls_->async_handshake(ssl::stream_base::client,
                                 asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    tlsFailure_ = sslErrorText(ssl);
    if (tlsFailure_ == "unknown TLS error") tlsFailure_ = ec.message();
    co_return ec;
  }
  if (tlsConfig_.verify && !tlsConfig_.subjectAltNames.empty()) {
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (!certificateMatchesAny(cert, tlsConfig_.subjectAltNames)) {
      tlsFailure_ = "certificate matches none of subjectAltNames";
      co_return asio::error::access_denied;
    }
  }
  co_return ec;
}

awaitable<size_t> Upstream::readSome(asio::mutable_buffer b, error_code& ec) {
  if (tls_) {
    co_return co_await tls_->async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return co_await plain_->async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
}

awaitable<void> Upstream::writeAll(asio::const_buffer b, error_code& ec) {
  if (tls_) {
    co_await asio::async_write(*tls_, b, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await asio::async_write(*plain_, b, asio::redirect_error(asio::use_awaitable, ec));
  }
}

void Upstream::shutdownWrite() {
  error_code ec;
  socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
}

void Upstream::cancel() {
  error_code ec;
  socket().cancel(ec);
}

void Upstream::close() {
  if (!tls_ && !plain_) return;
  error_code ec;
  if (socket().is_open()) socket().close(ec);
}

}  // namespace tollgate::gateway
