#pragma once

// The agent's side of the proxy's certificate-source seam: SVIDs from the SvidManager, as
// the PEM bundle the tunnel client builds its TLS contexts from.

#include "identity/svid_manager.h"
#include "proxy/tunnel_client.h"

namespace tollgate::agent {

// A proxy::SvidSource over `svids` (which must outlive it). Each call returns the current SVID
// of ns/sa, issuing it on first use; after a rotation the next call returns the new one.
proxy::SvidSource makeSvidSource(identity::SvidManager& svids);

proxy::TunnelIdentity toTunnelIdentity(const identity::Svid& svid);

}  // namespace tollgate::agent
