#include "identity/spiffe_id.h"

#include <fmt/format.h>

#include <vector>

#include "identity/openssl_util.h"

namespace tollgate::identity {
namespace {

constexpr size_t kMaxTrustDomain = 255;
constexpr size_t kMaxSpiffeId = 2048;

bool trustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool pathChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// Printable form of untrusted text for an error message.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 128)) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  if (s.size() > 128) out += "...";
  return out + "\"";
}

}  // namespace

Status validateTrustDomain(std::string_view td) {
  if (td.empty()) return fail("SPIFFE trust domain is empty");
  if (td.size() > kMaxTrustDomain) {
    return fail(fmt::format("SPIFFE trust domain is longer than {} characters", kMaxTrustDomain));
  }
  for (char c : td) {
    if (!trustDomainChar(c)) {
      return fail(
          fmt::format("SPIFFE trust domain {}: only lowercase letters, digits, '.', '-' "
                      "and '_' are allowed",
                      quoted(td)));
    }
  }
  return {};
}

Status validatePathSegment(std::string_view seg) {
  if (seg.empty()) return fail("SPIFFE ID path has an empty segment");
  if (seg == "." || seg == "..") {
    return fail(fmt::format("SPIFFE ID path segment {} is not allowed", quoted(seg)));
  }
  for (char c : seg) {
    if (!pathChar(c)) {
      return fail(
          fmt::format("SPIFFE ID path segment {}: only letters, digits, '.', '-' and '_' "
                      "are allowed",
                      quoted(seg)));
    }
  }
  return {};
}

Result<std::string> spiffeId(std::string_view trustDomain, std::string_view ns,
                             std::string_view sa) {
  if (auto s = validateTrustDomain(trustDomain); !s) return std::unexpected(s.error());
  if (auto s = validatePathSegment(ns); !s) return std::unexpected(s.error().wrap("namespace"));
  if (auto s = validatePathSegment(sa); !s) {
    return std::unexpected(s.error().wrap("service account"));
  }
  return fmt::format("{}{}/ns/{}/sa/{}", kSpiffeScheme, trustDomain, ns, sa);
}

Result<SpiffeId> parseSpiffeId(std::string_view uri) {
  if (uri.size() > kMaxSpiffeId) {
    return fail(fmt::format("SPIFFE ID is longer than {} bytes", kMaxSpiffeId));
  }
  if (!uri.starts_with(kSpiffeScheme)) {
    return fail(fmt::format("{} is not a SPIFFE ID: scheme must be spiffe://", quoted(uri)));
  }
  std::string_view rest = uri.substr(kSpiffeScheme.size());
  size_t slash = rest.find('/');
  SpiffeId id;
  std::string_view td = rest.substr(0, slash);
  if (auto s = validateTrustDomain(td); !s) return std::unexpected(s.error().wrap(quoted(uri)));
  id.trustDomain = std::string(td);
  if (slash == std::string_view::npos) return id;

  std::string_view path = rest.substr(slash);
  std::vector<std::string_view> segments;
  for (size_t pos = 1;;) {
    size_t next = path.find('/', pos);
    std::string_view seg = path.substr(pos, next == std::string_view::npos ? next : next - pos);
    // A trailing "/" is an empty last segment: the spec forbids it as well.
    if (auto s = validatePathSegment(seg); !s) {
      return std::unexpected(s.error().wrap(quoted(uri)));
    }
    segments.push_back(seg);
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
  id.path = std::string(path);
  if (segments.size() == 4 && segments[0] == "ns" && segments[2] == "sa") {
    id.ns = std::string(segments[1]);
    id.serviceAccount = std::string(segments[3]);
  }
  return id;
}

Result<std::string> parseSpiffeIdFromCert(X509* cert) {
  if (cert == nullptr) return fail("no certificate");
  int crit = 0;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
  if (!names) {
    ERR_clear_error();
    if (crit == -2) return fail("certificate has several subjectAltName extensions");
    return fail("certificate has no subjectAltName with a SPIFFE ID");
  }
  std::vector<std::string> ids;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                    static_cast<size_t>(ASN1_STRING_length(s)));
    if (uri.starts_with(kSpiffeScheme)) ids.push_back(std::move(uri));
  }
  if (ids.empty()) return fail("certificate has no URI SAN with a SPIFFE ID");
  if (ids.size() > 1) {
    return fail(fmt::format("certificate has {} SPIFFE IDs ({}, {}...): exactly one allowed",
                            ids.size(), quoted(ids[0]), quoted(ids[1])));
  }
  auto id = parseSpiffeId(ids[0]);
  if (!id) return std::unexpected(id.error().wrap("certificate URI SAN"));
  if (id->path.empty()) {
    return fail(
        fmt::format("certificate URI SAN {}: a workload SPIFFE ID needs a path", quoted(ids[0])));
  }
  return id->str();
}

Result<SpiffeId> workloadIdOf(X509* cert) {
  auto uri = parseSpiffeIdFromCert(cert);
  if (!uri) return std::unexpected(uri.error());
  auto id = parseSpiffeId(*uri);
  if (!id) return std::unexpected(id.error());
  if (id->ns.empty() || id->serviceAccount.empty()) {
    return fail(fmt::format("certificate SPIFFE ID {} is not /ns/<ns>/sa/<sa>", *uri));
  }
  return id;
}

}  // namespace tollgate::identity
