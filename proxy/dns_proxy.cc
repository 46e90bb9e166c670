#include "proxy/dns_proxy.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "policy/snapshot.h"
#include "proxy/event_journal.h"
#include "proxy/resolver.h"
#include "proxy/socket_registry.h"
#include "proxy/udp_receive.h"

namespace tollgate::proxy {
namespace {

constexpr std::string_view kLog = "dns";

uint16_t randomId() {
  uint16_t id = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id) != 1) {
    id = static_cast<uint16_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return id;
}

bool underSuffix(std::string_view name, std::string_view suffix) {
  while (!suffix.empty() && suffix.back() == '.') suffix.remove_suffix(1);
  if (suffix.empty()) return false;
  if (name.size() == suffix.size()) return name == suffix;
  return name.size() > suffix.size() && name.ends_with(suffix) &&
         name[name.size() - suffix.size() - 1] == '.';
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

bool DnsProxy::forbiddenAnswer(const policy::IpAddress& ip,
                               const std::vector<policy::IpAddress>& node) {
  static const auto kForbidden = [] {
    std::vector<policy::Cidr> v;
    for (const char* c : {"127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/32", "::1/128", "fe80::/10",
                          "::/128"}) {
      v.push_back(*policy::Cidr::parse(c));
    }
    return v;
  }();
  policy::IpAddress a = ip.unmapped();
  for (const auto& c : kForbidden) {
    if (c.contains(a)) return true;
  }
  for (const auto& n : node) {
    if (n.unmapped() == a) return true;
  }
  return false;
}

Result<std::shared_ptr<DnsProxy>> DnsProxy::create(ProxyInputs& inputs, PodInfo pod,
                                                   NetnsRunner runner, Options options,
                                                   DnsCache& cache,
                                                   std::shared_ptr<PodDnsTable> table) {
  if (!table) table = std::make_shared<PodDnsTable>();
  std::shared_ptr<DnsProxy> p(new DnsProxy(inputs, std::move(pod), std::move(runner),
                                           std::move(options), cache, std::move(table)));
  for (bool v6 : {false, true}) {
    Endpoint bind{*policy::IpAddress::parse(v6 ? "::1" : "127.0.0.1"), p->options_.port};
    auto ufd = p->runner_([bind, reg = inputs.sockets, owner = p->pod_.key()]() {
      return obtainSocket(reg, SocketKey{owner, SocketTransport::Udp, bind.str()},
                          [bind] { return makeUdpSocket(bind); });
    });
    if (!ufd) {
      if (v6 && (ufd.error().code == EADDRNOTAVAIL || ufd.error().code == EAFNOSUPPORT)) {
        log::warn(kLog, "pod {}: no IPv6 DNS listener: {}", p->pod_.key(), ufd.error().str());
        continue;
      }
      return std::unexpected(ufd.error().wrap(fmt::format("pod {}: DNS udp", p->pod_.key())));
    }
    auto u = std::make_unique<asio::ip::udp::socket>(asio::make_strand(inputs.io));
    boost::system::error_code ec;
    u->assign(v6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), *ufd, ec);
    if (ec) {
      ::close(*ufd);
      return fail(fmt::format("pod {}: assign DNS udp: {}", p->pod_.key(), ec.message()));
    }
    p->udp_.push_back(std::move(u));

    auto tfd = p->runner_([bind, reg = inputs.sockets, owner = p->pod_.key()]() {
      return obtainSocket(reg, SocketKey{owner, SocketTransport::Tcp, bind.str()},
                          [bind] { return makeListener(bind, 128); });
    });
    if (!tfd) return std::unexpected(tfd.error().wrap(fmt::format("pod {}: DNS tcp", p->pod_.key())));
    auto t = std::make_unique<asio::ip::tcp::acceptor>(asio::make_strand(inputs.io));
    t->assign(v6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), *tfd, ec);
    if (ec) {
      ::close(*tfd);
      return fail(fmt::format("pod {}: assign DNS tcp: {}", p->pod_.key(), ec.message()));
    }
    p->tcp_.push_back(std::move(t));
  }
  return p;
}

DnsProxy::~DnsProxy() {
  boost::system::error_code ec;
  for (auto& u : udp_) u->close(ec);
  for (auto& t : tcp_) t->close(ec);
}

void DnsProxy::start() {
  open_ = true;
  for (auto& u : udp_) {
    asio::co_spawn(u->get_executor(),
                   [self = shared_from_this(), s = u.get()]() { return self->udpLoop(s); },
                   asio::detached);
  }
  for (auto& t : tcp_) {
    asio::co_spawn(t->get_executor(),
                   [self = shared_from_this(), a = t.get()]() { return self->tcpAcceptLoop(a); },
                   asio::detached);
  }
}

void DnsProxy::close() {
  open_ = false;
  for (auto& u : udp_) {
    asio::post(u->get_executor(), [s = u.get(), keep = weak_from_this()] {
      if (keep.expired()) return;
      boost::system::error_code ec;
      s->close(ec);
    });
  }
  for (auto& t : tcp_) {
    asio::post(t->get_executor(), [a = t.get(), keep = weak_from_this()] {
      if (keep.expired()) return;
      boost::system::error_code ec;
      a->close(ec);
    });
  }
}

bool DnsProxy::admitQuery() {
  static const policy::TollgateConfig kDefaults;
  policy::SnapshotPtr snap = inputs_.snapshots.load();
  const policy::TollgateConfig& mesh = snap ? snap->mesh() : kDefaults;
  const uint32_t rate = mesh.dnsQueriesPerSecond;
  const uint32_t burst = mesh.dnsQueryBurst;
  if (rate == 0) return true;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(rateMu_);
  if (tokens_ < 0) {
    tokens_ = burst;
  } else {
    std::chrono::duration<double> dt = now - refilled_;
    tokens_ = std::min<double>(burst, tokens_ + dt.count() * rate);
  }
  refilled_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return true;
  }
  counters_.rateLimited++;
  ++droppedSinceLog_;
  if (now - lastRateLog_ >= std::chrono::seconds(1)) {
    log::warn(kLog, "pod {}: DNS queries over {}/s (burst {}): {} dropped since the last report",
              pod_.key(), rate, burst, droppedSinceLog_);
    lastRateLog_ = now;
    droppedSinceLog_ = 0;
  }
  return false;
}

awaitable<void> DnsProxy::udpLoop(asio::ip::udp::socket* sock) {
  for (;;) {
    boost::system::error_code ec;
    Datagram d = co_await receiveDatagram(*sock, ec);
    if (!open_ || !sock->is_open() || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    // Over the rate: dropped before any work is spawned for it (a flood costs one receive each).
    if (!admitQuery()) continue;
    asio::ip::udp::endpoint from = d.from;
    std::vector<uint8_t> query(d.bytes.begin(), d.bytes.end());
    // One coroutine per query: a slow upstream must not hold up the pod's other lookups.
    asio::co_spawn(
        sock->get_executor(),
        [self = shared_from_this(), sock, from, q = std::move(query)]() mutable -> awaitable<void> {
          size_t maxBytes = 512;
          if (auto m = parseDnsMessage(q)) maxBytes = maxUdpResponseBytes(*m);
          auto out = co_await self->answer(q, maxBytes);
          if (!out || !self->open_) co_return;
          boost::system::error_code sec;
          co_await sock->async_send_to(asio::buffer(*out), from,
                                       asio::redirect_error(use_awaitable, sec));
        },
        asio::detached);
  }
}

awaitable<void> DnsProxy::tcpAcceptLoop(asio::ip::tcp::acceptor* acceptor) {
  for (;;) {
    boost::system::error_code ec;
    auto sock = co_await acceptor->async_accept(asio::make_strand(inputs_.io),
                                                asio::redirect_error(use_awaitable, ec));
    if (!open_ || !acceptor->is_open() || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    asio::co_spawn(sock.get_executor(),
                   [self = shared_from_this(), s = std::move(sock)]() mutable {
                     return self->tcpSession(std::move(s));
                   },
                   asio::detached);
  }
}

awaitable<void> DnsProxy::tcpSession(asio::ip::tcp::socket socket) {
  // Idle connections are closed after the upstream timeout times a few (RFC 7766 §6.2.3). The
  // timer handler may run after this frame is gone (expired but queued), so the socket is shared.
  auto ex = co_await asio::this_coro::executor;
  auto shared = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
  auto& sock = *shared;
  std::vector<uint8_t> stream;
  std::array<uint8_t, 4096> buf;
  for (;;) {
    for (;;) {
      auto frame = nextDnsTcpFrame(stream);
      if (frame.invalid) {
        counters_.malformed++;
        co_return;
      }
      if (frame.consumed == 0) break;
      std::vector<uint8_t> q(frame.message.begin(), frame.message.end());
      stream.erase(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(frame.consumed));
      if (!admitQuery()) co_return;  // over the rate: the connection ends (the client retries)
      auto out = co_await answer(std::move(q), 0);
      if (!out) co_return;  // malformed: a TCP stream cannot resynchronise
      auto framed = frameDnsTcp(*out);
      if (!framed) co_return;
      boost::system::error_code wec;
      co_await asio::async_write(sock, asio::buffer(*framed),
                                 asio::redirect_error(use_awaitable, wec));
      if (wec) co_return;
    }
    asio::steady_timer timer(ex);
    timer.expires_after(options_.upstreamTimeout * 5);
    timer.async_wait([shared](boost::system::error_code tec) {
      if (!tec) {
        boost::system::error_code ignored;
        shared->cancel(ignored);
      }
    });
    boost::system::error_code ec;
    size_t n = co_await sock.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    timer.cancel();
    if (ec || !open_) co_return;
    stream.insert(stream.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    if (stream.size() > 2 + kDnsMaxMessageBytes) co_return;
  }
}

awaitable<std::optional<std::vector<uint8_t>>> DnsProxy::answer(std::vector<uint8_t> query,
                                                                size_t maxBytes) {
  counters_.queries++;
  auto parsed = parseDnsMessage(query);
  if (!parsed || parsed->header.qr()) {
    counters_.malformed++;
    co_return std::nullopt;  // unparseable or a response: nothing safe to answer with
  }
  if (parsed->questions.size() != 1) {
    counters_.malformed++;
    if (parsed->questions.empty()) co_return std::nullopt;
    auto r = buildDnsErrorResponse(query, DnsRcode::FormErr);
    co_return r ? std::optional(std::move(*r)) : std::nullopt;
  }
  if (parsed->header.opcode() != 0) {
    auto r = buildDnsErrorResponse(query, DnsRcode::NotImp);
    co_return r ? std::optional(std::move(*r)) : std::nullopt;
  }

  policy::SnapshotPtr snap = inputs_.snapshots.load();
  const std::string& name = parsed->questions[0].name;
  if (snap) {
    const auto& mesh = snap->mesh();
    bool strict = mesh.dnsMode ? *mesh.dnsMode == policy::DnsMode::Strict
                               : mesh.outboundMode == policy::OutboundMode::RegistryOnly;
    if (strict) {
      bool ok = false;
      for (const auto& s : mesh.clusterDomainSuffixes) ok = ok || underSuffix(name, lower(s));
      if (!ok) {
        policy::PodIdentity id{pod_.ns, pod_.name, pod_.labels, pod_.serviceAccount};
        if (auto known = snap->identityOf(pod_.ns, pod_.name)) id = std::move(*known);
        ok = snap->nameVisible(id, name);
      }
      if (!ok) {
        counters_.blocked++;
        log::debug(kLog, "pod {}: {} not in the registry: NXDOMAIN", pod_.key(), name);
        if (inputs_.events) {
          proxy::Event e;
          e.kind = "dns";
          e.ns = pod_.ns;
          e.pod = pod_.name;
          e.text = fmt::format("{} not in the registry: NXDOMAIN", name);
          e.fields = {{"name", name}, {"answer", "NXDOMAIN"}, {"reason", "not_in_registry"}};
          inputs_.events->append(std::move(e));
        }
        auto r = buildNxDomain(query);
        co_return r ? std::optional(std::move(*r)) : std::nullopt;
      }
    }
  }

  std::optional<std::vector<uint8_t>> resp = cache_.lookup(*parsed);
  if (resp) {
    counters_.cacheHits++;
  } else {
    resp = co_await forward(query);
    if (!resp) {
      counters_.servfail++;
      auto r = buildServFail(query);
      co_return r ? std::optional(std::move(*r)) : std::nullopt;
    }
    cache_.insert(*resp);
  }

  const auto& node = options_.nodeAddresses;
  auto filtered = filterDnsAnswers(*resp, [&node](const policy::IpAddress& ip) {
    return !forbiddenAnswer(ip, node);
  });
  if (!filtered) {
    counters_.servfail++;
    auto r = buildServFail(query);
    co_return r ? std::optional(std::move(*r)) : std::nullopt;
  }
  if (filtered->removed > 0) {
    counters_.stripped += filtered->removed;
    log::warn(kLog, "pod {}: removed {} answer(s) for {} pointing at loopback/link-local/node",
              pod_.key(), filtered->removed, name);
  }
  if (auto m = parseDnsMessage(filtered->wire)) {
    table_->recordResponse(*m, std::chrono::steady_clock::now());
  }
  if (maxBytes > 0 && filtered->wire.size() > maxBytes) {
    auto r = buildTruncatedResponse(query);
    co_return r ? std::optional(std::move(*r)) : std::nullopt;
  }
  co_return std::move(filtered->wire);
}

awaitable<std::optional<std::vector<uint8_t>>> DnsProxy::forward(
    const std::vector<uint8_t>& query) {
  std::vector<Endpoint> ups;
  if (auto snap = inputs_.snapshots.load()) {
    for (const auto& u : snap->mesh().dnsUpstreams) {
      if (auto ep = parseResolverAddress(u)) ups.push_back(*ep);
    }
  }
  // The upstream sees our id, not the pod's: a pod cannot steer which answer we accept.
  uint16_t clientId = static_cast<uint16_t>((query[0] << 8) | query[1]);
  std::vector<uint8_t> q = query;
  uint16_t id = randomId();
  q[0] = static_cast<uint8_t>(id >> 8);
  q[1] = static_cast<uint8_t>(id);
  for (const auto& up : ups) {
    auto r = co_await queryUdp(up, q);
    if (r && isTruncated(*r)) {
      counters_.tcpRetries++;
      r = co_await queryTcp(up, q);
    }
    if (!r) continue;
    counters_.forwarded++;
    (*r)[0] = static_cast<uint8_t>(clientId >> 8);
    (*r)[1] = static_cast<uint8_t>(clientId);
    co_return r;
  }
  co_return std::nullopt;
}

namespace {
// Whether `resp` answers `q` (same id and first question).
bool answers(std::span<const uint8_t> resp, std::span<const uint8_t> q) {
  auto rm = parseDnsMessage(resp);
  auto qm = parseDnsMessage(q);
  if (!rm || !qm || !rm->header.qr() || rm->header.id != qm->header.id) return false;
  if (rm->questions.size() != 1 || qm->questions.size() != 1) return false;
  const auto &a = rm->questions[0], &b = qm->questions[0];
  return a.name == b.name && a.qtype == b.qtype && a.qclass == b.qclass;
}
}  // namespace

awaitable<std::optional<std::vector<uint8_t>>> DnsProxy::queryUdp(
    const Endpoint& upstream, const std::vector<uint8_t>& query) {
  auto ex = co_await asio::this_coro::executor;
  struct State {
    explicit State(asio::any_io_executor e) : sock(e) {}
    asio::ip::udp::socket sock;
    bool expired = false;
  };
  auto st = std::make_shared<State>(ex);
  boost::system::error_code ec;
  asio::ip::udp::endpoint ep(asio::ip::make_address(upstream.ip.str(), ec), upstream.port);
  if (ec) co_return std::nullopt;
  st->sock.open(ep.protocol(), ec);
  if (!ec) st->sock.connect(ep, ec);
  if (!ec) co_await st->sock.async_send(asio::buffer(query), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return std::nullopt;
  asio::steady_timer timer(ex);
  timer.expires_after(options_.upstreamTimeout);
  timer.async_wait([st](boost::system::error_code tec) {
    if (!tec) {
      st->expired = true;
      boost::system::error_code ignored;
      st->sock.cancel(ignored);
    }
  });
  std::vector<uint8_t> buf(kDnsMaxMessageBytes);
  for (;;) {
    // A stray datagram whose completion was queued when the timer cancelled: stop here rather
    // than wait again with no timeout.
    if (st->expired) break;
    size_t n = co_await st->sock.async_receive(asio::buffer(buf),
                                               asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    buf.resize(n);
    if (answers(buf, query)) {
      timer.cancel();
      co_return buf;
    }
    buf.resize(kDnsMaxMessageBytes);  // a stray or spoofed datagram: keep waiting
  }
  timer.cancel();
  co_return std::nullopt;
}

awaitable<std::optional<std::vector<uint8_t>>> DnsProxy::queryTcp(
    const Endpoint& upstream, const std::vector<uint8_t>& query) {
  auto ex = co_await asio::this_coro::executor;
  struct State {
    explicit State(asio::any_io_executor e) : sock(e) {}
    asio::ip::tcp::socket sock;
  };
  auto st = std::make_shared<State>(ex);
  boost::system::error_code ec;
  asio::ip::tcp::endpoint ep(asio::ip::make_address(upstream.ip.str(), ec), upstream.port);
  if (ec) co_return std::nullopt;
  asio::steady_timer timer(ex);
  timer.expires_after(options_.upstreamTimeout);
  timer.async_wait([st](boost::system::error_code tec) {
    if (!tec) {
      boost::system::error_code ignored;
      st->sock.close(ignored);
    }
  });
  auto framed = frameDnsTcp(query);
  if (!framed) co_return std::nullopt;
  co_await st->sock.async_connect(ep, asio::redirect_error(use_awaitable, ec));
  if (!ec) co_await asio::async_write(st->sock, asio::buffer(*framed),
                                      asio::redirect_error(use_awaitable, ec));
  std::array<uint8_t, 2> len{};
  if (!ec) co_await asio::async_read(st->sock, asio::buffer(len),
                                     asio::redirect_error(use_awaitable, ec));
  std::vector<uint8_t> msg;
  if (!ec) {
    msg.resize((static_cast<size_t>(len[0]) << 8) | len[1]);
    co_await asio::async_read(st->sock, asio::buffer(msg), asio::redirect_error(use_awaitable, ec));
  }
  timer.cancel();
  if (ec || msg.empty() || !answers(msg, query)) co_return std::nullopt;
  co_return msg;
}

}  // namespace tollgate::proxy
