#pragma once

// Incremental parser of a TLS ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) from the first bytes
// of a client connection: the server name (RFC 6066 §3), ALPN (RFC 7301) and whether TLS 1.3 is
// offered. Pure function over bytes; the caller passes the whole buffer received so far each time.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "proxy/sniff.h"

namespace tollgate::proxy {

struct ClientHelloInfo {
  // The first host_name entry of server_name, exactly as sent (printable ASCII, checked); empty
  // when the extension is absent or carries no host_name. Normalising is the policy layer's job.
  std::string sni;
  std::vector<std::string> alpn;  // protocol names, in the client's order of preference
  uint16_t legacyVersion = 0;     // ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3)
  bool hasSupportedVersionsTls13 = false;  // supported_versions lists 0x0304
};

struct TlsSniffResult {
  SniffStatus status = SniffStatus::NeedMore;
  ClientHelloInfo info;  // filled when status == Done
  std::string error;     // why, when status is Invalid or NotThisProtocol
};

// Default cap on the bytes buffered while waiting for a ClientHello (records + headers).
inline constexpr size_t kMaxClientHelloBytes = 16384;

// Parses the ClientHello at the start of `bytesSoFar`.
// The handshake message may be split across TCP segments (NeedMore until it is complete) and
// across several consecutive handshake records (reassembled). Bytes after the ClientHello (the
// rest of its record, later records such as early data) are ignored.
// @param bytesSoFar every byte the client has sent so far, from the first one
// @param maxBytes   cap on the raw bytes (record headers included) the ClientHello may occupy;
//                   beyond it the result is Invalid ("too large"), so a client cannot make the
//                   proxy buffer without bound
// @return NotThisProtocol unless the bytes start with a handshake record (0x16 0x03); Invalid for
//         any malformed length, a non-ClientHello first message, other record types interleaved,
//         duplicate extensions, a non-ASCII host_name; Done with the parsed fields otherwise.
TlsSniffResult sniffClientHello(std::span<const uint8_t> bytesSoFar,
                                size_t maxBytes = kMaxClientHelloBytes);

}  // namespace tollgate::proxy
