#pragma once

// Reads the TLS ClientHello out of a client's QUIC v1 Initial packets (RFC 9000 §17.2.2), so a
// UDP/443 flow that tollgate does not relay can still be logged with the name it was for.
// Initial packets are encrypted with keys anyone can derive from the Destination Connection ID
// (RFC 9001 §5.2), so this is parsing, not interception. Pure functions over bytes plus OpenSSL
// primitives; no I/O.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "proxy/sniff.h"
#include "proxy/tls_client_hello.h"

namespace tollgate::proxy {

inline constexpr uint32_t kQuicVersion1 = 0x00000001;
// CRYPTO stream bytes we buffer looking for the ClientHello (post-quantum key shares make it
// span two Initial packets; 16 KiB is far beyond any real one).
inline constexpr size_t kMaxQuicCryptoBytes = 16384;

struct QuicInitialInfo {
  // A QUIC long-header packet (RFC 8999 invariants: form bit set, version, DCID and SCID with
  // lengths <= 255). Version negotiation (version 0) and unknown versions are QUIC too.
  bool isQuic = false;
  uint32_t version = 0;
  std::vector<uint8_t> dcid;
  std::vector<uint8_t> scid;
  // Done: the ClientHello was read (sni/alpn). NeedMore: well-formed Initial(s) so far but the
  // ClientHello continues in a later packet. Invalid: malformed, undecryptable, an unsupported
  // version, or not an Initial. NotThisProtocol: not a long-header packet.
  SniffStatus status = SniffStatus::NotThisProtocol;
  std::string sni;
  std::vector<std::string> alpn;
  std::string error;  // why, when status is not Done
};

// Initial packet protection keys (RFC 9001 §5.2): AEAD_AES_128_GCM key and IV, AES-128 hp key.
struct QuicInitialKeys {
  std::array<uint8_t, 16> key{};
  std::array<uint8_t, 12> iv{};
  std::array<uint8_t, 16> hp{};
};

// Keys for version 1 Initial packets sent to `dcid` (the client's; `server` for the other
// direction).
Result<QuicInitialKeys> deriveQuicInitialKeys(std::span<const uint8_t> dcid, bool server = false);

// Reassembles the Initial CRYPTO stream across datagrams of one connection attempt (keyed by the
// first DCID seen; a datagram with another DCID starts over).
class QuicInitialSniffer {
 public:
  // Processes every coalesced Initial packet of `datagram` and reports what is known so far.
  // Once Done or Invalid, later datagrams return the same answer.
  QuicInitialInfo add(std::span<const uint8_t> datagram);

 private:
  Status addPacketFrames(std::span<const uint8_t> plaintext);
  Status addCrypto(uint64_t offset, std::span<const uint8_t> data);
  size_t contiguous() const;

  QuicInitialInfo last_;
  bool started_ = false;
  QuicInitialKeys keys_;
  std::vector<uint8_t> crypto_ = std::vector<uint8_t>(kMaxQuicCryptoBytes);
  std::vector<bool> have_ = std::vector<bool>(kMaxQuicCryptoBytes);
};

// One datagram on its own: QuicInitialSniffer().add(datagram).
QuicInitialInfo parseQuicInitial(std::span<const uint8_t> datagram);

// sniffClientHello over a bare handshake message (no TLS record layer, as QUIC carries it in
// CRYPTO frames): wraps it in synthetic handshake records. NeedMore while it is incomplete.
TlsSniffResult sniffClientHelloHandshake(std::span<const uint8_t> handshake);

}  // namespace tollgate::proxy
