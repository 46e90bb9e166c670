#pragma once

// The sender side of RFC 9001 §5, for tests: a real OpenSSL ClientHello in a CRYPTO frame, sealed
// into a client Initial with header protection. Shared by the QUIC parser's unit tests and fuzz
// target and the netns tests that send Initials to the telemetry socket.

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "proxy/quic_initial.h"

namespace tollgate::proxy::quic_testing {

using Bytes = std::vector<uint8_t>;

// A ClientHello handshake message (record header stripped), as OpenSSL would send it.
inline Bytes clientHelloMessage(const char* sni, const std::vector<std::string>& alpn = {}) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);
  SSL_set_connect_state(ssl.get());
  SSL_set_tlsext_host_name(ssl.get(), sni);
  Bytes protos;
  for (const auto& p : alpn) {
    protos.push_back(static_cast<uint8_t>(p.size()));
    protos.insert(protos.end(), p.begin(), p.end());
  }
  SSL_set_alpn_protos(ssl.get(), protos.data(), static_cast<unsigned>(protos.size()));
  SSL_do_handshake(ssl.get());
  Bytes records(static_cast<size_t>(BIO_ctrl_pending(wbio)));
  const int n = BIO_read(wbio, records.data(), static_cast<int>(records.size()));
  records.resize(n > 0 ? static_cast<size_t>(n) : 0);
  if (records.size() < 5 || records[0] != 0x16) return {};
  const size_t len = (size_t{records[3]} << 8) | records[4];
  return Bytes(records.begin() + 5, records.begin() + 5 + static_cast<long>(len));
}

inline Bytes varint(uint64_t v) {
  if (v < 64) return {static_cast<uint8_t>(v)};
  return {static_cast<uint8_t>(0x40 | (v >> 8)), static_cast<uint8_t>(v)};  // v < 16384
}

inline Bytes cryptoFrame(uint64_t offset, std::span<const uint8_t> data) {
  Bytes f{0x06};
  for (const auto& part : {varint(offset), varint(data.size())})
    f.insert(f.end(), part.begin(), part.end());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

// AEAD-seals `frames` (padded so the sample exists) into a client Initial for `dcid` with a
// 4-byte packet number, then applies header protection. `keys`: deriveQuicInitialKeys(dcid),
// which a caller sealing many (the fuzz target) derives once.
inline Bytes sealInitial(const QuicInitialKeys& keys, std::span<const uint8_t> dcid,
                         std::span<const uint8_t> frames, uint32_t pn, size_t padTo) {
  Bytes plain(frames.begin(), frames.end());
  if (plain.size() < padTo) plain.resize(padTo, 0x00);  // PADDING frames
  Bytes header{0xc3, 0x00, 0x00, 0x00, 0x01, static_cast<uint8_t>(dcid.size())};
  header.insert(header.end(), dcid.begin(), dcid.end());
  header.push_back(0);  // SCID length
  header.push_back(0);  // token length
  const auto length = varint(4 + plain.size() + 16);
  header.insert(header.end(), length.begin(), length.end());
  const size_t pnOffset = header.size();
  for (int s = 24; s >= 0; s -= 8) header.push_back(static_cast<uint8_t>(pn >> s));

  std::array<uint8_t, 12> nonce = keys.iv;
  for (int i = 0; i < 4; ++i) nonce[11 - i] ^= static_cast<uint8_t>(pn >> (8 * i));
  Bytes sealed(plain.size() + 16);
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> c(EVP_CIPHER_CTX_new(),
                                                                    EVP_CIPHER_CTX_free);
  int len = 0;
  EVP_EncryptInit_ex(c.get(), EVP_aes_128_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr);
  EVP_EncryptInit_ex(c.get(), nullptr, nullptr, keys.key.data(), nonce.data());
  EVP_EncryptUpdate(c.get(), nullptr, &len, header.data(), static_cast<int>(header.size()));
  EVP_EncryptUpdate(c.get(), sealed.data(), &len, plain.data(), static_cast<int>(plain.size()));
  EVP_EncryptFinal_ex(c.get(), sealed.data() + len, &len);
  EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, 16, sealed.data() + plain.size());

  Bytes packet = header;
  packet.insert(packet.end(), sealed.begin(), sealed.end());
  std::array<uint8_t, 16> mask{};
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> e(EVP_CIPHER_CTX_new(),
                                                                    EVP_CIPHER_CTX_free);
  EVP_EncryptInit_ex(e.get(), EVP_aes_128_ecb(), nullptr, keys.hp.data(), nullptr);
  EVP_CIPHER_CTX_set_padding(e.get(), 0);
  EVP_EncryptUpdate(e.get(), mask.data(), &len, packet.data() + pnOffset + 4, 16);
  packet[0] ^= mask[0] & 0x0f;
  for (int i = 0; i < 4; ++i) packet[pnOffset + i] ^= mask[1 + i];
  return packet;
}

inline Bytes sealInitial(const Bytes& dcid, const Bytes& frames, uint32_t pn, size_t padTo = 0) {
  return sealInitial(deriveQuicInitialKeys(dcid).value(), dcid, frames, pn, padTo);
}

// A client's first Initial naming `sni`, padded as clients pad it.
inline Bytes clientInitial(const char* sni) {
  return sealInitial({0, 1, 2, 3, 4, 5, 6, 7}, cryptoFrame(0, clientHelloMessage(sni)), 0, 1200);
}

}  // namespace tollgate::proxy::quic_testing
