#pragma once

// SPIFFE IDs (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md), the names the
// tunnels authenticate: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.

#include <openssl/x509.h>

#include <string>
#include <string_view>

#include "common/error.h"

namespace tollgate::identity {

inline constexpr std::string_view kSpiffeScheme = "spiffe://";

struct SpiffeId {
  std::string trustDomain;  // "cluster.local"
  std::string path;         // "/ns/default/sa/client"; empty for a trust domain's own id
  // Filled when path is exactly /ns/<ns>/sa/<sa> (Kubernetes workloads); empty otherwise.
  std::string ns;
  std::string serviceAccount;

  std::string str() const { return std::string(kSpiffeScheme) + trustDomain + path; }
  // Istio's principal form, used by AuthorizationPolicy: the id without "spiffe://".
  std::string principal() const { return trustDomain + path; }
  friend bool operator==(const SpiffeId&, const SpiffeId&) = default;
};

// Trust domain per the spec: 1-255 characters of [a-z0-9._-].
Status validateTrustDomain(std::string_view trustDomain);

// One path segment: non-empty, [A-Za-z0-9._-], neither "." nor "..".
Status validatePathSegment(std::string_view segment);

// "spiffe://<td>/ns/<ns>/sa/<sa>" after validating every part.
Result<std::string> spiffeId(std::string_view trustDomain, std::string_view ns,
                             std::string_view sa);

// Parses and validates a SPIFFE ID: lowercase scheme, no userinfo/port/query/fragment (their
// characters are outside both alphabets), total length <= 2048.
Result<SpiffeId> parseSpiffeId(std::string_view uri);

// The one URI SAN of `cert` that is a spiffe:// workload id (non-empty path). Errors when there
// is none, when there are several, or when it is malformed.
Result<std::string> parseSpiffeIdFromCert(X509* cert);

// The Kubernetes workload identity of a verified peer certificate: its one SPIFFE ID, which must
// have the path /ns/<ns>/sa/<sa>. What the gateway and the tunnel client authorize.
Result<SpiffeId> workloadIdOf(X509* cert);

}  // namespace tollgate::identity
