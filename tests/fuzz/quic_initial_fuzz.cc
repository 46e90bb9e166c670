// libFuzzer target for the QUIC Initial parser: no crash or out-of-bounds read on any datagram,
// the per-datagram and two-datagram paths agree on what is QUIC, and a read SNI is printable.
// The first input byte also picks a split point, so the sniffer's cross-datagram state is used.
// An input starting with 0xff is instead taken as the plaintext frames of an Initial, which this
// target seals itself: random bytes never pass AEAD, so this is how the frame walker and CRYPTO
// reassembly get fuzzed.
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "proxy/quic_initial.h"

using namespace tollgate::proxy;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

using Bytes = std::vector<uint8_t>;

// Sender side of RFC 9001 §5 (as in tests/unit/proxy/quic_initial_test.cc): a client Initial
// with a 4-byte packet number carrying `frames`, padded so the header protection sample exists.
Bytes sealInitial(std::span<const uint8_t> frames) {
  static const Bytes dcid = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
  static const QuicInitialKeys keys = deriveQuicInitialKeys(dcid).value();
  Bytes plain(frames.begin(), frames.end());
  if (plain.size() < 32) plain.resize(32, 0x00);
  const size_t length = 4 + plain.size() + 16;
  Bytes packet{0xc3, 0x00, 0x00, 0x00, 0x01, static_cast<uint8_t>(dcid.size())};
  packet.insert(packet.end(), dcid.begin(), dcid.end());
  packet.insert(packet.end(), {0x00, 0x00, static_cast<uint8_t>(0x40 | (length >> 8)),
                               static_cast<uint8_t>(length), 0, 0, 0, 0});
  const size_t pnOffset = packet.size() - 4;
  std::array<uint8_t, 12> nonce = keys.iv;
  Bytes sealed(plain.size() + 16);
  using Ctx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
  Ctx c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  EVP_EncryptInit_ex(c.get(), EVP_aes_128_gcm(), nullptr, keys.key.data(), nonce.data());
  EVP_EncryptUpdate(c.get(), nullptr, &len, packet.data(), static_cast<int>(packet.size()));
  EVP_EncryptUpdate(c.get(), sealed.data(), &len, plain.data(), static_cast<int>(plain.size()));
  EVP_EncryptFinal_ex(c.get(), sealed.data() + len, &len);
  EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, 16, sealed.data() + plain.size());
  packet.insert(packet.end(), sealed.begin(), sealed.end());
  std::array<uint8_t, 16> mask{};
  Ctx e(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  EVP_EncryptInit_ex(e.get(), EVP_aes_128_ecb(), nullptr, keys.hp.data(), nullptr);
  EVP_CIPHER_CTX_set_padding(e.get(), 0);
  EVP_EncryptUpdate(e.get(), mask.data(), &len, packet.data() + pnOffset + 4, 16);
  packet[0] ^= mask[0] & 0x0f;
  for (int i = 0; i < 4; ++i) packet[pnOffset + i] ^= mask[1 + i];
  return packet;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  if (size > 0 && size < 8192 && data[0] == 0xff) {
    const auto info = parseQuicInitial(sealInitial(in.subspan(1)));
    check(info.isQuic && info.version == kQuicVersion1);
    check(info.status != SniffStatus::NotThisProtocol);
    for (char c : info.sni) check(c >= 0x21 && c <= 0x7e);
    return 0;
  }
  const auto whole = parseQuicInitial(in);
  if (whole.status == SniffStatus::Done) {
    check(whole.isQuic);
    for (char c : whole.sni) check(c >= 0x21 && c <= 0x7e);
  }
  if (whole.status == SniffStatus::NotThisProtocol) check(whole.sni.empty());

  const size_t cut = size > 0 ? data[0] * size / 256 : 0;
  QuicInitialSniffer sniffer;
  const auto a = sniffer.add(in.first(cut));
  const auto b = sniffer.add(in.subspan(cut));
  if (a.status == SniffStatus::Done || a.status == SniffStatus::Invalid) {
    check(b.status == a.status && b.sni == a.sni);  // final answers are sticky
  }

  // The same bytes as a bare handshake message (the CRYPTO stream's content).
  const auto hs = sniffClientHelloHandshake(in);
  if (hs.status == SniffStatus::Done) {
    for (char c : hs.info.sni) check(c >= 0x21 && c <= 0x7e);
  }
  return 0;
}
