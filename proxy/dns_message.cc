#include "proxy/dns_message.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <utility>

namespace tollgate::proxy {
namespace {

// The UDP size advertised in responses we originate (the DNS flag day 2020 value).
constexpr uint16_t kOwnEdnsUdpSize = 1232;
constexpr size_t kMinUdpResponseBytes = 512;

uint16_t be16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}
uint32_t be32(std::span<const uint8_t> b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         uint32_t{b[at + 3]};
}

char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Appends one label in presentation form (RFC 4343 §2.1): '.' and '\' are escaped and bytes
// outside printable ASCII become \DDD, so a label holding a dot can never read like two labels
// ("evil.com" as one label must not match the name evil.com).
void appendLabel(std::string& out, std::span<const uint8_t> label) {
  if (!out.empty()) out.push_back('.');
  for (uint8_t c : label) {
    if (c == '.' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x21 || c > 0x7e) {
      out += fmt::format("\\{:03d}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}

std::string lowered(std::string s) {
  for (char& c : s) c = asciiLower(c);
  return s;
}

struct ParsedName {
  std::string text;           // presentation form, original case, no trailing dot
  std::vector<uint8_t> wire;  // uncompressed wire form, root label included
  size_t end = 0;             // offset just past the name where it was read (not the target)
};

// Reads a possibly compressed name at `pos`. A pointer must point strictly before the start of
// the name (or label run) it continues, which rules out loops by construction; the jump cap is a
// second, independent bound.
Result<ParsedName> readName(std::span<const uint8_t> msg, size_t pos, bool allowPointers) {
  ParsedName out;
  size_t cur = pos;
  size_t limit = pos;  // a pointer must target an offset below this
  int jumps = 0;
  bool jumped = false;
  while (true) {
    if (cur >= msg.size()) return fail("name runs past the end of the message");
    const uint8_t len = msg[cur];
    if ((len & 0xc0) == 0xc0) {
      if (!allowPointers) return fail("compression pointer where none is allowed");
      if (cur + 1 >= msg.size()) return fail("truncated compression pointer");
      const size_t target = (size_t{len & 0x3fu} << 8) | msg[cur + 1];
      if (!jumped) out.end = cur + 2;
      jumped = true;
      if (++jumps > kDnsMaxPointerJumps) return fail("too many compression pointers");
      if (target >= limit) return fail("compression pointer does not point backwards");
      if (target < kDnsHeaderBytes) return fail("compression pointer into the header");
      cur = target;
      limit = target;
      continue;
    }
    if ((len & 0xc0) != 0) return fail(fmt::format("reserved label type 0x{:02x}", len & 0xc0));
    if (len == 0) {
      out.wire.push_back(0);
      if (!jumped) out.end = cur + 1;
      return out;
    }
    if (msg.size() - cur - 1 < len) return fail("label runs past the end of the message");
    if (out.wire.size() + 1 + len + 1 > kDnsMaxNameBytes) return fail("name longer than 255");
    const auto label = msg.subspan(cur + 1, len);
    out.wire.push_back(len);
    out.wire.insert(out.wire.end(), label.begin(), label.end());
    appendLabel(out.text, label);
    cur += 1 + len;
  }
}

// Splits a presentation-form name into raw labels, undoing the escapes appendLabel makes.
Result<std::vector<std::string>> nameLabels(std::string_view name) {
  std::vector<std::string> labels;
  if (name == "." || name.empty()) return labels;
  std::string label;
  size_t wire = 1;
  auto finish = [&]() -> Status {
    if (label.empty()) return fail(fmt::format("empty label in name '{}'", name));
    if (label.size() > kDnsMaxLabelBytes)
      return fail(fmt::format("label longer than 63 in '{}'", name));
    wire += label.size() + 1;
    if (wire > kDnsMaxNameBytes) return fail(fmt::format("name longer than 255: '{}'", name));
    labels.push_back(std::move(label));
    label.clear();
    return {};
  };
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '.') {
      if (auto s = finish(); !s) return std::unexpected(s.error());
      if (i + 1 == name.size()) return labels;  // the trailing dot of a fully qualified name
    } else if (c == '\\') {
      if (i + 1 >= name.size()) return fail("name ends with a backslash");
      const char n = name[i + 1];
      if (n >= '0' && n <= '9') {
        if (name.size() - i < 4) return fail("truncated \\DDD escape");
        int v = 0;
        for (size_t k = 1; k <= 3; ++k) {
          const char d = name[i + k];
          if (d < '0' || d > '9') return fail("bad \\DDD escape");
          v = v * 10 + (d - '0');
        }
        if (v > 255) return fail("\\DDD escape above 255");
        label.push_back(static_cast<char>(v));
        i += 3;
      } else {
        label.push_back(n);
        i += 1;
      }
    } else {
      label.push_back(c);
    }
  }
  if (auto s = finish(); !s) return std::unexpected(s.error());
  return labels;
}

// Builds a message, compressing names against the ones already written (exact case, so the
// case a client chose for its question survives).
class Writer {
 public:
  void u8(uint8_t v) { buf_.push_back(v); }
  void u16(uint16_t v) {
    buf_.push_back(static_cast<uint8_t>(v >> 8));
    buf_.push_back(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void bytes(std::span<const uint8_t> b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
  size_t size() const { return buf_.size(); }
  void patch16(size_t at, uint16_t v) {
    buf_[at] = static_cast<uint8_t>(v >> 8);
    buf_[at + 1] = static_cast<uint8_t>(v);
  }

  Status name(std::string_view text) {
    auto labels = nameLabels(text);
    if (!labels) return std::unexpected(labels.error());
    labelsOut(*labels);
    return {};
  }

  void labelsOut(const std::vector<std::string>& labels) {
    for (size_t i = 0; i < labels.size(); ++i) {
      std::string key;
      for (size_t k = i; k < labels.size(); ++k) {
        key.push_back(static_cast<char>(labels[k].size()));
        key += labels[k];
      }
      if (auto it = suffixes_.find(key); it != suffixes_.end()) {
        u16(static_cast<uint16_t>(0xc000 | it->second));
        return;
      }
      if (buf_.size() < 0x4000) suffixes_.emplace(std::move(key), buf_.size());
      u8(static_cast<uint8_t>(labels[i].size()));
      bytes({reinterpret_cast<const uint8_t*>(labels[i].data()), labels[i].size()});
    }
    u8(0);
  }

  // A name already in uncompressed wire form (from DnsRecord::rdata) at `pos` of `rdata`.
  Result<size_t> wireName(std::span<const uint8_t> rdata, size_t pos) {
    std::vector<std::string> labels;
    size_t cur = pos;
    while (true) {
      if (cur >= rdata.size()) return fail("RDATA name runs past its end");
      const uint8_t len = rdata[cur];
      if (len == 0) break;
      if (len > kDnsMaxLabelBytes) return fail("RDATA name has a compression pointer or bad label");
      if (rdata.size() - cur - 1 < len) return fail("RDATA label runs past its end");
      labels.emplace_back(reinterpret_cast<const char*>(rdata.data() + cur + 1), len);
      cur += 1 + len;
    }
    labelsOut(labels);
    return cur + 1;
  }

  std::vector<uint8_t> take() { return std::move(buf_); }

 private:
  std::vector<uint8_t> buf_;
  std::map<std::string, size_t> suffixes_;
};

Status writeRdata(Writer& w, const DnsRecord& rr) {
  const std::span<const uint8_t> rd(rr.rdata);
  size_t pos = 0;
  auto name = [&]() -> Status {
    auto next = w.wireName(rd, pos);
    if (!next) return std::unexpected(next.error());
    pos = *next;
    return {};
  };
  auto raw = [&](size_t n) -> Status {
    if (rd.size() - pos < n) return fail("RDATA too short");
    w.bytes(rd.subspan(pos, n));
    pos += n;
    return {};
  };
  Status s;
  switch (rr.type) {
    case dnstype::kCname:
    case dnstype::kNs:
    case dnstype::kPtr:
      s = name();
      break;
    case dnstype::kMx:
      s = raw(2);
      if (s) s = name();
      break;
    case dnstype::kSoa:
      s = name();
      if (s) s = name();
      if (s) s = raw(20);
      break;
    default:
      s = raw(rd.size());
      break;
  }
  if (!s) return s;
  if (pos != rd.size()) return fail("bytes after the names in RDATA");
  return {};
}

Status writeRecord(Writer& w, const DnsRecord& rr) {
  const std::string_view nameText = rr.originalName.empty() && !rr.name.empty()
                                        ? std::string_view(rr.name)
                                        : std::string_view(rr.originalName);
  if (auto s = w.name(nameText); !s) return s;
  w.u16(rr.type);
  w.u16(rr.rrClass);
  w.u32(rr.ttl);
  const size_t lenAt = w.size();
  w.u16(0);
  if (auto s = writeRdata(w, rr); !s) return s;
  const size_t rdlen = w.size() - lenAt - 2;
  if (rdlen > 0xffff) return fail("RDATA longer than 65535");
  w.patch16(lenAt, static_cast<uint16_t>(rdlen));
  return {};
}

// Bounds-checked reading of the sections after the header.
class Parser {
 public:
  explicit Parser(std::span<const uint8_t> msg) : msg_(msg), pos_(kDnsHeaderBytes) {}

  Status question(DnsQuestion& q) {
    auto n = readName(msg_, pos_, true);
    if (!n) return std::unexpected(n.error());
    pos_ = n->end;
    if (msg_.size() - pos_ < 4) return fail("truncated question");
    q.originalName = std::move(n->text);
    q.name = lowered(q.originalName);
    q.qtype = be16(msg_, pos_);
    q.qclass = be16(msg_, pos_ + 2);
    pos_ += 4;
    return {};
  }

  Status record(DnsRecord& rr) {
    auto n = readName(msg_, pos_, true);
    if (!n) return std::unexpected(n.error());
    pos_ = n->end;
    if (msg_.size() - pos_ < 10) return fail("truncated resource record header");
    rr.originalName = std::move(n->text);
    rr.name = lowered(rr.originalName);
    rr.type = be16(msg_, pos_);
    rr.rrClass = be16(msg_, pos_ + 2);
    rr.ttl = be32(msg_, pos_ + 4);
    const size_t rdlen = be16(msg_, pos_ + 8);
    pos_ += 10;
    if (msg_.size() - pos_ < rdlen) return fail("RDATA runs past the end of the message");
    const size_t start = pos_;
    const size_t end = pos_ + rdlen;
    pos_ = end;
    return rdata(rr, start, end);
  }

  bool atEnd() const { return pos_ == msg_.size(); }
  size_t remaining() const { return msg_.size() - pos_; }

 private:
  Status rdata(DnsRecord& rr, size_t start, size_t end) {
    const auto whole = msg_.subspan(start, end - start);
    size_t cur = start;
    // A name inside RDATA: compressed names resolve against the whole message, but the name's
    // own bytes must stay within RDATA.
    auto name = [&](std::string* textOut) -> Status {
      if (cur >= end) return fail(fmt::format("type {} RDATA too short", rr.type));
      auto n = readName(msg_.first(end), cur, true);
      if (!n) return std::unexpected(n.error().wrap(fmt::format("type {} RDATA", rr.type)));
      rr.rdata.insert(rr.rdata.end(), n->wire.begin(), n->wire.end());
      if (textOut) *textOut = lowered(n->text);
      cur = n->end;
      return {};
    };
    auto fixed = [&](size_t k) -> Status {
      if (end - cur < k) return fail(fmt::format("type {} RDATA too short", rr.type));
      rr.rdata.insert(rr.rdata.end(), msg_.begin() + cur, msg_.begin() + cur + k);
      cur += k;
      return {};
    };
    Status s;
    switch (rr.type) {
      case dnstype::kA:
        if (whole.size() != 4) return fail(fmt::format("A RDATA of {} bytes", whole.size()));
        s = fixed(4);
        break;
      case dnstype::kAaaa:
        if (whole.size() != 16) return fail(fmt::format("AAAA RDATA of {} bytes", whole.size()));
        s = fixed(16);
        break;
      case dnstype::kCname:
      case dnstype::kNs:
      case dnstype::kPtr:
        s = name(&rr.target);
        break;
      case dnstype::kMx:
        s = fixed(2);
        if (s) s = name(nullptr);
        break;
      case dnstype::kSoa:
        s = name(nullptr);
        if (s) s = name(nullptr);
        if (s) s = fixed(20);
        break;
      default:
        s = fixed(end - start);
        break;
    }
    if (!s) return s;
    if (cur != end) return fail(fmt::format("type {} RDATA has trailing bytes", rr.type));
    return {};
  }

  std::span<const uint8_t> msg_;
  size_t pos_;
};

}  // namespace

std::optional<policy::IpAddress> DnsRecord::address() const {
  policy::IpAddress ip;
  if (type == dnstype::kA && rdata.size() == 4) {
    ip.family = policy::IpAddress::Family::V4;
  } else if (type == dnstype::kAaaa && rdata.size() == 16) {
    ip.family = policy::IpAddress::Family::V6;
  } else {
    return std::nullopt;
  }
  std::copy(rdata.begin(), rdata.end(), ip.bytes.begin());
  return ip;
}

std::optional<std::vector<std::string>> DnsRecord::txt() const {
  if (type != dnstype::kTxt) return std::nullopt;
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < rdata.size()) {
    const size_t len = rdata[pos];
    if (rdata.size() - pos - 1 < len) return std::nullopt;
    out.emplace_back(reinterpret_cast<const char*>(rdata.data() + pos + 1), len);
    pos += 1 + len;
  }
  return out;
}

std::optional<uint32_t> DnsRecord::soaMinimum() const {
  if (type != dnstype::kSoa || rdata.size() < 20) return std::nullopt;
  return be32(rdata, rdata.size() - 4);
}

const DnsRecord* DnsMessage::opt() const {
  for (const auto& rr : additional) {
    if (rr.type == dnstype::kOpt) return &rr;
  }
  return nullptr;
}

std::optional<uint16_t> DnsMessage::ednsUdpSize() const {
  const DnsRecord* o = opt();
  if (!o) return std::nullopt;
  return o->rrClass;
}

Result<DnsHeader> parseDnsHeader(std::span<const uint8_t> wire) {
  if (wire.size() < kDnsHeaderBytes) return fail("DNS message shorter than its header");
  return DnsHeader{be16(wire, 0), be16(wire, 2)};
}

Result<DnsMessage> parseDnsMessage(std::span<const uint8_t> wire) {
  if (wire.size() > kDnsMaxMessageBytes) return fail("DNS message longer than 65535 bytes");
  auto header = parseDnsHeader(wire);
  if (!header) return std::unexpected(header.error());
  DnsMessage msg;
  msg.header = *header;
  const size_t qd = be16(wire, 4), an = be16(wire, 6), ns = be16(wire, 8), ar = be16(wire, 10);
  // Each question takes at least 5 bytes and each record at least 11: a count the remaining
  // bytes cannot hold is rejected before anything is reserved for it.
  const size_t body = wire.size() - kDnsHeaderBytes;
  if (qd * 5 + (an + ns + ar) * 11 > body) return fail("section counts exceed the message");
  Parser p(wire);
  msg.questions.resize(qd);
  for (size_t i = 0; i < qd; ++i) {
    if (auto s = p.question(msg.questions[i]); !s)
      return std::unexpected(s.error().wrap("question"));
  }
  auto section = [&](std::vector<DnsRecord>& out, size_t count, const char* what) -> Status {
    out.resize(count);
    for (size_t i = 0; i < count; ++i) {
      if (auto s = p.record(out[i]); !s) return std::unexpected(s.error().wrap(what));
    }
    return {};
  };
  if (auto s = section(msg.answers, an, "answer"); !s) return std::unexpected(s.error());
  if (auto s = section(msg.authority, ns, "authority"); !s) return std::unexpected(s.error());
  if (auto s = section(msg.additional, ar, "additional"); !s) return std::unexpected(s.error());
  if (!p.atEnd()) return fail(fmt::format("{} bytes after the last record", p.remaining()));
  return msg;
}

Result<std::vector<uint8_t>> serializeDnsMessage(const DnsMessage& msg) {
  const size_t counts[] = {msg.questions.size(), msg.answers.size(), msg.authority.size(),
                           msg.additional.size()};
  for (size_t c : counts) {
    if (c > 0xffff) return fail("section with more than 65535 entries");
  }
  Writer w;
  w.u16(msg.header.id);
  w.u16(msg.header.flags);
  for (size_t c : counts) w.u16(static_cast<uint16_t>(c));
  for (const auto& q : msg.questions) {
    const std::string_view nameText = q.originalName.empty() ? q.name : q.originalName;
    if (auto s = w.name(nameText); !s) return std::unexpected(s.error().wrap("question"));
    w.u16(q.qtype);
    w.u16(q.qclass);
  }
  for (const auto* section : {&msg.answers, &msg.authority, &msg.additional}) {
    for (const auto& rr : *section) {
      if (auto s = writeRecord(w, rr); !s) return std::unexpected(s.error().wrap("record"));
    }
  }
  if (w.size() > kDnsMaxMessageBytes) return fail("DNS message would exceed 65535 bytes");
  return w.take();
}

Result<std::vector<uint8_t>> buildDnsQuery(uint16_t id, std::string_view name, uint16_t qtype,
                                           const DnsQueryOptions& options) {
  if (auto labels = nameLabels(name); !labels) return std::unexpected(labels.error());
  DnsMessage msg;
  msg.header.id = id;
  msg.header.flags = options.recursionDesired ? DnsHeader::kRd : 0;
  DnsQuestion q;
  q.originalName = std::string(name);
  q.qtype = qtype;
  msg.questions.push_back(std::move(q));
  if (options.ednsUdpSize) {
    DnsRecord opt;
    opt.type = dnstype::kOpt;
    opt.rrClass = *options.ednsUdpSize;
    msg.additional.push_back(std::move(opt));
  }
  return serializeDnsMessage(msg);
}

namespace {

Result<DnsMessage> responseSkeleton(std::span<const uint8_t> query) {
  auto q = parseDnsMessage(query);
  if (!q) return std::unexpected(q.error().wrap("query"));
  if (q->header.qr()) return fail("query: QR set, this is a response");
  if (q->questions.empty()) return fail("query: no question");
  DnsMessage r;
  r.header.id = q->header.id;
  r.header.flags = static_cast<uint16_t>(DnsHeader::kQr | (q->header.flags & 0x7800) |
                                         (q->header.flags & DnsHeader::kRd) | DnsHeader::kRa);
  r.questions.push_back(q->questions.front());
  // RFC 6891 §7: an EDNS-aware responder answers an EDNS query with an OPT record.
  if (q->opt()) {
    DnsRecord opt;
    opt.type = dnstype::kOpt;
    opt.rrClass = kOwnEdnsUdpSize;
    r.additional.push_back(std::move(opt));
  }
  return r;
}

}  // namespace

Result<std::vector<uint8_t>> buildDnsErrorResponse(std::span<const uint8_t> query, DnsRcode rcode) {
  auto r = responseSkeleton(query);
  if (!r) return std::unexpected(r.error());
  r->header.setRcode(rcode);
  return serializeDnsMessage(*r);
}

Result<std::vector<uint8_t>> buildTruncatedResponse(std::span<const uint8_t> query) {
  auto r = responseSkeleton(query);
  if (!r) return std::unexpected(r.error());
  r->header.flags |= DnsHeader::kTc;
  return serializeDnsMessage(*r);
}

bool isTruncated(std::span<const uint8_t> wire) {
  return wire.size() >= kDnsHeaderBytes && (wire[2] & 0x02) != 0;
}

size_t maxUdpResponseBytes(const DnsMessage& query) {
  const auto size = query.ednsUdpSize();
  if (!size) return kMinUdpResponseBytes;
  return std::max<size_t>(*size, kMinUdpResponseBytes);
}

Result<DnsFilterResult> filterDnsAnswers(
    std::span<const uint8_t> response, const std::function<bool(const policy::IpAddress&)>& keep) {
  auto msg = parseDnsMessage(response);
  if (!msg) return std::unexpected(msg.error().wrap("response"));
  DnsFilterResult out;
  auto drop = [&](const DnsRecord& rr) {
    const auto ip = rr.address();
    if (!ip || keep(*ip)) return false;
    ++out.removed;
    return true;
  };
  std::erase_if(msg->answers, drop);
  std::erase_if(msg->additional, drop);
  auto wire = serializeDnsMessage(*msg);
  if (!wire) return std::unexpected(wire.error());
  out.wire = std::move(*wire);
  return out;
}

Result<std::vector<uint8_t>> frameDnsTcp(std::span<const uint8_t> message) {
  if (message.empty()) return fail("empty DNS message");
  if (message.size() > kDnsMaxMessageBytes) return fail("DNS message longer than 65535 bytes");
  std::vector<uint8_t> out;
  out.reserve(message.size() + 2);
  out.push_back(static_cast<uint8_t>(message.size() >> 8));
  out.push_back(static_cast<uint8_t>(message.size()));
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

DnsTcpFrame nextDnsTcpFrame(std::span<const uint8_t> stream) {
  DnsTcpFrame f;
  if (stream.size() < 2) return f;
  const size_t len = be16(stream, 0);
  if (len == 0) {
    f.invalid = true;
    return f;
  }
  if (stream.size() - 2 < len) return f;
  f.message = stream.subspan(2, len);
  f.consumed = len + 2;
  return f;
}

}  // namespace tollgate::proxy
