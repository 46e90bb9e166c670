#include "gateway/tunnel_opener.h"

#include <fmt/format.h>

#include <cstring>

#include "common/log.h"
#include "gateway/address_filter.h"
#include "gateway/authority.h"
#include "gateway/deadline.h"
#include "gateway/gateway_metrics.h"
#include "policy/name.h"
#include "proxy/resolver.h"
#include "proxy/socket_util.h"

namespace tollgate::gateway {
namespace {

constexpr std::string_view kLog = "gateway";

struct Target {
  policy::IpAddress ip;
  uint16_t port = 0;
};

const policy::ServiceEntry* findEntry(const policy::Snapshot& snap,
                                      const policy::DecidingObject& by) {
  if (by.kind != "ServiceEntry") return nullptr;
  for (const auto& se : snap.config().serviceEntries) {
    if (se.meta.ns == by.ns && se.meta.name == by.name) return &se;
  }
  return nullptr;
}

// The addresses an operator wrote into the entry: spec.addresses and static endpoint IPs.
std::vector<policy::Cidr> listedAddresses(const policy::ServiceEntry* se) {
  std::vector<policy::Cidr> out;
  if (!se) return out;
  out = se->addresses;
  for (const auto& ep : se->endpoints) {
    if (auto ip = policy::IpAddress::parse(ep.address)) {
      out.push_back(policy::Cidr{ip->unmapped(), ip->isV4() ? 32 : 128});
    }
  }
  return out;
}

std::string_view tlsModeName(const policy::Route& r) {
  return r.tls ? policy::toString(r.tls->mode) : std::string_view("DISABLE");
}

TunnelOutcome refuse(TunnelOutcome o, int status, std::string reason, std::string detail = {}) {
  o.status = status;
  o.reason = std::move(reason);
  o.detail = std::move(detail);
  o.record.decision = status == 403 || status == 400 ? "deny" : "error";
  o.record.reason = o.reason;
  return o;
}

}  // namespace

GatewayStatePtr makeGatewayState(policy::SnapshotPtr snapshot, const std::string& ns,
                                 const policy::Labels& labels) {
  auto st = std::make_shared<GatewayState>();
  policy::GatewayWorkload self;
  self.ns = ns;
  self.labels = labels;
  st->authorizer =
      std::make_shared<policy::Authorizer>(snapshot->config().authorizationPolicies, self);
  st->snapshot = std::move(snapshot);
  return st;
}

awaitable<TunnelOutcome> TunnelOpener::open(TunnelRequest req) {
  TunnelOutcome o;
  o.record.start = std::chrono::system_clock::now();
  o.record.podNs = req.peer.ns;
  o.record.podName = req.peer.serviceAccount;
  o.record.identity = req.peer.str();
  o.record.name = req.authority.substr(0, 300);
  o.record.protocol = req.protocol;
  o.record.decision = "deny";
  in_.metrics.tunnelsTotal++;

  auto authority = parseAuthority(req.authority);
  if (!authority) co_return refuse(std::move(o), 400, "bad_authority", authority.error().str());
  o.record.name = authority->str();

  GatewayStatePtr state = in_.state.load();
  if (!state) co_return refuse(std::move(o), 503, "no_config");
  const policy::Snapshot& snap = *state->snapshot;
  if (req.peer.trustDomain != snap.mesh().trustDomain) {
    co_return refuse(std::move(o), 403, "trust_domain",
                     fmt::format("peer trust domain {} is not {}", req.peer.trustDomain,
                                 snap.mesh().trustDomain));
  }

  // (1) The registry decision again, for the peer's identity (defence in depth).
  policy::FlowQuery q;
  q.source.ns = req.peer.ns;
  q.source.serviceAccount = req.peer.serviceAccount;
  q.source.labels = {};
  q.dstPort = authority->port;
  q.l4 = policy::L4Protocol::Tcp;
  q.app = policy::AppProtocol::Unknown;
  if (authority->isIp) {
    q.dstIp = *policy::IpAddress::parse(authority->host);
  } else {
    // No address yet: the gateway resolves the name only after it is allowed. 0.0.0.0 is never
    // in-cluster, so the name decides.
    q.dstIp = policy::IpAddress{};
    q.name = authority->host;
  }
  policy::Decision d = snap.decide(q);
  if (d.reason == policy::Reason::DeniedProtocolMismatch) {
    // The gateway cannot see inside the tunnel (the node proxy sniffed and checked the protocol
    // before tunnelling); a TLS/HTTPS port is what an opaque tunnel most often carries.
    q.app = policy::AppProtocol::Tls;
    d = snap.decide(q);
  }
  o.record.decidedBy = d.decidedBy.str();
  o.record.route = d.route.kind == policy::Route::Kind::None ? "-" : d.route.str();
  if (!d.allowed()) co_return refuse(std::move(o), 403, std::string(policy::toString(d.reason)));

  // (2) AuthorizationPolicy for this identity and destination.
  policy::AuthorizationRequest ar;
  ar.principal =
      fmt::format("{}/ns/{}/sa/{}", req.peer.trustDomain, req.peer.ns, req.peer.serviceAccount);
  ar.sourceNamespace = req.peer.ns;
  ar.host = d.name.empty() ? policy::IpAddress::parse(authority->host)->unmapped().str() : d.name;
  ar.port = authority->port;
  policy::AuthorizationResult az = state->authorizer->authorize(ar);
  if (!az.allowed) {
    o.record.decidedBy = az.policy;
    co_return refuse(std::move(o), 403, "authz", az.reason);
  }

  // (3) Where to connect: STATIC entries name their endpoints; otherwise the gateway resolves.
  const policy::ServiceEntry* entry = findEntry(snap, d.decidedBy);
  const uint16_t port = d.route.upstreamPort ? d.route.upstreamPort : authority->port;
  std::vector<Target> targets;
  auto resolveInto = [&](const std::string& host, uint16_t p) -> awaitable<Status> {
    auto addrs = co_await in_.resolver.resolve(host);
    if (!addrs) co_return std::unexpected(addrs.error());
    for (const auto& a : *addrs) targets.push_back({a, p});
    co_return Status{};
  };
  if (entry && entry->resolution == policy::Resolution::Static && !entry->endpoints.empty()) {
    std::string portName;
    for (const auto& sp : entry->ports) {
      if (sp.number == authority->port) portName = sp.name;
    }
    for (const auto& ep : entry->endpoints) {
      uint16_t p = port;
      if (auto it = ep.ports.find(portName); !portName.empty() && it != ep.ports.end()) {
        p = static_cast<uint16_t>(it->second);
      }
      if (auto st = co_await resolveInto(ep.address, p); !st) {
        log::warn(kLog, "endpoint {} of {}: {}", ep.address, d.decidedBy.str(), st.error().str());
      }
    }
  } else if (auto st = co_await resolveInto(d.route.upstreamHost, port); !st) {
    co_return refuse(std::move(o), 502, "dns", st.error().str());
  }
  if (targets.empty()) co_return refuse(std::move(o), 502, "dns", "no addresses");

  // (4) Refuse special-use answers the operator did not list (DNS rebinding to the metadata
  // endpoint, loopback or the cluster itself).
  std::vector<policy::Cidr> cluster = snap.mesh().podCidrs;
  cluster.insert(cluster.end(), snap.mesh().serviceCidrs.begin(), snap.mesh().serviceCidrs.end());
  const std::vector<policy::Cidr> listed = listedAddresses(entry);
  std::string refused;
  std::erase_if(targets, [&](const Target& t) {
    auto kind = specialAddressKind(t.ip, cluster);
    if (!kind || isListed(t.ip, listed)) return false;
    refused = fmt::format("{} is {}", t.ip.str(), *kind);
    return true;
  });
  if (targets.empty()) co_return refuse(std::move(o), 403, "special_address", refused);

  // (5) TLS origination settings, before connecting: a broken DestinationRule fails fast.
  std::optional<UpstreamTls> tls;
  o.record.route = fmt::format("{} {}:{}", tlsModeName(d.route), d.route.upstreamHost, port);
  if (d.route.tls && d.route.tls->mode != policy::TlsMode::Disable) {
    auto t = makeUpstreamTls(*d.route.tls, d.route.upstreamHost, in_.options.credentialsDir);
    if (!t) co_return refuse(std::move(o), 502, "upstream_tls", t.error().str());
    tls = std::move(*t);
  }

  // (6) Connect, trying each address in turn under one deadline.
  auto ex = co_await asio::this_coro::executor;
  const auto deadline = std::chrono::steady_clock::now() + in_.options.connectTimeout;
  std::optional<asio::ip::tcp::socket> connected;
  bool timedOut = false;
  std::string lastError;
  for (const auto& t : targets) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    proxy::Endpoint ep{t.ip.unmapped(), t.port};
    sockaddr_storage ss{};
    socklen_t len = proxy::toSockaddr(ep, &ss);
    asio::ip::tcp::endpoint aep;
    std::memcpy(aep.data(), &ss, len);
    if (req.cancel && req.cancel->cancelled) break;
    asio::ip::tcp::socket sock(ex);
    asio::steady_timer timer(ex);
    auto st = armDeadline(timer, sock, left);
    if (req.cancel) {
      req.cancel->hook = [&sock] {
        error_code ignored;
        sock.cancel(ignored);
      };
    }
    error_code ec;
    co_await sock.async_connect(aep, asio::redirect_error(asio::use_awaitable, ec));
    if (req.cancel) req.cancel->hook = nullptr;
    disarm(timer, *st);
    // A connect that completed as the deadline fired has been shut down by it: a timeout too.
    if (!ec && st->fired) ec = asio::error::timed_out;
    if (!ec) {
      o.record.originalDst = ep.str();
      connected.emplace(std::move(sock));
      break;
    }
    timedOut = st->fired;
    lastError = fmt::format("{}: {}", ep.str(), st->fired ? "timeout" : ec.message());
  }
  if (req.cancel && req.cancel->cancelled) {
    co_return refuse(std::move(o), 499, "client_reset", "the client reset the stream first");
  }
  if (!connected) {
    if (timedOut) co_return refuse(std::move(o), 504, "connect_timeout", lastError);
    co_return refuse(std::move(o), 502, "connect_failed", lastError);
  }
  proxy::setNoDelay(connected->native_handle());

  if (tls) {
    auto up = std::make_unique<Upstream>(std::move(*connected), std::move(*tls));
    asio::steady_timer timer(ex);
    auto left = std::max(std::chrono::milliseconds(1),
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::steady_clock::now()));
    auto st = armDeadline(timer, up->socket(), left);
    if (req.cancel) {
      req.cancel->hook = [&up] {
        error_code ignored;
        up->socket().cancel(ignored);
      };
    }
    error_code ec = co_await up->handshake();
    if (req.cancel) req.cancel->hook = nullptr;
    disarm(timer, *st);
    if (req.cancel && req.cancel->cancelled) {
      co_return refuse(std::move(o), 499, "client_reset", "the client reset the stream first");
    }
    if (ec || st->fired) {
      std::string why = st->fired ? "handshake timeout" : up->tlsFailure();
      co_return refuse(std::move(o), 502, "upstream_tls", why);
    }
    o.upstream = std::move(up);
  } else {
    o.upstream = std::make_unique<Upstream>(std::move(*connected));
  }
  o.status = 200;
  o.reason = std::string(policy::toString(d.reason));
  o.record.decision = "allow";
  o.record.reason = o.reason;
  co_return o;
}

void TunnelOpener::finish(TunnelOutcome& o, std::string_view protocol) {
  o.record.durationMs = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::system_clock::now() - o.record.start)
                                                  .count());
  in_.metrics.countStream(protocol, o.record.decision, o.record.reason);
  in_.accessLog.write(o.record);
  if (!o.ok()) {
    log::info(kLog, "{} CONNECT {} refused {} {}: {}", o.record.identity, o.record.name, o.status,
              o.reason, o.detail.empty() ? "-" : o.detail);
  }
}

}  // namespace tollgate::gateway
