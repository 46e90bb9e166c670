#pragma once

#include <openssl/x509.h>

#include <string>
#include <string_view>

#include "common/error.h"

namespace tollgate::gateway {

// A workload identity spiffe://<trust-domain>/ns/<ns>/sa/<sa> (the Istio layout).
struct SpiffeId {
  std::string trustDomain;
  std::string ns;
  std::string serviceAccount;

  std::string str() const;
  friend bool operator==(const SpiffeId&, const SpiffeId&) = default;
};

// Exactly spiffe://<td>/ns/<ns>/sa/<sa> with non-empty DNS-label-like segments; no query,
// fragment, port, userinfo, percent-encoding or extra path segments.
Result<SpiffeId> parseSpiffeId(std::string_view uri);

// The identity of a verified peer certificate: its single URI SAN, which must be a SPIFFE id.
// A certificate with no URI SAN, several, or a non-SPIFFE one identifies no workload.
Result<SpiffeId> spiffeIdOf(X509* cert);

}  // namespace tollgate::gateway
