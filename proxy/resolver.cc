#include "proxy/resolver.h"

#include <netdb.h>
#include <sys/random.h>

#include <cstring>

#include <fmt/format.h>

#include "common/log.h"

namespace tollgate::proxy {
namespace {

uint16_t get16(std::string_view m, size_t off) {
  return static_cast<uint16_t>((static_cast<uint8_t>(m[off]) << 8) | static_cast<uint8_t>(m[off + 1]));
}

void put16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

// Skips a (possibly compressed) name starting at off; returns the offset after it.
Result<size_t> skipName(std::string_view m, size_t off) {
  for (int guard = 0; guard < 128; ++guard) {
    if (off >= m.size()) return fail("dns: name runs past the message");
    uint8_t len = static_cast<uint8_t>(m[off]);
    if (len == 0) return off + 1;
    if ((len & 0xc0) == 0xc0) {
      if (off + 2 > m.size()) return fail("dns: truncated compression pointer");
      return off + 2;
    }
    if ((len & 0xc0) != 0) return fail("dns: bad label type");
    off += 1 + len;
  }
  return fail("dns: name has too many labels");
}

uint16_t randomId() {
  uint16_t id = 0;
  if (::getrandom(&id, sizeof id, 0) != sizeof id) id = static_cast<uint16_t>(std::rand());
  return id;
}

}  // namespace

Result<std::string> encodeDnsQuery(uint16_t id, std::string_view name, uint16_t qtype) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return fail(fmt::format("dns: invalid name '{}'", name));
  std::string out;
  put16(out, id);
  put16(out, 0x0100);  // RD
  put16(out, 1);       // QDCOUNT
  put16(out, 0);
  put16(out, 0);
  put16(out, 0);
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    size_t len = dot - start;
    if (len == 0 || len > 63) return fail(fmt::format("dns: invalid name '{}'", name));
    out += static_cast<char>(len);
    out.append(name.substr(start, len));
    start = dot + 1;
  }
  out += '\0';
  put16(out, qtype);
  put16(out, 1);  // IN
  return out;
}

Result<std::vector<policy::IpAddress>> parseDnsResponse(std::string_view m, uint16_t id,
                                                        uint16_t qtype) {
  if (m.size() < 12) return fail("dns: short response");
  if (get16(m, 0) != id) return fail("dns: response id mismatch");
  uint16_t flags = get16(m, 2);
  if ((flags & 0x8000) == 0) return fail("dns: not a response");
  if (flags & 0x0200) return fail("dns: truncated response");
  int rcode = flags & 0x000f;
  if (rcode == 3) return fail("dns: NXDOMAIN", rcode);
  if (rcode != 0) return fail(fmt::format("dns: rcode {}", rcode), rcode);
  uint16_t qd = get16(m, 4);
  uint16_t an = get16(m, 6);
  size_t off = 12;
  for (uint16_t i = 0; i < qd; ++i) {
    auto next = skipName(m, off);
    if (!next) return std::unexpected(next.error());
    off = *next + 4;
    if (off > m.size()) return fail("dns: truncated question");
  }
  std::vector<policy::IpAddress> out;
  for (uint16_t i = 0; i < an; ++i) {
    auto next = skipName(m, off);
    if (!next) return std::unexpected(next.error());
    off = *next;
    if (off + 10 > m.size()) return fail("dns: truncated record");
    uint16_t type = get16(m, off);
    uint16_t cls = get16(m, off + 2);
    uint16_t rdlen = get16(m, off + 8);
    off += 10;
    if (off + rdlen > m.size()) return fail("dns: truncated rdata");
    if (cls == 1 && type == qtype) {
      if (type == kDnsTypeA && rdlen == 4) {
        policy::IpAddress a;
        std::memcpy(a.bytes.data(), m.data() + off, 4);
        out.push_back(a);
      } else if (type == kDnsTypeAaaa && rdlen == 16) {
        policy::IpAddress a;
        a.family = policy::IpAddress::Family::V6;
        std::memcpy(a.bytes.data(), m.data() + off, 16);
        out.push_back(a);
      }
    }
    off += rdlen;
  }
  return out;
}

Result<Endpoint> parseResolverAddress(std::string_view text) {
  Endpoint ep{{}, 53};
  std::string_view host = text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return fail(fmt::format("bad resolver '{}'", text));
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail(fmt::format("bad resolver '{}'", text));
      rest.remove_prefix(1);
      int port = 0;
      for (char c : rest) {
        if (c < '0' || c > '9') return fail(fmt::format("bad resolver port '{}'", text));
        port = port * 10 + (c - '0');
        if (port > 65535) return fail(fmt::format("bad resolver port '{}'", text));
      }
      ep.port = static_cast<uint16_t>(port);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    auto colon = text.find(':');
    host = text.substr(0, colon);
    int port = 0;
    for (char c : text.substr(colon + 1)) {
      if (c < '0' || c > '9') return fail(fmt::format("bad resolver port '{}'", text));
      port = port * 10 + (c - '0');
      if (port > 65535) return fail(fmt::format("bad resolver port '{}'", text));
    }
    ep.port = static_cast<uint16_t>(port);
  }
  auto ip = policy::IpAddress::parse(host);
  if (!ip) return fail(fmt::format("bad resolver address '{}'", text));
  if (ep.port == 0) return fail(fmt::format("bad resolver port '{}'", text));
  ep.ip = *ip;
  return ep;
}

Resolver::~Resolver() { pool_.join(); }

void Resolver::setUpstreams(const std::vector<std::string>& upstreams) {
  {
    std::lock_guard lock(mu_);
    cache_.clear();  // answers from the old resolvers
  }
  std::vector<Endpoint> eps;
  for (const auto& u : upstreams) {
    auto ep = parseResolverAddress(u);
    if (!ep) {
      log::warn("resolver", "skipping upstream: {}", ep.error().str());
      continue;
    }
    eps.push_back(*ep);
  }
  std::lock_guard lock(mu_);
  upstreams_ = std::move(eps);
}

std::vector<Endpoint> Resolver::upstreams() const {
  std::lock_guard lock(mu_);
  return upstreams_;
}

awaitable<Result<std::vector<policy::IpAddress>>> Resolver::resolve(std::string name) {
  if (auto ip = policy::IpAddress::parse(name)) co_return std::vector<policy::IpAddress>{*ip};
  if (auto hit = cached(name)) co_return std::move(*hit);
  auto result = co_await resolveUncached(name);
  if (result) {
    std::lock_guard lock(mu_);
    if (cache_.size() >= kCacheMax) cache_.clear();
    cache_[name] = Cached{std::chrono::steady_clock::now() + kCacheTtl, *result};
  }
  co_return result;
}

std::optional<std::vector<policy::IpAddress>> Resolver::cached(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = cache_.find(name);
  if (it == cache_.end()) return std::nullopt;
  if (std::chrono::steady_clock::now() >= it->second.expires) {
    cache_.erase(it);
    return std::nullopt;
  }
  return it->second.addresses;
}

awaitable<Result<std::vector<policy::IpAddress>>> Resolver::resolveUncached(std::string name) {
  auto ups = upstreams();
  if (ups.empty()) {
    // getaddrinfo blocks: run it on the pool, resume here when done.
    co_return co_await asio::co_spawn(
        pool_,
        [name]() -> awaitable<Result<std::vector<policy::IpAddress>>> {
          addrinfo hints{};
          hints.ai_family = AF_UNSPEC;
          hints.ai_socktype = SOCK_STREAM;
          addrinfo* res = nullptr;
          int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &res);
          if (rc != 0) {
            co_return fail(fmt::format("getaddrinfo {}: {}", name, ::gai_strerror(rc)), rc);
          }
          std::vector<policy::IpAddress> v4, v6;
          for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
            sockaddr_storage ss{};
            std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
            Endpoint ep = fromSockaddr(ss);
            auto& dst = ep.ip.isV4() ? v4 : v6;
            if (std::find(dst.begin(), dst.end(), ep.ip) == dst.end()) dst.push_back(ep.ip);
          }
          ::freeaddrinfo(res);
          v4.insert(v4.end(), v6.begin(), v6.end());
          co_return v4;
        },
        use_awaitable);
  }
  Error last{"no resolver upstream answered", 0};
  for (const auto& up : ups) {
    auto r = co_await queryUpstream(up, name);
    if (r) co_return r;
    last = r.error();
    if (last.code == 3) break;  // NXDOMAIN is an answer, not a failure of this upstream
  }
  co_return std::unexpected(last.wrap("resolve " + name));
}

awaitable<Result<std::vector<policy::IpAddress>>> Resolver::queryUpstream(Endpoint upstream,
                                                                          std::string name) {
  auto ex = co_await asio::this_coro::executor;
  // The timer handler may run after this frame is gone (expired but queued), so what it
  // touches is shared.
  struct State {
    explicit State(asio::any_io_executor e) : sock(e) {}
    asio::ip::udp::socket sock;
    bool timedOut = false;
  };
  auto st = std::make_shared<State>(ex);
  auto& sock = st->sock;
  boost::system::error_code ec;
  asio::ip::udp::endpoint ep(asio::ip::make_address(upstream.ip.str(), ec), upstream.port);
  if (ec) co_return fail("resolver address " + upstream.str());
  sock.open(ep.protocol(), ec);
  if (!ec) sock.connect(ep, ec);
  if (ec) co_return fail(fmt::format("resolver {}: {}", upstream.str(), ec.message()), ec.value());

  uint16_t idA = randomId();
  uint16_t idAaaa = static_cast<uint16_t>(idA + 1);
  auto qa = encodeDnsQuery(idA, name, kDnsTypeA);
  auto qaaaa = encodeDnsQuery(idAaaa, name, kDnsTypeAaaa);
  if (!qa) co_return std::unexpected(qa.error());
  co_await sock.async_send(asio::buffer(*qa), asio::redirect_error(use_awaitable, ec));
  if (!ec) {
    co_await sock.async_send(asio::buffer(*qaaaa), asio::redirect_error(use_awaitable, ec));
  }
  if (ec) co_return fail(fmt::format("resolver {}: send: {}", upstream.str(), ec.message()));

  asio::steady_timer timer(ex);
  timer.expires_after(timeout_);
  timer.async_wait([st](boost::system::error_code tec) {
    if (!tec) {
      st->timedOut = true;
      boost::system::error_code ignored;
      st->sock.cancel(ignored);
    }
  });
  std::optional<Result<std::vector<policy::IpAddress>>> a, aaaa;
  std::array<char, 1500> buf;
  while (!a || !aaaa) {
    size_t n = co_await sock.async_receive(asio::buffer(buf),
                                           asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    std::string_view msg(buf.data(), n);
    if (msg.size() < 2) continue;
    uint16_t id = get16(msg, 0);
    if (id == idA && !a) {
      a = parseDnsResponse(msg, idA, kDnsTypeA);
    } else if (id == idAaaa && !aaaa) {
      aaaa = parseDnsResponse(msg, idAaaa, kDnsTypeAaaa);
    }
    // A NXDOMAIN on A is final for the name; don't wait for AAAA.
    if (a && !*a && a->error().code == 3) break;
  }
  timer.cancel();
  std::vector<policy::IpAddress> out;
  if (a && *a) out = **a;
  if (aaaa && *aaaa) out.insert(out.end(), (*aaaa)->begin(), (*aaaa)->end());
  if (!out.empty()) co_return out;
  if (a && !*a) co_return std::unexpected(a->error().wrap("resolver " + upstream.str()));
  if (st->timedOut) co_return fail(fmt::format("resolver {}: timeout", upstream.str()), ETIMEDOUT);
  if (ec) co_return fail(fmt::format("resolver {}: {}", upstream.str(), ec.message()), ec.value());
  co_return fail(fmt::format("resolver {}: no address for {}", upstream.str(), name));
}

}  // namespace tollgate::proxy
