// libFuzzer target for the HTTP/1 request sniffer and HttpRequestStream: no crash on any input,
// the incremental contract holds, and feeding a stream in pieces reports exactly what feeding it
// at once does (the proxy never sees requests differently depending on TCP segmentation).
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "proxy/http1_sniffer.h"
#include "proxy/sniff.h"

using tollgate::proxy::HttpRequestStream;
using tollgate::proxy::sniffHttpRequest;
using tollgate::proxy::SniffStatus;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

struct Outcome {
  SniffStatus status = SniffStatus::NeedMore;
  std::vector<HttpRequestStream::Request> requests;
  uint64_t errorOffset = 0;
};

Outcome feedInPieces(std::span<const uint8_t> in, size_t step, size_t maxHeaderBytes) {
  HttpRequestStream stream(maxHeaderBytes);
  Outcome out;
  for (size_t off = 0; off < in.size(); off += step) {
    auto r = stream.feed(in.subspan(off, std::min(step, in.size() - off)));
    for (auto& req : r.requests) out.requests.push_back(std::move(req));
    out.status = r.status;
    out.errorOffset = r.errorOffset;
    if (r.status != SniffStatus::NeedMore) break;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  const auto full = sniffHttpRequest(in);
  if (full.status == SniffStatus::Done) check(full.head.headerBytes <= size);
  const auto part = sniffHttpRequest(in.first(size / 2));
  if (part.status != SniffStatus::NeedMore) {
    check(part.status == full.status);
    if (part.status == SniffStatus::Done) {
      check(part.head.host == full.head.host);
      check(part.head.headerBytes == full.head.headerBytes);
    }
  }

  const size_t maxHeaderBytes = size > 0 && data[0] % 2 ? 256 : 16384;
  const Outcome whole = feedInPieces(in, size == 0 ? 1 : size, maxHeaderBytes);
  const Outcome pieces = feedInPieces(in, 1 + (size > 1 ? data[1] % 13 : 0), maxHeaderBytes);
  check(whole.status == pieces.status);
  check(whole.requests.size() == pieces.requests.size());
  for (size_t i = 0; i < whole.requests.size(); ++i) {
    check(whole.requests[i].offset == pieces.requests[i].offset);
    check(whole.requests[i].head.host == pieces.requests[i].head.host);
    check(whole.requests[i].head.target == pieces.requests[i].head.target);
  }
  if (whole.status != SniffStatus::NeedMore) check(whole.errorOffset == pieces.errorOffset);
  if (maxHeaderBytes == 16384 && full.status == SniffStatus::Done) {
    check(!whole.requests.empty() && whole.requests[0].head.host == full.head.host);
  }
  return 0;
}
