// libFuzzer target for the TLS ClientHello sniffer: no crash or out-of-bounds read on any input,
// and the incremental contract holds (a prefix that is not NeedMore already has the final answer).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "proxy/sniff.h"
#include "proxy/tls_client_hello.h"

using tollgate::proxy::sniffClientHello;
using tollgate::proxy::SniffStatus;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  const auto full = sniffClientHello(in);
  if (full.status == SniffStatus::Done) {
    for (char c : full.info.sni) check(c >= 0x21 && c <= 0x7e);
    for (const auto& p : full.info.alpn) check(!p.empty());
  }
  for (size_t cut : {size / 2, size > 0 ? size - 1 : 0}) {
    const auto part = sniffClientHello(in.first(cut));
    if (part.status == SniffStatus::NeedMore) continue;
    check(part.status == full.status);
    if (part.status == SniffStatus::Done) {
      check(part.info.sni == full.info.sni);
      check(part.info.alpn == full.info.alpn);
      check(part.info.hasSupportedVersionsTls13 == full.info.hasSupportedVersionsTls13);
    }
  }
  // A small cap, taken from the input, exercises the "too large" paths.
  if (size > 0) {
    const auto capped = sniffClientHello(in, size_t{data[size - 1]} * 4);
    check(capped.status != SniffStatus::Done || full.status == SniffStatus::Done);
  }
  return 0;
}
