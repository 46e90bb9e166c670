#include "proxy/session.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/event_journal.h"
#include "proxy/http1_sniffer.h"
#include "proxy/metrics.h"
#include "proxy/outbound_listener.h"
#include "proxy/relay_buffer.h"
#include "proxy/resolver.h"
#include "proxy/sniff.h"
#include "proxy/tls_client_hello.h"
#include "proxy/tunnel_pool.h"

namespace tollgate::proxy {
namespace {

using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kLog = "proxy";
constexpr size_t kSpliceChunk = 64 * 1024;
constexpr auto kDrainAfterDeny = std::chrono::milliseconds(1000);

bool isLoopback(const policy::IpAddress& ip) {
  if (ip.isV4()) return ip.bytes[0] == 127;
  static const auto kV6Loopback = *policy::IpAddress::parse("::1");
  return ip == kV6Loopback;
}

std::span<const uint8_t> asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string_view protocolName(int p) {
  switch (p) {
    case 0: return "tls";
    case 1: return "http";
    default: return "tcp";
  }
}

std::string_view statusPhrase(int status) {
  switch (status) {
    case 403: return "Forbidden";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

bool sameRoute(const policy::Route& a, const policy::Route& b) {
  return a.kind == b.kind && a.upstreamHost == b.upstreamHost &&
         a.upstreamPort == b.upstreamPort && a.byName == b.byName &&
         a.gatewayName == b.gatewayName;
}

// A pipe for splice(), closed on scope exit.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) fds[0] = fds[1] = -1;
  }
  ~Pipe() {
    if (fds[0] >= 0) ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
  bool ok() const { return fds[0] >= 0; }
};

// What `s` has now, without waiting: would_block when nothing, eof at the peer's FIN.
size_t readNow(asio::ip::tcp::socket& s, asio::mutable_buffer b, error_code& ec) {
  if (!s.is_open()) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  for (;;) {
    ssize_t n = ::recv(s.native_handle(), b.data(), b.size(), MSG_DONTWAIT);
    if (n > 0) {
      ec = {};
      return static_cast<size_t>(n);
    }
    if (n == 0) {
      ec = asio::error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      ec = asio::error::would_block;
    } else {
      ec = error_code(errno, asio::error::get_system_category());
    }
    return 0;
  }
}

// The next bytes of `s` into `buf`. While bytes keep coming the buffer leased for the previous
// read is reused; once the socket is drained it is given back and the wait for readability holds
// none, so an idle direction holds no buffer (issue 15). Errors as async_read_some's.
awaitable<size_t> readLeased(asio::ip::tcp::socket& s, std::optional<RelayBuffer>& buf,
                             error_code& ec) {
  for (;;) {
    if (buf) {
      size_t n = readNow(s, buf->buffer(), ec);
      if (ec != asio::error::would_block) co_return n;
      buf.reset();
    }
    co_await s.async_wait(asio::socket_base::wait_read, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return 0;
    buf.emplace();
  }
}

}  // namespace

std::string spiffeId(std::string_view trustDomain, std::string_view ns, std::string_view sa) {
  return fmt::format("spiffe://{}/ns/{}/sa/{}", trustDomain, ns, sa);
}

Session::Session(std::shared_ptr<OutboundListener> listener, asio::ip::tcp::socket client)
    : listener_(std::move(listener)),
      client_(std::move(client)),
      upstream_(client_.get_executor()),
      deadline_(client_.get_executor()),
      done_(client_.get_executor()),
      idle_(client_.get_executor()) {}

Session::~Session() = default;

void Session::start() {
  asio::co_spawn(
      client_.get_executor(),
      [self = shared_from_this()]() -> awaitable<void> {
        try {
          co_await self->run();
        } catch (const std::exception& e) {
          // Nothing on the data plane should throw; if a library does, the session ends closed.
          log::error(kLog, "session {}: {}", self->record_.podName, e.what());
          self->record_.decision = "deny";
          self->record_.reason = "internal_error";
          self->closeBoth(true);
        }
        self->finish();
      },
      asio::detached);
}

void Session::abort() {
  asio::post(client_.get_executor(), [self = shared_from_this()] { self->closeBoth(true); });
}

void Session::revalidate() {
  asio::post(client_.get_executor(), [self = shared_from_this()] { self->recheck(); });
}

void Session::describe(std::function<void(AccessRecord)> done) {
  asio::post(client_.get_executor(), [self = shared_from_this(), done = std::move(done)] {
    AccessRecord r = self->record_;
    r.durationMs = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             Clock::now() - self->startedAt_)
                                             .count());
    done(std::move(r));
  });
}

void Session::recheck() {
  if (!relaying_ || closing_ || finished_) return;
  auto& in = listener_->inputs();
  policy::SnapshotPtr snap = in.snapshots.load();
  if (!snap || snap == snapshot_) return;
  policy::PodIdentity id = identityIn(*snap);
  policy::Decision d = decideWith(*snap, id, decidedName_);
  std::string why;
  if (!d.allowed()) {
    why = std::string(policy::toString(d.reason));
  } else if (!sameRoute(d.route, decision_.route)) {
    // Still allowed, but no longer the way it is carried (e.g. a gateway is now required).
    why = "route_changed";
  }
  if (why.empty()) {
    // Later requests on a kept-alive HTTP connection are decided by the new config too.
    snapshot_ = std::move(snap);
    identity_ = std::move(id);
    decision_ = std::move(d);
    return;
  }
  std::string_view name = record_.name;
  if (name.empty()) name = "-";
  std::string by = d.decidedBy.str();
  if (snap->mesh().revocation == policy::Revocation::Keep) {
    if (revocationKept_) return;
    revocationKept_ = true;
    in.metrics.countRevocation(listener_->pod().key(), why, false);
    log::warn(kLog, "{}/{} -> {} ({}): would revoke ({}, {}, config generation {}); kept open "
              "(revocation: keep)",
              record_.podNs, record_.podName, record_.originalDst, name, why, by,
              snap->generation());
    return;
  }
  in.metrics.countRevocation(listener_->pod().key(), why, true);
  log::warn(kLog, "{}/{} -> {} ({}): revoked ({}, {}, config generation {}): connection cut",
            record_.podNs, record_.podName, record_.originalDst, name, why, by,
            snap->generation());
  record_.decision = "deny";
  record_.reason = std::string(policy::toString(policy::Reason::DeniedRevoked));
  record_.decidedBy = std::move(by);
  closeBoth(true);
}

void Session::armDeadline(std::chrono::milliseconds d) {
  uint64_t gen = ++deadlineGen_;
  deadlineFired_ = false;
  deadline_.expires_after(d);
  deadline_.async_wait([self = shared_from_this(), gen](error_code ec) {
    // A newer arm/disarm makes an already-queued expiry stale.
    if (ec || gen != self->deadlineGen_) return;
    self->deadlineFired_ = true;
    error_code ignored;
    self->client_.cancel(ignored);
    self->upstream_.cancel(ignored);
  });
}

void Session::disarmDeadline() {
  ++deadlineGen_;
  deadline_.cancel();
}

void Session::closeBoth(bool reset) {
  closing_ = true;
  error_code ec;
  if (client_.is_open()) {
    if (reset) armReset(client_.native_handle());
    client_.close(ec);
  }
  if (upstream_.is_open()) {
    if (reset) armReset(upstream_.native_handle());
    upstream_.close(ec);
  }
  if (tunnel_) {
    // Only a relay that ended on its own may let a queued END_STREAM flush; anything cut short
    // (errors, idle, abort) resets the stream so the gateway side closes too.
    if (reset || pumpsRunning_ > 0) {
      tunnel_->reset();
    } else {
      tunnel_->release();
    }
  }
  done_.cancel();
  idle_.cancel();
}

void Session::refuse(std::string_view reason, std::string_view detail) {
  record_.decision = "deny";
  record_.reason = std::string(reason);
  log::info(kLog, "{}/{} -> {}: refused ({}): {}", record_.podNs, record_.podName,
            record_.originalDst.empty() ? "?" : record_.originalDst, reason, detail);
  closeBoth(true);
}

void Session::finish() {
  if (finished_) return;
  finished_ = true;
  disarmDeadline();
  closeBoth(false);
  record_.durationMs = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - startedAt_).count());
  auto& in = listener_->inputs();
  if (record_.decision.empty()) record_.decision = "deny";
  in.metrics.countConnection(record_.decision, record_.reason.empty() ? "-" : record_.reason);
  in.metrics.active--;
  in.accessLog.write(record_);
  if (in.events) in.events->append(connectionEvent(record_));
  listener_->sessionEnded(this);
}

policy::Decision Session::decideName(const std::optional<std::string>& name) {
  return decideWith(*snapshot_, identity_, name);
}

policy::PodIdentity Session::identityIn(const policy::Snapshot& snapshot) const {
  const PodInfo& pod = listener_->pod();
  if (auto id = snapshot.identityOf(pod.ns, pod.name)) return *id;
  return policy::PodIdentity{pod.ns, pod.name, pod.labels, pod.serviceAccount};
}

policy::Decision Session::decideWith(const policy::Snapshot& snapshot,
                                     const policy::PodIdentity& id,
                                     const std::optional<std::string>& name) const {
  policy::FlowQuery q;
  q.source = id;
  q.dstIp = originalDst_.ip;
  q.dstPort = originalDst_.port;
  q.l4 = policy::L4Protocol::Tcp;
  q.app = protocol_ == Sniffed::Tls    ? policy::AppProtocol::Tls
          : protocol_ == Sniffed::Http ? policy::AppProtocol::Http
                                       : policy::AppProtocol::Tcp;
  q.name = name;
  return snapshot.decide(q);
}

std::optional<std::string> Session::nameForDecision() {
  const auto& table = listener_->dnsTable();
  if (!table || snapshot_->isInCluster(originalDst_.ip)) return sniffedName_;
  auto now = std::chrono::steady_clock::now();
  if (!sniffedName_) {
    // Opaque flow: the name the pod resolved this address as, if the pod may reach it at all.
    for (auto& n : table->namesFor(originalDst_.ip, now)) {
      if (snapshot_->nameVisible(identity_, n)) return n;
    }
    return std::nullopt;
  }
  std::string_view name = *sniffedName_;
  // A Host header may carry a port; an IP literal was never resolved by anyone.
  if (auto colon = name.rfind(':'); colon != std::string_view::npos &&
                                    name.find(':') == colon && !name.starts_with('[')) {
    name = name.substr(0, colon);
  }
  if (!policy::IpAddress::parse(name) && !name.starts_with('[') &&
      !table->resolvedAs(originalDst_.ip, name, now)) {
    record_.nameAddrMismatch = true;
    listener_->inputs().metrics.nameAddrMismatch++;
  }
  return sniffedName_;
}

awaitable<void> Session::run() {
  auto& in = listener_->inputs();
  const PodInfo& pod = listener_->pod();
  startedAt_ = Clock::now();
  lastActivity_ = startedAt_;
  record_.start = std::chrono::system_clock::now();
  record_.podNs = pod.ns;
  record_.podName = pod.name;
  in.metrics.active++;

  int fd = client_.native_handle();
  setNoDelay(fd);
  auto local = localEndpoint(fd);
  if (!local) {
    in.metrics.refusedUnattributed++;
    refuse("unattributed", local.error().str());
    co_return;
  }
  auto orig = in.originalDestination(fd, *local);
  if (!orig) {
    in.metrics.refusedUnattributed++;
    refuse("unattributed", orig.error().str());
    co_return;
  }
  originalDst_ = *orig;
  record_.originalDst = orig->str();
  const auto& own = in.options.ownPorts;
  if (*orig == *local ||
      (isLoopback(orig->ip) && std::find(own.begin(), own.end(), orig->port) != own.end())) {
    in.metrics.refusedLoops++;
    refuse("loop", "original destination is the proxy itself");
    co_return;
  }

  snapshot_ = in.snapshots.load();
  if (!snapshot_) {
    in.metrics.refusedUnattributed++;
    refuse("no_config", "no policy snapshot loaded");
    co_return;
  }
  identity_ = identityIn(*snapshot_);
  spiffe_ = spiffeId(snapshot_->mesh().trustDomain, identity_.ns, identity_.serviceAccount);
  record_.identity = spiffe_;

  if (!co_await sniff()) co_return;
  record_.protocol = std::string(protocolName(static_cast<int>(protocol_)));

  decidedName_ = nameForDecision();
  decision_ = decideName(decidedName_);
  // (No conditional temporaries in coroutines: GCC 12 miscompiles some of them.)
  if (!decision_.name.empty()) {
    record_.name = decision_.name;
  } else if (sniffedName_) {
    record_.name = *sniffedName_;
  }
  record_.decision = std::string(policy::toString(decision_.verdict));
  record_.reason = std::string(policy::toString(decision_.reason));
  record_.decidedBy = decision_.decidedBy.str();
  record_.route = decision_.route.str();

  if (!decision_.allowed()) {
    if (protocol_ == Sniffed::Http) {
      co_await sendHttpError(403, "Forbidden", "x-tollgate-denied", policy::toString(decision_.reason));
    } else {
      closeBoth(true);
    }
    co_return;
  }

  if (!co_await connectUpstream()) co_return;
  // From here on every reload re-checks this connection; one that happened since the decision
  // above is caught now.
  relaying_ = true;
  recheck();
  if (closing_) co_return;
  co_await relay();
}

awaitable<bool> Session::sniff() {
  auto& in = listener_->inputs();
  const size_t cap = in.options.sniffMaxBytes;
  armDeadline(in.options.sniffTimeout);
  std::array<char, 4096> buf;
  for (;;) {
    auto bytes = asBytes(buffered_);
    Protocol p = classify(bytes);
    if (p == Protocol::Tls) {
      auto r = sniffClientHello(bytes, cap);
      if (r.status == SniffStatus::Done) {
        protocol_ = Sniffed::Tls;
        if (!r.info.sni.empty()) sniffedName_ = r.info.sni;
        break;
      }
      if (r.status != SniffStatus::NeedMore) {
        record_.protocol = "tls";
        refuse("invalid_tls", r.error);
        co_return false;
      }
    } else if (p == Protocol::Http) {
      auto r = sniffHttpRequest(bytes, cap);
      if (r.status == SniffStatus::Done) {
        protocol_ = Sniffed::Http;
        if (!r.head.host.empty()) sniffedName_ = r.head.host;
        upgradeRequested_ = r.head.upgrade;
        upgradeHeadBytes_ = r.head.headerBytes;
        upgradeProtocols_ = r.head.upgradeProtocols;
        if (auto why = refusedUpgrade(r.head)) upgradeRefusal_ = std::string(*why);
        break;
      }
      if (r.status == SniffStatus::NotThisProtocol) {
        protocol_ = Sniffed::Opaque;
        break;
      }
      if (r.status == SniffStatus::Invalid) {
        disarmDeadline();
        protocol_ = Sniffed::Http;
        record_.protocol = "http";
        record_.decision = "deny";
        // The head did not end within the cap (sniffMaxBytes): its own reason and status, so a
        // header flood is told apart from a malformed request.
        bool tooLarge = buffered_.size() >= cap;
        record_.reason = tooLarge ? "header_too_large" : "invalid_request";
        log::info(kLog, "{}/{} -> {}: invalid HTTP request: {}", record_.podNs, record_.podName,
                  record_.originalDst, r.error);
        if (tooLarge) {
          co_await sendHttpError(431, "Request Header Fields Too Large", "x-tollgate-denied",
                                 "header_too_large");
        } else {
          co_await sendHttpError(400, "Bad Request", "x-tollgate-denied", "invalid_request");
        }
        co_return false;
      }
    } else if (p == Protocol::Opaque) {
      protocol_ = Sniffed::Opaque;
      break;
    }
    if (buffered_.size() >= cap) {
      refuse("sniff_too_large", fmt::format("no complete message in {} bytes", cap));
      co_return false;
    }
    error_code ec;
    size_t n = 0;
    if (deadlineFired_) {
      // The deadline fired while the last read's completion was already queued: its cancel
      // found nothing to cancel, so a new read would wait with no deadline at all (a client
      // trickling one byte at a time then kept its connection forever).
      ec = asio::error::operation_aborted;
    } else {
      n = co_await client_.async_read_some(
          asio::buffer(buf.data(), std::min(buf.size(), cap - buffered_.size())),
          asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      if (deadlineFired_) {
        in.metrics.sniffTimeouts++;
        if (buffered_.empty()) {
          // Server-speaks-first protocols (SMTP, MySQL...) send nothing: decide by address alone,
          // which only an address entry can allow.
          log::debug(kLog, "{}/{} -> {}: nothing sent within the sniff deadline; opaque",
                     record_.podNs, record_.podName, record_.originalDst);
          protocol_ = Sniffed::Opaque;
          break;
        }
        refuse("sniff_timeout", fmt::format("incomplete first message after {} bytes",
                                            buffered_.size()));
        co_return false;
      }
      if (ec == asio::error::eof && buffered_.empty()) {
        record_.reason = "client_closed";
        closeBoth(false);
        co_return false;
      }
      refuse("client_error", ec.message());
      co_return false;
    }
    buffered_.append(buf.data(), n);
  }
  disarmDeadline();
  co_return true;
}

awaitable<bool> Session::connectUpstream() {
  auto& in = listener_->inputs();
  const PodInfo& pod = listener_->pod();
  const policy::Route& route = decision_.route;
  bool http = protocol_ == Sniffed::Http;
  auto failClosed = [&](std::string_view reason, std::string_view detail) -> awaitable<void> {
    record_.decision = "deny";
    record_.reason = std::string(reason);
    std::string_view name = record_.name;
    if (name.empty()) name = "-";
    log::warn(kLog, "{}/{} -> {} ({}): {}: {}", record_.podNs, record_.podName,
              record_.originalDst, name, reason, detail);
    if (http) {
      co_await sendHttpError(502, "Bad Gateway", "x-tollgate-error", reason);
    } else {
      closeBoth(true);
    }
  };

  if (route.kind == policy::Route::Kind::Gateway) {
    // Only ever through the tunnel: a gateway route never falls back to a direct connection.
    bool ok = co_await connectTunnel();
    co_return ok;
  }
  uint16_t port = route.upstreamPort != 0 ? route.upstreamPort : originalDst_.port;
  std::vector<policy::IpAddress> candidates;
  if (route.byName && !route.upstreamHost.empty()) {
    auto r = co_await in.resolver.resolve(route.upstreamHost);
    if (!r || r->empty()) {
      in.metrics.resolverFailures++;
      // Kept out of the co_await expression: GCC 12 double-destroys conditional temporaries
      // there.
      std::string detail = r ? std::string("no addresses") : r.error().str();
      co_await failClosed("resolve_failed", detail);
      co_return false;
    }
    candidates = std::move(*r);
  } else {
    candidates.push_back(originalDst_.ip);
  }
  // The pod's own address family first: its netns may only route that one.
  std::stable_partition(candidates.begin(), candidates.end(), [&](const policy::IpAddress& a) {
    return a.isV4() == originalDst_.ip.isV4();
  });

  std::string lastError = "no usable address";
  const auto& own = in.options.ownPorts;
  for (const auto& ip : candidates) {
    if (isLoopback(ip) && std::find(own.begin(), own.end(), port) != own.end()) {
      lastError = "upstream would loop into the proxy";
      continue;
    }
    int family = ip.isV4() ? AF_INET : AF_INET6;
    uint32_t mark = pod.mark;
    bool fromNode =
        in.options.externalFromNode && route.kind != policy::Route::Kind::InCluster;
    auto fd = fromNode ? makeMarkedSocket(family, mark)
                       : listener_->runner()([family, mark]() { return makeMarkedSocket(family, mark); });
    if (!fd) {
      lastError = fd.error().str();
      continue;
    }
    error_code ec;
    upstream_.assign(family == AF_INET ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), *fd, ec);
    if (ec) {
      ::close(*fd);
      lastError = ec.message();
      continue;
    }
    asio::ip::tcp::endpoint ep(asio::ip::make_address(ip.str(), ec), port);
    armDeadline(in.options.connectTimeout);
    co_await upstream_.async_connect(ep, asio::redirect_error(use_awaitable, ec));
    bool timedOut = deadlineFired_;
    disarmDeadline();
    if (closing_) co_return false;
    if (!ec) {
      upstreamEp_ = Endpoint{ip, port};
      co_return true;
    }
    std::string why = "timeout";
    if (!timedOut) why = ec.message();
    lastError = fmt::format("connect {}: {}", Endpoint{ip, port}.str(), why);
    upstream_.close(ec);
  }
  in.metrics.upstreamConnectFailures++;
  co_await failClosed("upstream_connect_failed", lastError);
  co_return false;
}

awaitable<bool> Session::connectTunnel() {
  auto& in = listener_->inputs();
  const PodInfo& pod = listener_->pod();
  const policy::Route& route = decision_.route;
  bool http = protocol_ == Sniffed::Http;
  auto failTunnel = [&](const TunnelError& e) -> awaitable<void> {
    in.metrics.countGatewayFailure(e.reason);
    record_.decision = "deny";
    record_.reason = e.appReason;
    std::string_view name = record_.name;
    if (name.empty()) name = "-";
    log::warn(kLog, "{}/{} -> {} ({}) via gateway {}: {} ({}): {}", record_.podNs,
              record_.podName, record_.originalDst, name, route.gatewayName, e.appReason,
              e.reason, e.detail);
    if (http) {
      co_await sendHttpError(e.status, statusPhrase(e.status), "x-tollgate-denied", e.appReason);
    } else {
      closeBoth(true);
    }
  };
  auto unavailable = [](std::string reason, std::string detail) {
    return TunnelError{TunnelError::Kind::Unavailable, std::move(reason), "gateway_unavailable",
                       503, std::move(detail)};
  };

  if (in.tunnels == nullptr) {
    co_await failTunnel(unavailable("no_tunnel_client", "no CA configured: tunnels disabled"));
    co_return false;
  }
  // The service port the app asked for, not the ServiceEntry targetPort: the gateway decides
  // again on this port and applies targetPort itself (applying it twice would miss the entry).
  uint16_t port = originalDst_.port;
  std::string authority;
  if (route.byName && !route.upstreamHost.empty()) {
    // The name, never the IP the app asked for: the gateway resolves it itself.
    authority = fmt::format("{}:{}", route.upstreamHost, port);
  } else {
    authority = Endpoint{originalDst_.ip, port}.str();
  }

  error_code ec;
  asio::ip::address gwAddr = asio::ip::make_address(route.gatewayAddress, ec);
  if (ec) {
    auto r = co_await in.resolver.resolve(route.gatewayAddress);
    if (!r || r->empty()) {
      std::string detail = r ? std::string("no addresses") : r.error().str();
      co_await failTunnel(unavailable("gateway_unresolvable",
                                      fmt::format("{}: {}", route.gatewayAddress, detail)));
      co_return false;
    }
    gwAddr = asio::ip::make_address(r->front().str(), ec);
  }
  asio::ip::tcp::endpoint gateway(gwAddr, route.gatewayPort != 0 ? route.gatewayPort : 15008);

  bool fromNode = in.options.externalFromNode;
  uint32_t mark = pod.mark;
  NetnsRunner runner = listener_->runner();
  TunnelRequest req;
  req.ns = identity_.ns;
  req.serviceAccount = identity_.serviceAccount;
  req.gateway = gateway;
  req.authority = authority;
  req.sockets = [fromNode, mark, runner](int family) -> Result<int> {
    if (fromNode) return makeMarkedSocket(family, mark);
    return runner([family, mark]() { return makeMarkedSocket(family, mark); });
  };
  if (!fromNode) req.scope = pod.key();
  auto r = co_await in.tunnels->open(std::move(req));
  if (closing_) {
    if (r) (*r)->reset();
    co_return false;
  }
  if (!r) {
    co_await failTunnel(r.error());
    co_return false;
  }
  tunnel_ = *r;
  auto gwIp = policy::IpAddress::parse(gwAddr.to_string());
  if (gwIp) upstreamEp_ = Endpoint{*gwIp, gateway.port()};
  co_return true;
}

awaitable<void> Session::writeUpstream(asio::const_buffer data, error_code& ec) {
  if (tunnel_) {
    co_await tunnel_->write(data, ec);
    co_return;
  }
  co_await asio::async_write(upstream_, data, asio::redirect_error(use_awaitable, ec));
}

void Session::shutdownUpstreamSend() {
  if (tunnel_) {
    tunnel_->shutdownWrite();
    return;
  }
  error_code ec;
  if (upstream_.is_open()) upstream_.shutdown(asio::socket_base::shutdown_send, ec);
}

void Session::resetUpstream() {
  if (tunnel_) {
    tunnel_->reset();
    return;
  }
  error_code ec;
  if (upstream_.is_open()) {
    armReset(upstream_.native_handle());
    upstream_.close(ec);
  }
}

awaitable<void> Session::pumpTunnel(bool up) {
  auto& in = listener_->inputs();
  auto t = tunnel_;
  std::optional<RelayBuffer> buf;
  for (;;) {
    error_code ec;
    size_t n = 0;
    if (up) {
      n = co_await readLeased(client_, buf, ec);
      if (ec) {
        if (ec == asio::error::eof) {
          t->shutdownWrite();  // app half-close -> END_STREAM
        } else if (!closing_) {
          closeBoth(true);
        }
        co_return;
      }
      lastActivity_ = Clock::now();
      co_await t->write(asio::buffer(buf->data(), n), ec);
    } else {
      // No buffer while the stream is idle: lease one once a read will not wait.
      buf.reset();
      co_await t->waitReadable(ec);
      if (!ec) {
        buf.emplace();
        n = co_await t->read(buf->buffer(), ec);
      }
      if (ec) {
        if (ec == asio::error::eof) {
          // END_STREAM from the gateway -> FIN to the app; the other direction keeps flowing.
          if (client_.is_open()) client_.shutdown(asio::socket_base::shutdown_send, ec);
        } else if (!closing_) {
          closeBoth(true);  // RST_STREAM or a dead tunnel: the app sees a reset
        }
        co_return;
      }
      lastActivity_ = Clock::now();
      co_await asio::async_write(client_, asio::buffer(buf->data(), n),
                                 asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      if (!closing_) closeBoth(true);
      co_return;
    }
    (up ? record_.bytesUp : record_.bytesDown) += n;
    (up ? in.metrics.bytesUp : in.metrics.bytesDown) += n;
  }
}

awaitable<void> Session::relay() {
  auto& in = listener_->inputs();
  lastActivity_ = Clock::now();
  auto ex = client_.get_executor();
  auto onDone = [self = shared_from_this()](std::exception_ptr e) {
    if (e) self->closeBoth(true);
    if (--self->pumpsRunning_ == 0) self->done_.cancel();
  };
  pumpsRunning_ = 2;
  // Tunnel bytes pass through user space (TLS), so there is nothing to splice.
  bool spliceOk = in.options.splice && !tunnel_;
  bool viaTunnel = tunnel_ != nullptr;
  auto self = shared_from_this();
  asio::co_spawn(ex, [self]() { return self->idleWatch(); }, asio::detached);
  if (protocol_ == Sniffed::Http && upgradeRequested_ && !co_await upgradeHandshake()) {
    pumpsRunning_ = 0;
    idle_.cancel();
    co_return;
  }
  if (protocol_ == Sniffed::Http && !switched_) {
    asio::co_spawn(ex, [self]() { return self->pumpHttpRequests(); }, onDone);
  } else {
    // Sniffed bytes go first; then the rest of the stream is not looked at.
    error_code ec;
    co_await writeUpstream(asio::buffer(buffered_), ec);
    if (ec) {
      refuse("upstream_error", ec.message());
      pumpsRunning_ = 0;
      co_return;
    }
    record_.bytesUp += buffered_.size();
    in.metrics.bytesUp += buffered_.size();
    std::string().swap(buffered_);  // not held for the rest of the connection
    if (viaTunnel) {
      asio::co_spawn(ex, [self]() { return self->pumpTunnel(true); }, onDone);
    } else if (spliceOk) {
      asio::co_spawn(ex, [self]() { return self->pumpSplice(true); }, onDone);
    } else {
      asio::co_spawn(ex, [self]() { return self->pumpCopy(true); }, onDone);
    }
  }
  if (viaTunnel) {
    asio::co_spawn(ex, [self]() { return self->pumpTunnel(false); }, onDone);
  } else if (spliceOk) {
    asio::co_spawn(ex, [self]() { return self->pumpSplice(false); }, onDone);
  } else {
    asio::co_spawn(ex, [self]() { return self->pumpCopy(false); }, onDone);
  }
  while (pumpsRunning_ > 0) {
    done_.expires_at(Clock::time_point::max());
    error_code ec;
    co_await done_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  idle_.cancel();
}

awaitable<bool> Session::upgradeHandshake() {
  auto& in = listener_->inputs();
  if (!upgradeRefusal_.empty()) {
    record_.decision = "deny";
    record_.reason = upgradeRefusal_;
    std::string_view name = record_.name;
    if (name.empty()) name = "-";
    log::info(kLog, "{}/{} -> {} ({}): upgrade to '{}' refused: {}", record_.podNs,
              record_.podName, record_.originalDst, name, upgradeProtocols_, upgradeRefusal_);
    closing_ = true;
    resetUpstream();
    co_await sendHttpError(403, "Forbidden", "x-tollgate-denied", record_.reason);
    co_return false;
  }
  // Only the upgrade request goes up; what the client sent after it waits in buffered_ (and the
  // socket) until the answer says whether it is HTTP.
  error_code ec;
  co_await writeUpstream(asio::buffer(buffered_.data(), upgradeHeadBytes_), ec);
  if (ec) {
    if (!closing_) closeBoth(true);
    co_return false;
  }
  record_.bytesUp += upgradeHeadBytes_;
  in.metrics.bytesUp += upgradeHeadBytes_;
  buffered_.erase(0, upgradeHeadBytes_);

  constexpr size_t kMaxStatusLine = 8 * 1024;
  std::string resp;
  RelayBuffer buf;  // only while the handshake waits for the answer
  size_t lineEnd = std::string::npos;
  while ((lineEnd = resp.find('\n')) == std::string::npos) {
    if (resp.size() >= kMaxStatusLine) {
      refuse("invalid_response", "no status line in the upgrade response");
      co_return false;
    }
    size_t n = 0;
    if (tunnel_) {
      n = co_await tunnel_->read(buf.buffer(), ec);
    } else {
      n = co_await upstream_.async_read_some(buf.buffer(),
                                             asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      // Closed before answering: pass on what came and end as the response pump would.
      if (closing_) co_return false;
      if (!resp.empty()) {
        error_code wec;
        co_await asio::async_write(client_, asio::buffer(resp),
                                   asio::redirect_error(use_awaitable, wec));
      }
      closeBoth(ec != asio::error::eof);
      co_return false;
    }
    lastActivity_ = Clock::now();
    resp.append(buf.data(), n);
  }
  std::string_view statusLine(resp.data(), lineEnd + 1);
  std::optional<int> status = httpStatusCode(statusLine);
  co_await asio::async_write(client_, asio::buffer(resp), asio::redirect_error(use_awaitable, ec));
  if (ec) {
    if (!closing_) closeBoth(true);
    co_return false;
  }
  record_.bytesDown += resp.size();
  in.metrics.bytesDown += resp.size();
  if (status && *status == 101) {
    switched_ = true;
    in.metrics.httpUpgrades++;
    log::info(kLog, "{}/{} -> {} ({}): upgraded to '{}' (101): relayed as a byte stream",
              record_.podNs, record_.podName, record_.originalDst, record_.name,
              upgradeProtocols_);
  } else {
    // Any other answer (an error, 200, an interim 1xx): the connection stays HTTP and every
    // further request is checked.
    int code = status.value_or(0);
    log::debug(kLog, "{}/{} -> {}: upgrade answered {}: stays HTTP", record_.podNs,
               record_.podName, record_.originalDst, code);
  }
  co_return true;
}

awaitable<void> Session::idleWatch() {
  auto idle = listener_->inputs().options.idleTimeout;
  while (!closing_ && !finished_) {
    auto due = lastActivity_ + idle;
    if (Clock::now() >= due) {
      log::info(kLog, "{}/{} -> {}: idle for {} ms, closing", record_.podNs, record_.podName,
                record_.originalDst, idle.count());
      closeBoth(false);
      co_return;
    }
    idle_.expires_at(due);
    error_code ec;
    co_await idle_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<void> Session::pumpCopy(bool up) {
  auto& in = listener_->inputs();
  auto& from = up ? client_ : upstream_;
  auto& to = up ? upstream_ : client_;
  std::optional<RelayBuffer> buf;
  for (;;) {
    error_code ec;
    size_t n = co_await readLeased(from, buf, ec);
    if (ec) {
      if (ec == asio::error::eof) {
        // Half-close: pass the FIN on, keep the other direction flowing.
        if (to.is_open()) to.shutdown(asio::socket_base::shutdown_send, ec);
      } else if (!closing_) {
        closeBoth(true);
      }
      co_return;
    }
    lastActivity_ = Clock::now();
    co_await asio::async_write(to, asio::buffer(buf->data(), n), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!closing_) closeBoth(true);
      co_return;
    }
    (up ? record_.bytesUp : record_.bytesDown) += n;
    (up ? in.metrics.bytesUp : in.metrics.bytesDown) += n;
  }
}

awaitable<void> Session::pumpSplice(bool up) {
  auto& in = listener_->inputs();
  auto& from = up ? client_ : upstream_;
  auto& to = up ? upstream_ : client_;
  Pipe pipe;
  if (!pipe.ok()) {
    co_await pumpCopy(up);
    co_return;
  }
  error_code ec;
  from.native_non_blocking(true, ec);
  to.native_non_blocking(true, ec);
  for (;;) {
    if (!from.is_open() || !to.is_open()) co_return;
    ssize_t n = ::splice(from.native_handle(), nullptr, pipe.fds[1], nullptr, kSpliceChunk,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) {
      to.shutdown(asio::socket_base::shutdown_send, ec);
      co_return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        co_await from.async_wait(asio::socket_base::wait_read, asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;  // cancelled: the session is closing
        continue;
      }
      if (!closing_) closeBoth(true);
      co_return;
    }
    lastActivity_ = Clock::now();
    size_t pending = static_cast<size_t>(n);
    while (pending > 0) {
      if (!to.is_open()) co_return;
      ssize_t m = ::splice(pipe.fds[0], nullptr, to.native_handle(), nullptr, pending,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          co_await to.async_wait(asio::socket_base::wait_write, asio::redirect_error(use_awaitable, ec));
          if (ec) co_return;
          continue;
        }
        if (!closing_) closeBoth(true);
        co_return;
      }
      pending -= static_cast<size_t>(m);
      (up ? record_.bytesUp : record_.bytesDown) += static_cast<uint64_t>(m);
      (up ? in.metrics.bytesUp : in.metrics.bytesDown) += static_cast<uint64_t>(m);
    }
  }
}

awaitable<void> Session::pumpHttpRequests() {
  auto& in = listener_->inputs();
  HttpRequestStream stream(in.options.sniffMaxBytes);
  // The sniffed bytes first, then each read's bytes straight from its relay buffer.
  std::string first = std::move(buffered_);
  std::string_view chunk = first;
  std::optional<RelayBuffer> buf;
  error_code ec;
  for (;;) {
    if (!chunk.empty()) {
      uint64_t chunkStart = stream.bytesFed();
      auto r = stream.feed(asBytes(chunk));
      // Bytes of this chunk that may go upstream; a denied request and what follows never do.
      size_t allowedLen = chunk.size();
      std::optional<std::string> denyReason;
      for (const auto& req : r.requests) {
        std::optional<std::string> name;
        if (!req.head.host.empty()) name = req.head.host;
        policy::Decision d = decideName(name);
        if (!d.allowed()) {
          denyReason = std::string(policy::toString(d.reason));
          record_.reason = *denyReason;
          record_.decidedBy = d.decidedBy.str();
        } else if (!sameRoute(d.route, decision_.route)) {
          // This connection is bound to the first request's upstream; a request for another
          // host cannot be carried on it.
          denyReason = "host_changed";
          record_.reason = *denyReason;
        } else if (req.head.upgrade) {
          // Only a connection's first request may upgrade (upgradeHandshake): a later answer
          // cannot be found without framing every response before it.
          denyReason = std::string(refusedUpgrade(req.head).value_or("upgrade_not_first_request"));
          record_.reason = *denyReason;
        }
        if (denyReason) {
          if (!d.name.empty()) {
            record_.name = d.name;
          } else if (name) {
            record_.name = *name;
          }
          allowedLen = static_cast<size_t>(req.offset - chunkStart);
          break;
        }
      }
      if (!denyReason && (r.status == SniffStatus::Invalid ||
                          r.status == SniffStatus::NotThisProtocol)) {
        denyReason = "invalid_request";
        record_.reason = *denyReason;
        allowedLen = static_cast<size_t>(
            std::max<int64_t>(0, static_cast<int64_t>(r.errorOffset - chunkStart)));
      }
      if (allowedLen > 0) {
        co_await writeUpstream(asio::buffer(chunk.data(), allowedLen), ec);
        if (ec) {
          if (!closing_) closeBoth(true);
          co_return;
        }
        record_.bytesUp += allowedLen;
        in.metrics.bytesUp += allowedLen;
      }
      if (denyReason) {
        record_.decision = "deny";
        std::string_view shown = record_.name;
        if (shown.empty()) shown = "-";
        log::info(kLog, "{}/{} -> {}: request on kept-alive connection denied: {} ({})",
                  record_.podNs, record_.podName, record_.originalDst, *denyReason, shown);
        // Stop the response direction before writing to the client ourselves; closing_ first
        // so the response pump, woken by the reset, does not reset the client under the 403.
        closing_ = true;
        resetUpstream();
        co_await sendHttpError(403, "Forbidden", "x-tollgate-denied", *denyReason);
        co_return;
      }
    }
    if (!first.empty()) std::string().swap(first);
    size_t n = co_await readLeased(client_, buf, ec);
    if (ec) {
      if (ec == asio::error::eof) {
        shutdownUpstreamSend();
      } else if (!closing_) {
        closeBoth(true);
      }
      co_return;
    }
    lastActivity_ = Clock::now();
    chunk = std::string_view(buf->data(), n);
  }
}

awaitable<void> Session::sendHttpError(int status, std::string_view reasonPhrase,
                                       std::string_view header, std::string_view value) {
  std::string body = fmt::format("{} {}: {}\n", status, reasonPhrase, value);
  std::string resp = fmt::format(
      "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\n{}: {}\r\ncontent-length: {}\r\n"
      "connection: close\r\n\r\n{}",
      status, reasonPhrase, header, value, body.size(), body);
  error_code ec;
  armDeadline(kDrainAfterDeny);
  co_await asio::async_write(client_, asio::buffer(resp), asio::redirect_error(use_awaitable, ec));
  if (!ec) {
    client_.shutdown(asio::socket_base::shutdown_send, ec);
    // Read what the client is still sending (a body) so that closing does not turn into an RST
    // that could destroy the response before the client reads it.
    std::array<char, 4096> sink;
    // Checked before each read: a deadline that fired while a completion was queued cancelled
    // nothing, and the next read would wait with none.
    for (size_t total = 0; total < 256 * 1024 && !deadlineFired_;) {
      size_t n = co_await client_.async_read_some(asio::buffer(sink),
                                                  asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      total += n;
    }
  }
  disarmDeadline();
  closeBoth(false);
}

}  // namespace tollgate::proxy
