// libFuzzer target for the DNS wire-format parser and builders: no crash or out-of-bounds read
// on any input, and whatever parses survives a rebuild: parse(serialize(m)) describes the same
// message as m (names, types, TTLs, expanded RDATA).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "proxy/dns_message.h"

using namespace tollgate::proxy;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool sameRecords(const std::vector<DnsRecord>& a, const std::vector<DnsRecord>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].originalName != b[i].originalName ||
        a[i].type != b[i].type || a[i].rrClass != b[i].rrClass || a[i].ttl != b[i].ttl ||
        a[i].rdata != b[i].rdata || a[i].target != b[i].target) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  (void)isTruncated(in);
  (void)nextDnsTcpFrame(in);
  auto msg = parseDnsMessage(in);
  if (!msg) return 0;
  for (const auto& q : msg->questions) check(q.name.size() <= 4 * kDnsMaxNameBytes);
  auto wire = serializeDnsMessage(*msg);
  // Decompression can make a valid message too large to write back; anything else must work.
  if (wire) {
    auto again = parseDnsMessage(*wire);
    check(again.has_value());
    check(again->header.id == msg->header.id && again->header.flags == msg->header.flags);
    check(again->questions.size() == msg->questions.size());
    for (size_t i = 0; i < msg->questions.size(); ++i) {
      check(again->questions[i].originalName == msg->questions[i].originalName);
      check(again->questions[i].qtype == msg->questions[i].qtype);
    }
    check(sameRecords(again->answers, msg->answers));
    check(sameRecords(again->authority, msg->authority));
    check(sameRecords(again->additional, msg->additional));
  }
  auto filtered = filterDnsAnswers(in, [&](const tollgate::policy::IpAddress& ip) {
    return (ip.bytes[0] ^ (size > 0 ? data[0] : 0)) & 1;
  });
  if (filtered) check(parseDnsMessage(filtered->wire).has_value());
  if (!msg->header.qr() && !msg->questions.empty()) {
    auto nx = buildNxDomain(in);
    if (nx) check(parseDnsMessage(*nx).has_value());
    auto tc = buildTruncatedResponse(in);
    if (tc) check(isTruncated(*tc));
  }
  return 0;
}
