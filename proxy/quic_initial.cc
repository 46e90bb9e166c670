#include "proxy/quic_initial.h"

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <algorithm>
#include <memory>
#include <string_view>
#include <utility>

namespace tollgate::proxy {
namespace {

// RFC 9001 §5.2.
constexpr uint8_t kInitialSaltV1[] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                      0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
constexpr size_t kMaxCidV1 = 20;  // RFC 9000 §17.2
constexpr size_t kSampleBytes = 16;
constexpr size_t kTagBytes = 16;

constexpr uint64_t kFramePadding = 0x00;
constexpr uint64_t kFramePing = 0x01;
constexpr uint64_t kFrameAck = 0x02;
constexpr uint64_t kFrameAckEcn = 0x03;
constexpr uint64_t kFrameCrypto = 0x06;
constexpr uint64_t kFrameConnectionClose = 0x1c;

struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using KdfCtx = std::unique_ptr<EVP_KDF_CTX, KdfCtxFree>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// Fetched once: EVP_KDF_fetch looks the algorithm up in the provider tables each time.
EVP_KDF* hkdf() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

Status hkdfRun(int mode, std::span<const uint8_t> key, std::span<const uint8_t> saltOrInfo,
               std::span<uint8_t> out) {
  if (!hkdf()) return fail("openssl: HKDF unavailable");
  KdfCtx ctx(EVP_KDF_CTX_new(hkdf()));
  if (!ctx) return fail("openssl: EVP_KDF_CTX_new failed");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key.data()),
                                        key.size()),
      OSSL_PARAM_construct_octet_string(
          mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY ? OSSL_KDF_PARAM_SALT : OSSL_KDF_PARAM_INFO,
          const_cast<uint8_t*>(saltOrInfo.data()), saltOrInfo.size()),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return fail("openssl: HKDF derive failed");
  }
  return {};
}

// RFC 8446 §7.1 HKDF-Expand-Label with an empty context.
Status expandLabel(std::span<const uint8_t> secret, std::string_view label,
                   std::span<uint8_t> out) {
  std::vector<uint8_t> info;
  const std::string full = "tls13 " + std::string(label);
  info.push_back(static_cast<uint8_t>(out.size() >> 8));
  info.push_back(static_cast<uint8_t>(out.size()));
  info.push_back(static_cast<uint8_t>(full.size()));
  info.insert(info.end(), full.begin(), full.end());
  info.push_back(0);
  return hkdfRun(EVP_KDF_HKDF_MODE_EXPAND_ONLY, secret, info, out);
}

// AES-128-ECB of one block: the header protection mask (RFC 9001 §5.4.3).
Result<std::array<uint8_t, 16>> aesEcbBlock(std::span<const uint8_t, 16> key,
                                            std::span<const uint8_t> sample) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  std::array<uint8_t, 16> out{};
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_ecb(), nullptr, key.data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &len, sample.data(), kSampleBytes) != 1 ||
      len != 16) {
    return fail("openssl: AES-ECB header protection failed");
  }
  return out;
}

Result<std::vector<uint8_t>> aesGcmOpen(const QuicInitialKeys& keys, uint64_t pn,
                                        std::span<const uint8_t> aad,
                                        std::span<const uint8_t> sealed) {
  if (sealed.size() < kTagBytes) return fail("payload shorter than the AEAD tag");
  std::array<uint8_t, 12> nonce = keys.iv;
  for (size_t i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(pn >> (8 * i));
  const auto ciphertext = sealed.first(sealed.size() - kTagBytes);
  const auto tag = sealed.last(kTagBytes);
  std::vector<uint8_t> plain(ciphertext.size());
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int finalLen = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_128_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, keys.key.data(), nonce.data()) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ciphertext.data(),
                        static_cast<int>(ciphertext.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                          const_cast<uint8_t*>(tag.data())) != 1) {
    return fail("openssl: AES-GCM setup failed");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &finalLen) != 1) {
    return fail("AEAD authentication failed");
  }
  return plain;
}

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> d, size_t pos = 0) : d_(d), pos_(pos) {}
  size_t pos() const { return pos_; }
  size_t left() const { return d_.size() - pos_; }
  bool u8(uint8_t& v) {
    if (left() < 1) return false;
    v = d_[pos_++];
    return true;
  }
  bool u32(uint32_t& v) {
    if (left() < 4) return false;
    v = (uint32_t{d_[pos_]} << 24) | (uint32_t{d_[pos_ + 1]} << 16) |
        (uint32_t{d_[pos_ + 2]} << 8) | d_[pos_ + 3];
    pos_ += 4;
    return true;
  }
  bool bytes(uint64_t n, std::span<const uint8_t>& out) {
    if (left() < n) return false;
    out = d_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  // RFC 9000 §16 variable-length integer.
  bool varint(uint64_t& v) {
    if (left() < 1) return false;
    const size_t n = size_t{1} << (d_[pos_] >> 6);
    if (left() < n) return false;
    v = d_[pos_] & 0x3f;
    for (size_t i = 1; i < n; ++i) v = (v << 8) | d_[pos_ + i];
    pos_ += n;
    return true;
  }

 private:
  std::span<const uint8_t> d_;
  size_t pos_;
};

}  // namespace

Result<QuicInitialKeys> deriveQuicInitialKeys(std::span<const uint8_t> dcid, bool server) {
  std::array<uint8_t, 32> initialSecret{};
  std::array<uint8_t, 32> secret{};
  QuicInitialKeys keys;
  Status s = hkdfRun(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, dcid, kInitialSaltV1, initialSecret);
  if (s) s = expandLabel(initialSecret, server ? "server in" : "client in", secret);
  if (s) s = expandLabel(secret, "quic key", keys.key);
  if (s) s = expandLabel(secret, "quic iv", keys.iv);
  if (s) s = expandLabel(secret, "quic hp", keys.hp);
  if (!s) return std::unexpected(s.error());
  return keys;
}

TlsSniffResult sniffClientHelloHandshake(std::span<const uint8_t> handshake) {
  constexpr size_t kRecordPayload = size_t{1} << 14;
  std::vector<uint8_t> records;
  records.reserve(handshake.size() + 5 * (handshake.size() / kRecordPayload + 1));
  for (size_t off = 0; off < handshake.size(); off += kRecordPayload) {
    const size_t n = std::min(kRecordPayload, handshake.size() - off);
    records.insert(records.end(),
                   {0x16, 0x03, 0x01, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    records.insert(records.end(), handshake.begin() + off, handshake.begin() + off + n);
  }
  // The cap applies to the handshake bytes; the synthetic headers must not count against it.
  return sniffClientHello(records, kMaxClientHelloBytes + records.size() - handshake.size());
}

size_t QuicInitialSniffer::contiguous() const {
  const auto it = std::find(have_.begin(), have_.end(), false);
  return static_cast<size_t>(it - have_.begin());
}

Status QuicInitialSniffer::addCrypto(uint64_t offset, std::span<const uint8_t> data) {
  if (offset > kMaxQuicCryptoBytes || data.size() > kMaxQuicCryptoBytes - offset) {
    return fail(fmt::format("CRYPTO data beyond {} bytes", kMaxQuicCryptoBytes));
  }
  std::copy(data.begin(), data.end(), crypto_.begin() + offset);
  std::fill(have_.begin() + offset, have_.begin() + offset + data.size(), true);
  return {};
}

// RFC 9000 §12.4: only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE may appear in Initials.
Status QuicInitialSniffer::addPacketFrames(std::span<const uint8_t> plaintext) {
  if (plaintext.empty()) return fail("Initial packet without frames");
  Reader r(plaintext);
  while (r.left() > 0) {
    uint64_t type = 0;
    if (!r.varint(type)) return fail("truncated frame type");
    switch (type) {
      case kFramePadding:
      case kFramePing:
        break;
      case kFrameAck:
      case kFrameAckEcn: {
        uint64_t largest = 0, delay = 0, count = 0, first = 0, v = 0;
        if (!r.varint(largest) || !r.varint(delay) || !r.varint(count) || !r.varint(first)) {
          return fail("truncated ACK frame");
        }
        // Each range takes at least two bytes, which bounds the loop by the packet size.
        if (count > r.left() / 2) return fail("ACK range count exceeds the packet");
        for (uint64_t i = 0; i < 2 * count; ++i) {
          if (!r.varint(v)) return fail("truncated ACK range");
        }
        if (type == kFrameAckEcn) {
          for (int i = 0; i < 3; ++i) {
            if (!r.varint(v)) return fail("truncated ACK ECN counts");
          }
        }
        break;
      }
      case kFrameCrypto: {
        uint64_t offset = 0, length = 0;
        std::span<const uint8_t> data;
        if (!r.varint(offset) || !r.varint(length) || !r.bytes(length, data)) {
          return fail("truncated CRYPTO frame");
        }
        if (auto s = addCrypto(offset, data); !s) return s;
        break;
      }
      case kFrameConnectionClose: {
        uint64_t code = 0, frameType = 0, reasonLen = 0;
        std::span<const uint8_t> reason;
        if (!r.varint(code) || !r.varint(frameType) || !r.varint(reasonLen) ||
            !r.bytes(reasonLen, reason)) {
          return fail("truncated CONNECTION_CLOSE frame");
        }
        break;
      }
      default:
        return fail(fmt::format("frame type 0x{:x} not allowed in an Initial packet", type));
    }
  }
  return {};
}

QuicInitialInfo QuicInitialSniffer::add(std::span<const uint8_t> datagram) {
  if (last_.status == SniffStatus::Done || last_.status == SniffStatus::Invalid) return last_;
  QuicInitialInfo info = last_;
  auto invalid = [&](std::string why) {
    info.status = SniffStatus::Invalid;
    info.error = std::move(why);
    last_ = info;
    return info;
  };
  bool sawInitial = false;
  Reader r(datagram);
  // A datagram may carry several coalesced long-header packets (RFC 9000 §12.2).
  while (r.left() > 0) {
    const size_t packetStart = r.pos();
    const bool first = packetStart == 0;
    uint8_t b0 = 0;
    uint32_t version = 0;
    uint8_t dcidLen = 0, scidLen = 0;
    std::span<const uint8_t> dcid, scid;
    r.u8(b0);
    if ((b0 & 0x80) == 0) {
      if (first) {
        info = QuicInitialInfo{};
        info.error = "not a QUIC long-header packet";
        return info;  // not sticky: the next datagram may still be an Initial
      }
      break;  // a short-header packet ends the coalesced run
    }
    if (!r.u32(version) || !r.u8(dcidLen) || !r.bytes(dcidLen, dcid) || !r.u8(scidLen) ||
        !r.bytes(scidLen, scid)) {
      if (first) {
        info = QuicInitialInfo{};
        info.error = "truncated QUIC long header";
        return info;
      }
      return invalid("truncated coalesced packet");
    }
    if (first) {
      const bool sameAttempt = started_ && info.dcid.size() == dcid.size() &&
                               std::equal(dcid.begin(), dcid.end(), info.dcid.begin());
      if (!sameAttempt) {
        *this = QuicInitialSniffer{};
        info = QuicInitialInfo{};
      }
      info.isQuic = true;
      info.version = version;
      info.dcid.assign(dcid.begin(), dcid.end());
      info.scid.assign(scid.begin(), scid.end());
      if (version == 0) return invalid("version negotiation packet");
      if (version != kQuicVersion1) {
        return invalid(fmt::format("unsupported QUIC version 0x{:08x}", version));
      }
      if (dcid.size() > kMaxCidV1 || scid.size() > kMaxCidV1) {
        return invalid("connection ID longer than 20 bytes");
      }
    } else if (version != kQuicVersion1 || dcid.size() != info.dcid.size() ||
               !std::equal(dcid.begin(), dcid.end(), info.dcid.begin())) {
      break;  // RFC 9000 §12.2: coalesced packets for another connection are not ours
    }
    const uint8_t type = (b0 >> 4) & 0x03;
    if ((b0 & 0x40) == 0) return invalid("fixed bit is zero");
    if (type != 0) {
      if (first) return invalid(fmt::format("long-header packet type {} is not Initial", type));
      break;  // Handshake/0-RTT after the Initial: nothing for us
    }
    uint64_t tokenLen = 0, length = 0;
    std::span<const uint8_t> token;
    if (!r.varint(tokenLen) || !r.bytes(tokenLen, token) || !r.varint(length)) {
      return invalid("truncated Initial header");
    }
    const size_t pnOffset = r.pos();
    if (length > r.left()) return invalid("Initial length exceeds the datagram");
    if (length < 4 + kSampleBytes) return invalid("Initial too short to sample");
    if (!started_) {
      auto keys = deriveQuicInitialKeys(dcid);
      if (!keys) return invalid(keys.error().message);
      keys_ = *keys;
      started_ = true;
    }
    // RFC 9001 §5.4.2: the sample starts 4 bytes after the packet number's first byte.
    const auto mask = aesEcbBlock(keys_.hp, datagram.subspan(pnOffset + 4, kSampleBytes));
    if (!mask) return invalid(mask.error().message);
    std::vector<uint8_t> header(datagram.begin() + packetStart, datagram.begin() + pnOffset);
    header[0] ^= (*mask)[0] & 0x0f;
    if ((header[0] & 0x0c) != 0) return invalid("reserved bits set after header protection");
    const size_t pnLen = (header[0] & 0x03) + 1;
    uint64_t pn = 0;
    for (size_t i = 0; i < pnLen; ++i) {
      const uint8_t byte = datagram[pnOffset + i] ^ (*mask)[1 + i];
      header.push_back(byte);
      pn = (pn << 8) | byte;
    }
    // The first Initial has no earlier packet number to expand against (RFC 9000 §A.3).
    const auto sealed = datagram.subspan(pnOffset + pnLen, length - pnLen);
    auto plain = aesGcmOpen(keys_, pn, header, sealed);
    if (!plain) return invalid(plain.error().message);
    if (auto s = addPacketFrames(*plain); !s) return invalid(s.error().message);
    sawInitial = true;
    std::span<const uint8_t> skip;
    r.bytes(length, skip);
  }
  if (!sawInitial) return invalid("no Initial packet");

  const auto sniff = sniffClientHelloHandshake(std::span(crypto_).first(contiguous()));
  info.status = sniff.status;
  info.error = sniff.error;
  if (sniff.status == SniffStatus::Done) {
    info.sni = sniff.info.sni;
    info.alpn = sniff.info.alpn;
  } else if (sniff.status == SniffStatus::NeedMore) {
    info.error = "ClientHello continues in a later Initial packet";
  } else {
    info.status = SniffStatus::Invalid;  // CRYPTO data that is not a ClientHello
    info.error = "CRYPTO stream: " + sniff.error;
  }
  last_ = info;
  return info;
}

QuicInitialInfo parseQuicInitial(std::span<const uint8_t> datagram) {
  return QuicInitialSniffer().add(datagram);
}

}  // namespace tollgate::proxy
