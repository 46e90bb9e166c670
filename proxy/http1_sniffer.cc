#include "proxy/http1_sniffer.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <string_view>
#include <utility>

namespace tollgate::proxy {
namespace {

constexpr size_t npos = std::string_view::npos;

std::string_view asView(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
std::span<const uint8_t> asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isHex(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool isWs(char c) { return c == ' ' || c == '\t'; }

char toLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = toLower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (toLower(a[i]) != toLower(b[i])) return false;
  }
  return true;
}

// RFC 9110 §5.6.2 tchar.
bool isTchar(char c) {
  if (isDigit(c) || isAlpha(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != npos;
}

bool isToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), isTchar); }

// field-vchar / SP / HTAB (RFC 9110 §5.5), obs-text included.
bool isFieldValueChar(char ch) {
  const auto c = static_cast<uint8_t>(ch);
  return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isWs(s.front())) s.remove_prefix(1);
  while (!s.empty() && isWs(s.back())) s.remove_suffix(1);
  return s;
}

// Elements of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed, empty elements kept.
std::vector<std::string_view> splitList(std::string_view v) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t comma = v.find(',', start);
    out.push_back(trimOws(v.substr(start, comma == npos ? npos : comma - start)));
    if (comma == npos) return out;
    start = comma + 1;
  }
}

// Digits only, at most 19 of them (checked by callers): cannot overflow.
uint64_t toNumber(std::string_view digits) {
  uint64_t n = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), n);
  return n;
}

struct HostPort {
  std::string_view host;
  std::string_view port;  // digits, possibly empty
  bool hasPort = false;
};

// uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP-literal in brackets or a
// reg-name / IPv4 of unreserved, sub-delims and pct-encoded characters. Rejects what could change
// the meaning of a name downstream: whitespace, '/', '@', '?', '#', non-ASCII.
std::optional<HostPort> parseHostPort(std::string_view v) {
  HostPort hp;
  size_t i = 0;
  if (!v.empty() && v[0] == '[') {
    const size_t close = v.find(']');
    if (close == npos || close == 1) return std::nullopt;
    for (char c : v.substr(1, close - 1)) {
      if (!isHex(c) && c != ':' && c != '.' && c != 'v' && c != 'V') return std::nullopt;
    }
    i = close + 1;
  } else {
    while (i < v.size() && v[i] != ':') {
      const char c = v[i];
      if (c == '%') {
        if (i + 2 >= v.size() || !isHex(v[i + 1]) || !isHex(v[i + 2])) return std::nullopt;
        i += 3;
        continue;
      }
      if (!isAlpha(c) && !isDigit(c) && std::string_view("-._~!$&'()*+,;=").find(c) == npos) {
        return std::nullopt;
      }
      ++i;
    }
    if (i == 0) return std::nullopt;
  }
  hp.host = v.substr(0, i);
  if (i < v.size()) {
    if (v[i] != ':') return std::nullopt;
    hp.hasPort = true;
    hp.port = v.substr(i + 1);
    if (hp.port.size() > 5 || !std::all_of(hp.port.begin(), hp.port.end(), isDigit)) {
      return std::nullopt;
    }
    if (!hp.port.empty() && toNumber(hp.port) > 65535) return std::nullopt;
  }
  return hp;
}

// Host and authority compared as the origin would: case-insensitively, with the scheme's default
// port (or an empty port) equal to no port.
std::string normalizedAuthority(const HostPort& hp, unsigned defaultPort) {
  std::string out = lower(hp.host);
  if (!hp.port.empty()) {
    const uint64_t port = toNumber(hp.port);
    if (port != defaultPort) out += fmt::format(":{}", port);
  }
  return out;
}

// A field line "name: value" (RFC 9112 §5). Returns an error or empty; sets name and value.
std::string parseFieldLine(std::string_view line, std::string_view& name, std::string_view& value) {
  if (isWs(line.front())) return "obsolete line folding (field line starts with whitespace)";
  const size_t colon = line.find(':');
  if (colon == npos) return "field line without a colon";
  name = line.substr(0, colon);
  if (name.empty()) return "empty field name";
  for (char c : name) {
    // RFC 9112 §5.1: whitespace before the colon MUST be rejected (it is how "Host : x" or
    // "Transfer-Encoding : chunked" get past one parser and not another).
    if (isWs(c)) return fmt::format("whitespace in field name '{}'", name);
    if (!isTchar(c)) return "invalid character in field name";
  }
  value = trimOws(line.substr(colon + 1));
  for (char c : value) {
    if (!isFieldValueChar(c)) {
      return fmt::format("control character 0x{:02x} in field '{}'", static_cast<uint8_t>(c), name);
    }
  }
  return {};
}

// The request head parser proper, run over the (capped) bytes received so far.
class HeadParser {
 public:
  HttpSniffResult run(std::string_view data, size_t received, size_t maxHeaderBytes) {
    size_t pos = 0;
    bool first = true;
    while (true) {
      const size_t lf = data.find('\n', pos);
      if (lf == npos) {
        // Fail early on bytes no head can contain, so opaque data that happens to start like a
        // method is not held until the size cap.
        if (auto err = checkPartialLine(data.substr(pos)); !err.empty()) return invalid(err);
        break;
      }
      std::string_view line = data.substr(pos, lf - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find('\r') != npos) return invalid("bare CR in request head");
      pos = lf + 1;
      std::string err;
      if (first) {
        err = requestLine(line);
        first = false;
      } else if (line.empty()) {
        head_.headerBytes = pos;
        return finish();
      } else {
        err = field(line);
      }
      if (!err.empty()) return invalid(err);
    }
    if (received >= maxHeaderBytes) {
      return invalid(fmt::format("request head too large: no end within {} bytes", maxHeaderBytes));
    }
    return HttpSniffResult{};
  }

 private:
  static HttpSniffResult invalid(std::string error) {
    HttpSniffResult r;
    r.status = SniffStatus::Invalid;
    r.error = std::move(error);
    return r;
  }

  static std::string checkPartialLine(std::string_view partial) {
    for (size_t i = 0; i < partial.size(); ++i) {
      const auto c = static_cast<uint8_t>(partial[i]);
      if (c == '\r') {
        if (i + 1 < partial.size()) return "bare CR in request head";
      } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return fmt::format("control character 0x{:02x} in request head", c);
      }
    }
    return {};
  }

  std::string requestLine(std::string_view line) {
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == npos ? npos : line.find(' ', sp1 + 1);
    if (sp2 == npos) return "request line is not 'method SP target SP version'";
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (target.empty() || version.find(' ') != npos) {
      return "request line is not 'method SP target SP version'";
    }
    for (char c : target) {
      const auto u = static_cast<uint8_t>(c);
      if (u < 0x21 || u > 0x7e) return fmt::format("byte 0x{:02x} in request target", u);
    }
    if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || !isDigit(version[7])) {
      return fmt::format("unsupported HTTP version '{}'", version);
    }
    head_.method = method;
    head_.target = target;
    head_.version = version;
    http10_ = version[7] == '0';
    if (method == "CONNECT") return "CONNECT is not supported through the transparent proxy";

    if (target.front() == '/') return {};  // origin-form
    if (target == "*") {
      return method == "OPTIONS" ? std::string() : "asterisk-form target on a non-OPTIONS request";
    }
    // absolute-form: scheme "://" authority [path-abempty] [? query]
    const size_t sep = target.find("://");
    if (sep == npos || sep == 0 || !isAlpha(target.front())) {
      return fmt::format("unsupported request target '{}'", target);
    }
    const std::string scheme = lower(target.substr(0, sep));
    if (scheme == "http") {
      defaultPort_ = 80;
    } else if (scheme == "https") {
      defaultPort_ = 443;
    } else {
      return fmt::format("unsupported scheme '{}' in request target", scheme);
    }
    const std::string_view rest = target.substr(sep + 3);
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (authority.find('@') != npos) return "userinfo in request target";
    const auto hp = parseHostPort(authority);
    if (!hp) return fmt::format("invalid authority '{}' in request target", authority);
    absoluteAuthority_ = authority;
    absolute_ = true;
    targetAuthority_ = normalizedAuthority(*hp, defaultPort_);
    return {};
  }

  std::string field(std::string_view line) {
    std::string_view name;
    std::string_view value;
    if (auto err = parseFieldLine(line, name, value); !err.empty()) return err;

    if (iequals(name, "host")) {
      if (hostSeen_) return "duplicate Host field";
      hostSeen_ = true;
      // An empty Host is valid (RFC 9110 §7.2, target without authority); the policy decides.
      if (!value.empty()) {
        const auto hp = parseHostPort(value);
        if (!hp) return fmt::format("invalid Host '{}'", value);
        hostAuthority_ = *hp;
      }
      head_.host = value;
    } else if (iequals(name, "content-length")) {
      // RFC 9110 §8.6: a list of identical values may be accepted; anything else is an attack.
      for (std::string_view v : splitList(value)) {
        if (v.empty() || v.size() > 19 || !std::all_of(v.begin(), v.end(), isDigit)) {
          return fmt::format("invalid Content-Length '{}'", value);
        }
        const uint64_t n = toNumber(v);
        if (head_.contentLength && *head_.contentLength != n)
          return "differing Content-Length values";
        head_.contentLength = n;
      }
    } else if (iequals(name, "transfer-encoding")) {
      teSeen_ = true;
      for (std::string_view v : splitList(value)) {
        if (!v.empty()) codings_.push_back(v);
      }
    } else if (iequals(name, "connection")) {
      for (std::string_view v : splitList(value)) {
        if (iequals(v, "close")) connClose_ = true;
        if (iequals(v, "keep-alive")) connKeepAlive_ = true;
        if (iequals(v, "upgrade")) connUpgrade_ = true;
      }
    } else if (iequals(name, "upgrade")) {
      upgradeField_ = true;
      if (!head_.upgradeProtocols.empty()) head_.upgradeProtocols += ", ";
      head_.upgradeProtocols += value;
    }
    return {};
  }

  HttpSniffResult finish() {
    if (!hostSeen_ && !http10_) return invalid("HTTP/1.1 request without Host");
    if (absolute_) {
      if (!hostSeen_) {
        head_.host = absoluteAuthority_;
      } else if (head_.host.empty() ||
                 normalizedAuthority(hostAuthority_, defaultPort_) != targetAuthority_) {
        // RFC 9112 §3.2.2: the origin uses the target's authority and ignores Host, so the two
        // must name the same thing or the proxy would check one name and the server serve another.
        return invalid(fmt::format("request target authority '{}' disagrees with Host '{}'",
                                   absoluteAuthority_, head_.host));
      }
    }
    if (teSeen_) {
      // RFC 9112 §6.1-6.3: Content-Length with Transfer-Encoding is the classic smuggling shape;
      // HTTP/1.0 has no chunked framing; a final coding other than chunked has no known length.
      if (head_.contentLength) return invalid("both Content-Length and Transfer-Encoding");
      if (http10_) return invalid("Transfer-Encoding on an HTTP/1.0 request");
      if (codings_.empty()) return invalid("empty Transfer-Encoding");
      size_t chunkedCount = 0;
      for (std::string_view c : codings_) {
        const std::string_view coding = trimOws(c.substr(0, c.find(';')));
        if (!isToken(coding)) return invalid("invalid transfer coding");
        if (iequals(coding, "chunked")) {
          if (coding.size() != c.size()) return invalid("parameters on chunked");
          ++chunkedCount;
        }
      }
      if (chunkedCount != 1 || !iequals(codings_.back(), "chunked")) {
        return invalid("Transfer-Encoding does not end in a single chunked");
      }
      head_.chunked = true;
    }
    head_.keepAlive = !connClose_ && (!http10_ || connKeepAlive_);
    head_.upgrade = connUpgrade_ && upgradeField_;
    HttpSniffResult r;
    r.status = SniffStatus::Done;
    r.head = std::move(head_);
    return r;
  }

  HttpRequestHead head_;
  bool http10_ = false;
  bool absolute_ = false;
  unsigned defaultPort_ = 80;
  std::string absoluteAuthority_;
  std::string targetAuthority_;  // normalised
  bool hostSeen_ = false;
  HostPort hostAuthority_;
  bool teSeen_ = false;
  std::vector<std::string_view> codings_;
  bool connClose_ = false;
  bool connKeepAlive_ = false;
  bool connUpgrade_ = false;
  bool upgradeField_ = false;
};

// chunk-size [ chunk-ext ] (RFC 9112 §7.1.1), terminator already removed.
std::string parseChunkLine(std::string_view line, uint64_t& size) {
  size_t i = 0;
  size = 0;
  for (; i < line.size() && isHex(line[i]); ++i) {
    if (size > (std::numeric_limits<uint64_t>::max() >> 4)) return "chunk size overflows";
    const char c = line[i];
    const unsigned digit = isDigit(c) ? c - '0' : toLower(c) - 'a' + 10;
    size = (size << 4) | digit;
  }
  if (i == 0) return "chunk size missing";
  // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val = token / quoted-string
  auto skipBws = [&] {
    while (i < line.size() && isWs(line[i])) ++i;
  };
  auto token = [&] {
    const size_t start = i;
    while (i < line.size() && isTchar(line[i])) ++i;
    return i > start;
  };
  while (true) {
    skipBws();
    if (i == line.size()) return {};
    if (line[i] != ';') return "invalid chunk extension";
    ++i;
    skipBws();
    if (!token()) return "invalid chunk extension name";
    skipBws();
    if (i < line.size() && line[i] == '=') {
      ++i;
      skipBws();
      if (i < line.size() && line[i] == '"') {
        ++i;
        bool closed = false;
        while (i < line.size() && !closed) {
          const auto c = static_cast<uint8_t>(line[i]);
          if (c == '"') {
            closed = true;
          } else if (c == '\\') {
            if (++i == line.size() || !isFieldValueChar(line[i])) return "invalid quoted-pair";
          } else if (!isFieldValueChar(line[i])) {
            return "invalid chunk extension value";
          }
          ++i;
        }
        if (!closed) return "unterminated quoted chunk extension value";
      } else if (!token()) {
        return "invalid chunk extension value";
      }
    }
  }
}

}  // namespace

HttpSniffResult sniffHttpRequest(std::span<const uint8_t> bytes, size_t maxHeaderBytes) {
  const MethodPrefix method = matchHttpMethod(bytes);
  if (method.match == MethodMatch::NoMatch) {
    HttpSniffResult r;
    r.status = SniffStatus::NotThisProtocol;
    r.error = "does not start with an HTTP method";
    return r;
  }
  if (method.match == MethodMatch::NeedMore) {
    return bytes.size() >= maxHeaderBytes
               ? HttpSniffResult{SniffStatus::Invalid, {}, "request head too large"}
               : HttpSniffResult{};
  }
  const auto capped = asView(bytes.first(std::min(bytes.size(), maxHeaderBytes)));
  return HeadParser().run(capped, bytes.size(), maxHeaderBytes);
}

HttpRequestStream::HttpRequestStream(size_t maxHeaderBytes) : maxHeaderBytes_(maxHeaderBytes) {}

void HttpRequestStream::fail(FeedResult& out, SniffStatus status, std::string error) {
  state_ = State::Failed;
  failedStatus_ = status;
  error_ = std::move(error);
  out.status = failedStatus_;
  out.error = error_;
  out.errorOffset = offset_;
  headBuf_.clear();
  lineBuf_.clear();
}

void HttpRequestStream::passThrough() {
  if (state_ == State::Failed) return;
  state_ = State::PassThrough;
  offset_ = fed_;
  headBuf_.clear();
  lineBuf_.clear();
}

bool HttpRequestStream::atMessageBoundary() const {
  return (state_ == State::Head && headBuf_.empty()) || state_ == State::PassThrough;
}

bool HttpRequestStream::lineStep(std::string_view& in, FeedResult& out) {
  const size_t lf = in.find('\n');
  const size_t take = lf == npos ? in.size() : lf + 1;
  const size_t limit = state_ == State::Trailer ? maxHeaderBytes_ - trailerBytes_ : maxHeaderBytes_;
  if (lineBuf_.size() + take > limit) {
    fail(out, SniffStatus::Invalid,
         state_ == State::Trailer ? "chunked trailer too large" : "chunk-size line too long");
    return false;
  }
  lineBuf_.append(in.substr(0, take));
  in.remove_prefix(take);
  if (lf == npos) return true;

  if (lineBuf_.size() < 2 || lineBuf_[lineBuf_.size() - 2] != '\r') {
    fail(out, SniffStatus::Invalid, "chunked framing line not terminated by CRLF");
    return false;
  }
  const std::string_view line = std::string_view(lineBuf_).substr(0, lineBuf_.size() - 2);
  if (line.find('\r') != npos) {
    fail(out, SniffStatus::Invalid, "bare CR in chunked framing");
    return false;
  }
  std::string err;
  if (state_ == State::ChunkLine) {
    uint64_t size = 0;
    err = parseChunkLine(line, size);
    if (err.empty()) {
      if (size == 0) {
        state_ = State::Trailer;
        trailerBytes_ = 0;
      } else {
        state_ = State::ChunkData;
        remaining_ = size;
      }
    }
  } else if (line.empty()) {
    state_ = State::Head;  // end of the trailer section: the message is complete
  } else {
    std::string_view name;
    std::string_view value;
    err = parseFieldLine(line, name, value);
    trailerBytes_ += lineBuf_.size();
  }
  if (!err.empty()) {
    fail(out, SniffStatus::Invalid, err);
    return false;
  }
  offset_ += lineBuf_.size();
  lineBuf_.clear();
  return true;
}

HttpRequestStream::FeedResult HttpRequestStream::feed(std::span<const uint8_t> bytes) {
  FeedResult out;
  fed_ += bytes.size();
  if (state_ == State::Failed) {
    out.status = failedStatus_;
    out.error = error_;
    out.errorOffset = offset_;
    return out;
  }
  std::string_view in = asView(bytes);
  std::string carry;  // bytes after a head that was completed in headBuf_
  while (!in.empty()) {
    switch (state_) {
      case State::PassThrough:
        offset_ += in.size();
        in = {};
        break;
      case State::Body:
      case State::ChunkData: {
        const auto n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
        remaining_ -= n;
        offset_ += n;
        in.remove_prefix(n);
        if (remaining_ == 0) {
          state_ = state_ == State::Body ? State::Head : State::ChunkDataEnd;
          chunkEndSeen_ = 0;
        }
        break;
      }
      case State::ChunkDataEnd:
        while (!in.empty() && chunkEndSeen_ < 2) {
          if (in.front() != "\r\n"[chunkEndSeen_]) {
            offset_ += chunkEndSeen_;
            fail(out, SniffStatus::Invalid, "chunk data not followed by CRLF");
            return out;
          }
          ++chunkEndSeen_;
          in.remove_prefix(1);
        }
        if (chunkEndSeen_ == 2) {
          offset_ += 2;
          state_ = State::ChunkLine;
        }
        break;
      case State::ChunkLine:
      case State::Trailer:
        if (!lineStep(in, out)) return out;
        break;
      case State::Head: {
        const bool buffered = !headBuf_.empty();
        if (buffered) headBuf_.append(in);
        std::string_view view = buffered ? std::string_view(headBuf_) : in;
        // Empty lines between requests are skipped (RFC 9112 §2.2), as servers do.
        if (requests_ > 0) {
          size_t k = 0;
          while (true) {
            if (k < view.size() && view[k] == '\n') {
              k += 1;
            } else if (k + 1 < view.size() && view[k] == '\r' && view[k + 1] == '\n') {
              k += 2;
            } else {
              break;
            }
          }
          offset_ += k;
          view.remove_prefix(k);
        }
        HttpSniffResult r;  // NeedMore, also for a lone CR that may start one more CRLF
        if (!view.empty() && !(requests_ > 0 && view == "\r"))
          r = sniffHttpRequest(asBytes(view), maxHeaderBytes_);
        if (r.status == SniffStatus::NeedMore) {
          if (buffered) {
            headBuf_.erase(0, headBuf_.size() - view.size());
          } else {
            headBuf_.assign(view);
          }
          return out;
        }
        if (r.status == SniffStatus::NotThisProtocol) {
          if (requests_ == 0) {
            fail(out, SniffStatus::NotThisProtocol, r.error);
          } else {
            fail(out, SniffStatus::Invalid, "bytes after a request are not an HTTP request");
          }
          return out;
        }
        if (r.status == SniffStatus::Invalid) {
          fail(out, SniffStatus::Invalid, r.error);
          return out;
        }
        const size_t headerBytes = r.head.headerBytes;
        if (r.head.chunked) {
          state_ = State::ChunkLine;
        } else if (r.head.contentLength.value_or(0) > 0) {
          state_ = State::Body;
          remaining_ = *r.head.contentLength;
        }
        out.requests.push_back(Request{std::move(r.head), offset_});
        ++requests_;
        offset_ += headerBytes;
        view.remove_prefix(headerBytes);
        if (buffered) {
          carry.assign(view);
          headBuf_.clear();
          in = carry;
        } else {
          in = view;
        }
        break;
      }
      case State::Failed:
        return out;
    }
  }
  return out;
}

std::optional<int> httpStatusCode(std::string_view statusLine) {
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
  if (statusLine.size() < 12 || !statusLine.starts_with("HTTP/1.") || statusLine[8] != ' ') {
    return std::nullopt;
  }
  if (statusLine[7] < '0' || statusLine[7] > '9') return std::nullopt;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (statusLine[i] < '0' || statusLine[i] > '9') return std::nullopt;
    code = code * 10 + (statusLine[i] - '0');
  }
  if (statusLine.size() > 12 && statusLine[12] != ' ' && statusLine[12] != '\r' &&
      statusLine[12] != '\n') {
    return std::nullopt;
  }
  return code;
}

std::optional<std::string_view> refusedUpgrade(const HttpRequestHead& head) {
  if (!head.upgrade) return std::nullopt;
  // A body would have to be forwarded before the answer is known (and 101 ends HTTP framing).
  if (head.chunked || head.contentLength.value_or(0) != 0) return "upgrade_with_body";
  bool websocket = false;
  for (std::string_view p : splitList(head.upgradeProtocols)) {
    if (p.empty()) continue;
    std::string_view name = trimOws(p.substr(0, p.find('/')));
    // h2c would carry requests the proxy cannot see one by one (request smuggling past the Host
    // check); anything but WebSocket is refused rather than relayed unread.
    if (iequals(name, "h2c")) return "h2c_upgrade";
    if (!iequals(name, "websocket")) return "upgrade_not_allowed";
    websocket = true;
  }
  if (!websocket) return "upgrade_not_allowed";
  return std::nullopt;
}

}  // namespace tollgate::proxy
