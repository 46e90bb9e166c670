#include "proxy/tls_client_hello.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace tollgate::proxy {
namespace {

constexpr uint8_t kContentTypeHandshake = 0x16;
constexpr uint8_t kHandshakeClientHello = 0x01;
constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kHandshakeHeaderBytes = 4;
constexpr size_t kMaxRecordPayload = size_t{1} << 14;  // TLSPlaintext.length limit, RFC 8446 §5.1

constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint16_t kExtSupportedVersions = 43;
constexpr uint8_t kNameTypeHostName = 0;
constexpr uint16_t kVersionTls13 = 0x0304;

// Bounds-checked cursor: every read says whether the bytes were there, so a lying length can only
// make parsing fail, never read past the message.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}

  bool empty() const { return pos_ == data_.size(); }

  bool u8(uint8_t& v) {
    if (data_.size() - pos_ < 1) return false;
    v = data_[pos_++];
    return true;
  }
  bool u16(uint16_t& v) {
    if (data_.size() - pos_ < 2) return false;
    v = static_cast<uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool bytes(size_t n, std::span<const uint8_t>& out) {
    if (data_.size() - pos_ < n) return false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  // opaque<0..2^8-1> and opaque<0..2^16-1>: a length prefix then that many bytes.
  bool vec8(std::span<const uint8_t>& out) {
    uint8_t n = 0;
    return u8(n) && bytes(n, out);
  }
  bool vec16(std::span<const uint8_t>& out) {
    uint16_t n = 0;
    return u16(n) && bytes(n, out);
  }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

std::string asString(std::span<const uint8_t> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// RFC 6066 §3: ServerNameList server_name_list<1..2^16-1>; each entry a name_type and, for
// host_name, HostName opaque<1..2^16-1>. Unknown name types are skipped with the same framing.
std::string parseServerName(std::span<const uint8_t> data, ClientHelloInfo& info) {
  Reader r(data);
  std::span<const uint8_t> list;
  if (!r.vec16(list) || !r.empty()) return "server_name: list length does not match extension";
  if (list.empty()) return "server_name: empty list";
  Reader entries(list);
  bool found = false;
  while (!entries.empty()) {
    uint8_t type = 0;
    std::span<const uint8_t> name;
    if (!entries.u8(type) || !entries.vec16(name)) return "server_name: truncated entry";
    if (name.empty()) return "server_name: empty name";
    if (type != kNameTypeHostName || found) continue;
    // Printable ASCII only (RFC 6066: "HostName contains the fully qualified DNS hostname", IDNs
    // as A-labels). No NUL, spaces or controls that could split or disguise the name downstream.
    for (uint8_t c : name) {
      if (c < 0x21 || c > 0x7e) return fmt::format("server_name: byte 0x{:02x} in host_name", c);
    }
    info.sni = asString(name);
    found = true;
  }
  return {};
}

// RFC 7301 §3.1: ProtocolNameList protocol_name_list<2..2^16-1>; ProtocolName opaque<1..2^8-1>.
std::string parseAlpn(std::span<const uint8_t> data, ClientHelloInfo& info) {
  Reader r(data);
  std::span<const uint8_t> list;
  if (!r.vec16(list) || !r.empty()) return "alpn: list length does not match extension";
  if (list.empty()) return "alpn: empty list";
  Reader names(list);
  while (!names.empty()) {
    std::span<const uint8_t> name;
    if (!names.vec8(name)) return "alpn: truncated protocol name";
    if (name.empty()) return "alpn: empty protocol name";
    info.alpn.push_back(asString(name));
  }
  return {};
}

// RFC 8446 §4.2.1, ClientHello form: ProtocolVersion versions<2..254>.
std::string parseSupportedVersions(std::span<const uint8_t> data, ClientHelloInfo& info) {
  Reader r(data);
  std::span<const uint8_t> list;
  if (!r.vec8(list) || !r.empty()) return "supported_versions: length does not match extension";
  if (list.size() < 2 || list.size() % 2 != 0) return "supported_versions: bad list length";
  Reader versions(list);
  uint16_t v = 0;
  while (versions.u16(v)) {
    if (v == kVersionTls13) info.hasSupportedVersionsTls13 = true;
  }
  return {};
}

// The ClientHello body (after the 4-byte handshake header), RFC 8446 §4.1.2 / RFC 5246 §7.4.1.2.
std::string parseClientHelloBody(std::span<const uint8_t> body, ClientHelloInfo& info) {
  Reader r(body);
  std::span<const uint8_t> skipped;
  if (!r.u16(info.legacyVersion)) return "truncated legacy_version";
  if ((info.legacyVersion >> 8) != 0x03) {
    return fmt::format("legacy_version 0x{:04x} is not SSL 3.0/TLS", info.legacyVersion);
  }
  if (!r.bytes(32, skipped)) return "truncated random";
  if (!r.vec8(skipped)) return "truncated legacy_session_id";
  if (skipped.size() > 32) return "legacy_session_id longer than 32 bytes";
  if (!r.vec16(skipped)) return "truncated cipher_suites";
  if (skipped.size() < 2 || skipped.size() % 2 != 0) return "bad cipher_suites length";
  if (!r.vec8(skipped)) return "truncated legacy_compression_methods";
  if (skipped.empty()) return "empty legacy_compression_methods";
  // Extensions are optional before TLS 1.3 (RFC 5246 §7.4.1.2): nothing after compression is fine.
  if (r.empty()) return {};
  std::span<const uint8_t> extensions;
  if (!r.vec16(extensions)) return "extensions length exceeds the message";
  if (!r.empty()) return "bytes after the extensions";

  std::vector<uint16_t> seen;
  Reader ext(extensions);
  while (!ext.empty()) {
    uint16_t type = 0;
    std::span<const uint8_t> data;
    if (!ext.u16(type) || !ext.vec16(data)) return "truncated extension";
    // RFC 8446 §4.2: at most one extension of each type. A second server_name would otherwise
    // let the proxy and the upstream read different names.
    if (std::find(seen.begin(), seen.end(), type) != seen.end()) {
      return fmt::format("duplicate extension {}", type);
    }
    seen.push_back(type);
    std::string err;
    switch (type) {
      case kExtServerName:
        err = parseServerName(data, info);
        break;
      case kExtAlpn:
        err = parseAlpn(data, info);
        break;
      case kExtSupportedVersions:
        err = parseSupportedVersions(data, info);
        break;
      default:
        break;
    }
    if (!err.empty()) return err;
  }
  return {};
}

TlsSniffResult result(SniffStatus status, std::string error) {
  TlsSniffResult r;
  r.status = status;
  r.error = std::move(error);
  return r;
}

}  // namespace

TlsSniffResult sniffClientHello(std::span<const uint8_t> bytesSoFar, size_t maxBytes) {
  if (bytesSoFar.empty()) return result(SniffStatus::NeedMore, {});
  if (bytesSoFar[0] != kContentTypeHandshake) {
    return result(SniffStatus::NotThisProtocol, "not a TLS handshake record");
  }
  if (bytesSoFar.size() >= 2 && bytesSoFar[1] != 0x03) {
    return result(SniffStatus::NotThisProtocol, "record version is not 3.x");
  }

  // Only the first maxBytes bytes may hold the ClientHello; whatever follows is not looked at.
  const auto input = bytesSoFar.first(std::min(bytesSoFar.size(), maxBytes));
  std::vector<uint8_t> message;  // the handshake message, reassembled from record fragments
  size_t messageSize = 0;        // header + body, known once the 4-byte header is in
  size_t off = 0;
  while (input.size() - off >= kRecordHeaderBytes) {
    const uint8_t type = input[off];
    const uint8_t major = input[off + 1];
    const size_t length = (size_t{input[off + 3]} << 8) | input[off + 4];
    // RFC 8446 §5.1: handshake messages are not interleaved with other record types, and
    // zero-length handshake fragments are not allowed.
    if (type != kContentTypeHandshake) {
      return result(SniffStatus::Invalid,
                    fmt::format("record type {} inside the ClientHello", type));
    }
    if (major != 0x03) return result(SniffStatus::Invalid, "record version is not 3.x");
    if (length == 0) return result(SniffStatus::Invalid, "empty handshake record");
    if (length > kMaxRecordPayload) {
      return result(SniffStatus::Invalid, fmt::format("record length {} over 2^14", length));
    }
    const size_t available = std::min(length, input.size() - off - kRecordHeaderBytes);
    auto fragment = input.subspan(off + kRecordHeaderBytes, available);
    if (messageSize != 0) {
      fragment = fragment.first(std::min(fragment.size(), messageSize - message.size()));
    }
    message.insert(message.end(), fragment.begin(), fragment.end());

    if (!message.empty() && message[0] != kHandshakeClientHello) {
      return result(
          SniffStatus::Invalid,
          fmt::format("first handshake message has type {}, not ClientHello", message[0]));
    }
    if (messageSize == 0 && message.size() >= kHandshakeHeaderBytes) {
      const size_t bodySize = (size_t{message[1]} << 16) | (size_t{message[2]} << 8) | message[3];
      messageSize = kHandshakeHeaderBytes + bodySize;
      if (messageSize > maxBytes) {
        return result(SniffStatus::Invalid, fmt::format("ClientHello too large: {} bytes, limit {}",
                                                        messageSize, maxBytes));
      }
      // The first fragment may have carried more than the header: keep only this message.
      if (message.size() > messageSize) message.resize(messageSize);
    }
    if (messageSize != 0 && message.size() == messageSize) {
      TlsSniffResult done;
      const auto body = std::span<const uint8_t>(message).subspan(kHandshakeHeaderBytes);
      if (std::string err = parseClientHelloBody(body, done.info); !err.empty()) {
        return result(SniffStatus::Invalid, "ClientHello: " + err);
      }
      done.status = SniffStatus::Done;
      return done;
    }
    if (available < length) break;  // the rest of this record has not arrived
    off += kRecordHeaderBytes + length;
  }
  if (bytesSoFar.size() >= maxBytes) {
    return result(SniffStatus::Invalid,
                  fmt::format("ClientHello too large: incomplete after {} bytes", maxBytes));
  }
  return result(SniffStatus::NeedMore, {});
}

}  // namespace tollgate::proxy
