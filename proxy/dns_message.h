#pragma once

// DNS wire format (RFC 1035 §4, EDNS0 RFC 6891): a total, bounded parser and the few builders the
// DNS proxy needs (queries, error responses derived from a query, answer filtering) plus TCP
// framing (RFC 1035 §4.2.2). Pure functions over bytes, no I/O: every input a pod can send yields
// a message or an error, never an out-of-bounds read. Limits are in docs/dns.md.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "policy/ip.h"

namespace tollgate::proxy {

inline constexpr size_t kDnsMaxMessageBytes = 65535;  // the TCP length prefix is 16 bits
inline constexpr size_t kDnsHeaderBytes = 12;
inline constexpr size_t kDnsMaxNameBytes = 255;  // wire form, length octets and root included
inline constexpr size_t kDnsMaxLabelBytes = 63;
inline constexpr int kDnsMaxPointerJumps = 128;

namespace dnstype {
inline constexpr uint16_t kA = 1;
inline constexpr uint16_t kNs = 2;
inline constexpr uint16_t kCname = 5;
inline constexpr uint16_t kSoa = 6;
inline constexpr uint16_t kPtr = 12;
inline constexpr uint16_t kMx = 15;
inline constexpr uint16_t kTxt = 16;
inline constexpr uint16_t kAaaa = 28;
inline constexpr uint16_t kOpt = 41;
inline constexpr uint16_t kAny = 255;
}  // namespace dnstype

inline constexpr uint16_t kDnsClassIn = 1;

enum class DnsRcode : uint8_t {
  NoError = 0,
  FormErr = 1,
  ServFail = 2,
  NxDomain = 3,
  NotImp = 4,
  Refused = 5,
};

struct DnsHeader {
  uint16_t id = 0;
  uint16_t flags = 0;  // QR | Opcode(4) | AA | TC | RD | RA | Z(3) | RCODE(4)

  static constexpr uint16_t kQr = 0x8000;
  static constexpr uint16_t kAa = 0x0400;
  static constexpr uint16_t kTc = 0x0200;
  static constexpr uint16_t kRd = 0x0100;
  static constexpr uint16_t kRa = 0x0080;

  bool qr() const { return flags & kQr; }
  uint8_t opcode() const { return (flags >> 11) & 0x0f; }
  bool aa() const { return flags & kAa; }
  bool tc() const { return flags & kTc; }
  bool rd() const { return flags & kRd; }
  bool ra() const { return flags & kRa; }
  uint8_t rcode() const { return flags & 0x0f; }  // the low 4 bits; EDNS extends it in OPT
  void setRcode(DnsRcode r) { flags = (flags & ~0x000f) | static_cast<uint16_t>(r); }
};

struct DnsQuestion {
  std::string name;          // lowercased, no trailing dot ("" is the root): for matching
  std::string originalName;  // case as sent, no trailing dot: for rebuilding (0x20 bits survive)
  uint16_t qtype = 0;
  uint16_t qclass = kDnsClassIn;
};

struct DnsRecord {
  std::string name;  // lowercased, no trailing dot
  std::string originalName;
  uint16_t type = 0;
  uint16_t rrClass = kDnsClassIn;  // for OPT: the requestor's UDP payload size
  uint32_t ttl = 0;                // for OPT: extended RCODE, version and flags
  // RDATA with any compressed names expanded (NS, CNAME, PTR, MX, SOA may be compressed,
  // RFC 3597 §4), so a record stands on its own and can be written into another message.
  // Unknown types are kept byte for byte.
  std::vector<uint8_t> rdata;
  std::string target;  // CNAME/NS/PTR: the name in RDATA, lowercased, no trailing dot

  // A: 4 bytes, AAAA: 16 bytes of RDATA; nullopt for other types or a wrong RDATA length.
  std::optional<policy::IpAddress> address() const;
  // TXT: the character-strings; nullopt for other types or malformed RDATA.
  std::optional<std::vector<std::string>> txt() const;
  // SOA: the MINIMUM field (negative-caching TTL, RFC 2308 §4); nullopt for other types.
  std::optional<uint32_t> soaMinimum() const;
};

struct DnsMessage {
  DnsHeader header;
  std::vector<DnsQuestion> questions;
  std::vector<DnsRecord> answers;
  std::vector<DnsRecord> authority;
  std::vector<DnsRecord> additional;  // includes the OPT pseudo-record when present

  const DnsRecord* opt() const;                 // the OPT record in additional, if any
  std::optional<uint16_t> ednsUdpSize() const;  // OPT CLASS, when there is an OPT record
};

// Parses a whole message. Errors: shorter than a header, over 65535 bytes, a count that claims
// more entries than the bytes hold, a truncated entry, a bad name (label > 63, name > 255, a
// compression pointer that does not point strictly backwards, > 128 pointer jumps, reserved
// label types 0x40/0x80), malformed RDATA of a known type, or bytes left after the last record.
Result<DnsMessage> parseDnsMessage(std::span<const uint8_t> wire);

// Reads only the header (12 bytes); fails on shorter input.
Result<DnsHeader> parseDnsHeader(std::span<const uint8_t> wire);

// Writes `msg` with name compression; counts come from the vectors. Fails when a name is
// invalid or the result would exceed 65535 bytes.
Result<std::vector<uint8_t>> serializeDnsMessage(const DnsMessage& msg);

struct DnsQueryOptions {
  bool recursionDesired = true;
  std::optional<uint16_t> ednsUdpSize;  // adds an OPT record advertising this size
};

// A one-question query. `name` may end with a dot; fails on an empty label, a label > 63 bytes
// or a name > 255 bytes on the wire.
Result<std::vector<uint8_t>> buildDnsQuery(uint16_t id, std::string_view name, uint16_t qtype,
                                           const DnsQueryOptions& options = {});

// A response to `query` carrying no records: same id, opcode, RD and question, QR and RA set,
// RCODE `rcode`. Fails when `query` does not parse, is a response, or has no question.
Result<std::vector<uint8_t>> buildDnsErrorResponse(std::span<const uint8_t> query, DnsRcode rcode);
inline Result<std::vector<uint8_t>> buildNxDomain(std::span<const uint8_t> query) {
  return buildDnsErrorResponse(query, DnsRcode::NxDomain);
}
inline Result<std::vector<uint8_t>> buildServFail(std::span<const uint8_t> query) {
  return buildDnsErrorResponse(query, DnsRcode::ServFail);
}
inline Result<std::vector<uint8_t>> buildRefused(std::span<const uint8_t> query) {
  return buildDnsErrorResponse(query, DnsRcode::Refused);
}
// An empty NOERROR response to `query` with TC set: the client retries over TCP (RFC 7766).
// For an upstream answer too large for the client's UDP buffer.
Result<std::vector<uint8_t>> buildTruncatedResponse(std::span<const uint8_t> query);

// Whether the header's TC bit is set; false for input shorter than a header.
bool isTruncated(std::span<const uint8_t> wire);

// The largest UDP response the sender of `query` accepts: its EDNS0 UDP size (floored at 512,
// RFC 6891 §6.2.3), else 512.
size_t maxUdpResponseBytes(const DnsMessage& query);

struct DnsFilterResult {
  std::vector<uint8_t> wire;  // the rebuilt response
  size_t removed = 0;         // A/AAAA records dropped
};

// Rebuilds `response` without the A/AAAA records (answer and additional sections) whose address
// fails `keep` — e.g. 169.254.169.254 or loopback answers a pod must not be steered to. CNAME
// and all other records stay, names keep their original case, counts are recomputed.
Result<DnsFilterResult> filterDnsAnswers(std::span<const uint8_t> response,
                                         const std::function<bool(const policy::IpAddress&)>& keep);

// ---- DNS over TCP framing (RFC 1035 §4.2.2: a 2-byte big-endian length, then the message) ----

// The framed message; fails when `message` is empty or over 65535 bytes.
Result<std::vector<uint8_t>> frameDnsTcp(std::span<const uint8_t> message);

struct DnsTcpFrame {
  std::span<const uint8_t> message;  // the first complete message, empty while incomplete
  size_t consumed = 0;               // bytes of the buffer it occupied (prefix included); 0 = more
  bool invalid = false;              // a zero length prefix: the stream is unusable
};

// Splits the first framed message off a TCP byte stream.
DnsTcpFrame nextDnsTcpFrame(std::span<const uint8_t> stream);

}  // namespace tollgate::proxy
