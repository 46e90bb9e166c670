// libFuzzer target for the QUIC Initial parser: no crash or out-of-bounds read on any datagram,
// the per-datagram and two-datagram paths agree on what is QUIC, and a read SNI is printable.
// The first input byte also picks a split point, so the sniffer's cross-datagram state is used.
// An input starting with 0xff is instead taken as the plaintext frames of an Initial, which this
// target seals itself: random bytes never pass AEAD, so this is how the frame walker and CRYPTO
// reassembly get fuzzed.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "proxy/quic_initial.h"
#include "tests/common/quic_initial_sender.h"

using namespace tollgate::proxy;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

using Bytes = std::vector<uint8_t>;

// A client Initial carrying `frames`, padded so the header protection sample exists; the keys
// are derived once, not per input.
Bytes sealInitial(std::span<const uint8_t> frames) {
  static const Bytes dcid = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
  static const QuicInitialKeys keys = deriveQuicInitialKeys(dcid).value();
  return quic_testing::sealInitial(keys, dcid, frames, 0, 32);
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
