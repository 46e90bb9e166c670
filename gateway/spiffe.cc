#include "gateway/spiffe.h"

#include <fmt/format.h>
#include <openssl/x509v3.h>

#include <memory>

namespace tollgate::gateway {
namespace {

bool validSegment(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (unsigned char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string SpiffeId::str() const {
  return fmt::format("spiffe://{}/ns/{}/sa/{}", trustDomain, ns, serviceAccount);
}

Result<SpiffeId> parseSpiffeId(std::string_view uri) {
  constexpr std::string_view kScheme = "spiffe://";
  if (!uri.starts_with(kScheme)) return fail("spiffe id: scheme is not spiffe://");
  std::string_view rest = uri.substr(kScheme.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return fail("spiffe id: no path");
  SpiffeId id;
  id.trustDomain = std::string(rest.substr(0, slash));
  if (!validSegment(id.trustDomain)) return fail("spiffe id: bad trust domain");
  std::string_view path = rest.substr(slash);  // "/ns/<ns>/sa/<sa>"
  std::string_view parts[4];
  for (auto& p : parts) {
    if (path.empty() || path.front() != '/') return fail("spiffe id: path is not /ns/<ns>/sa/<sa>");
    path.remove_prefix(1);
    auto next = path.find('/');
    p = path.substr(0, next);
    path = next == std::string_view::npos ? std::string_view() : path.substr(next);
  }
  if (!path.empty() || parts[0] != "ns" || parts[2] != "sa" || !validSegment(parts[1]) ||
      !validSegment(parts[3])) {
    return fail("spiffe id: path is not /ns/<ns>/sa/<sa>");
  }
  id.ns = std::string(parts[1]);
  id.serviceAccount = std::string(parts[3]);
  return id;
}

Result<SpiffeId> spiffeIdOf(X509* cert) {
  if (!cert) return fail("peer presented no certificate");
  using Names = std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)>;
  Names names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)),
      &GENERAL_NAMES_free);
  if (!names) return fail("peer certificate has no subjectAltName");
  std::string uri;
  int uris = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) continue;
    ++uris;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
               static_cast<size_t>(ASN1_STRING_length(s)));
  }
  if (uris != 1) return fail(fmt::format("peer certificate has {} URI SANs, want 1", uris));
  if (uri.find('\0') != std::string::npos) return fail("peer URI SAN contains NUL");
  return parseSpiffeId(uri);
}

}  // namespace tollgate::gateway
