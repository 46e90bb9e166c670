#include "proxy/tunnel_pool.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/log.h"

namespace tollgate::proxy {
namespace {

constexpr std::string_view kLog = "tunnel";
using Clock = std::chrono::steady_clock;

TunnelError unavailable(std::string reason, std::string detail) {
  return TunnelError{TunnelError::Kind::Unavailable, std::move(reason), "gateway_unavailable", 503,
                     std::move(detail)};
}

std::string endpointStr(const asio::ip::tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

}  // namespace

TunnelPool::TunnelPool(asio::io_context& io, SvidSource svids, Metrics* metrics,
                       TunnelPoolOptions options)
    : io_(io),
      svids_(std::move(svids)),
      metrics_(metrics),
      options_(options),
      state_(std::make_shared<State>()) {
  if (options_.connectionsPerKey == 0) options_.connectionsPerKey = 1;
}

TunnelPool::~TunnelPool() { shutdown(); }

size_t TunnelPool::connectionCount() const {
  std::lock_guard lock(state_->mu);
  size_t n = 0;
  for (const auto& [k, e] : state_->entries) n += e.conns.size();
  return n;
}

void TunnelPool::shutdown() {
  std::vector<std::shared_ptr<TunnelConnection>> all;
  {
    std::lock_guard lock(state_->mu);
    state_->shut = true;
    for (auto& [k, e] : state_->entries) {
      for (auto& c : e.conns) all.push_back(c);
    }
  }
  for (auto& c : all) c->close();
}

awaitable<TunnelPool::OpenResult> TunnelPool::open(TunnelRequest req) {
  // A connection picked just as it went idle or got GOAWAY refuses the stream before sending
  // anything ("draining"), or the gateway's GOAWAY arrives after the stream was sent and names
  // a last stream below it ("stream_refused": RFC 9113 6.8, never processed): either way the
  // flow is safe to place once more. The gateway closes connections idle for a minute, so this
  // race is a normal event, not an error.
  auto first = co_await openOnce(req);
  if (first || (first.error().reason != "draining" && first.error().reason != "stream_refused")) {
    co_return first;
  }
  auto second = co_await openOnce(std::move(req));
  co_return second;
}

awaitable<TunnelPool::OpenResult> TunnelPool::openOnce(TunnelRequest req) {
  std::string key =
      fmt::format("{}/{}|{}|{}", req.ns, req.serviceAccount, endpointStr(req.gateway), req.scope);
  std::shared_ptr<TunnelConnection> conn;
  {
    std::lock_guard lock(state_->mu);
    if (state_->shut) co_return std::unexpected(unavailable("shutdown", "tunnel pool stopped"));
    Entry& e = state_->entries[key];
    std::erase_if(e.conns, [](const auto& c) { return c->closed(); });
    auto now = std::chrono::system_clock::now();
    if (options_.pooling) {
      // Least streams first; connections whose SVID expired take no new streams.
      std::vector<TunnelConnection*> order;
      for (auto& c : e.conns) {
        if (c->identity().notAfter <= now) {
          c->drain();
          continue;
        }
        if (c->usable()) order.push_back(c.get());
      }
      std::stable_sort(order.begin(), order.end(),
                       [](auto* a, auto* b) { return a->streams() < b->streams(); });
      for (auto* c : order) {
        if (c->reserve()) {
          for (auto& sp : e.conns) {
            if (sp.get() == c) conn = sp;
          }
          break;
        }
      }
    }
    if (!conn) {
      if (Clock::now() < e.retryAt) {
        co_return std::unexpected(unavailable(
            "backoff", fmt::format("{} (retrying in {} ms)", e.lastError,
                                   std::chrono::duration_cast<std::chrono::milliseconds>(
                                       e.retryAt - Clock::now())
                                       .count())));
      }
      if (options_.pooling) {
        size_t notDraining = 0;
        for (auto& c : e.conns) {
          if (!c->closed() && !c->draining() && c->identity().notAfter > now) ++notDraining;
        }
        if (notDraining >= options_.connectionsPerKey) {
          co_return std::unexpected(unavailable(
              "stream_limit", fmt::format("{} connections to {} carry their maximum of streams",
                                          notDraining, endpointStr(req.gateway))));
        }
      }
      Result<TunnelIdentityPtr> id = fail("no SVID source");
      if (svids_) id = svids_(req.ns, req.serviceAccount);
      if (!id || !*id) {
        std::string why = "empty SVID";
        if (!id) why = id.error().str();
        co_return std::unexpected(unavailable(
            "no_svid", fmt::format("no SVID for {}/{}: {}", req.ns, req.serviceAccount, why)));
      }
      // A rotated SVID gets a new TLS context; connections already up keep theirs.
      if (!e.ctx || !e.identity || e.identity->certPem != (*id)->certPem) {
        auto ctx = makeTunnelClientContext(**id);
        if (!ctx) co_return std::unexpected(unavailable("no_svid", ctx.error().str()));
        e.ctx = *ctx;
        e.identity = *id;
      }
      std::weak_ptr<State> weak = state_;
      auto backoffInitial = options_.backoffInitial;
      auto backoffMax = options_.backoffMax;
      auto onClosed = [weak, key](TunnelConnection* c) {
        auto st = weak.lock();
        if (!st) return;
        std::lock_guard lock(st->mu);
        auto it = st->entries.find(key);
        if (it == st->entries.end()) return;
        std::erase_if(it->second.conns, [c](const auto& sp) { return sp.get() == c; });
      };
      auto onHandshake = [weak, key, backoffInitial, backoffMax](bool ok, const std::string& err) {
        auto st = weak.lock();
        if (!st) return;
        std::lock_guard lock(st->mu);
        Entry& en = st->entries[key];
        if (ok) {
          en.failures = 0;
          en.retryAt = {};
          return;
        }
        en.failures = std::min(en.failures + 1, 16);
        auto delay = backoffInitial * (1LL << (en.failures - 1));
        if (delay > backoffMax) delay = backoffMax;
        en.retryAt = Clock::now() + delay;
        en.lastError = err;
        log::warn(kLog, "gateway {}: {}; next attempt in {} ms", key, err, delay.count());
      };
      conn = std::make_shared<TunnelConnection>(io_, req.gateway, e.ctx, e.identity,
                                                std::move(req.sockets), options_.limits, metrics_,
                                                onClosed, onHandshake);
      conn->reserve();
      e.conns.push_back(conn);
      conn->start();
    }
  }
  auto r = co_await conn->open(std::move(req.authority));
  // Without pooling the connection carries exactly this flow and closes after it.
  if (!options_.pooling) conn->drain();
  co_return r;
}

}  // namespace tollgate::proxy
