#include "proxy/outbound_listener.h"

#include <netinet/in.h>
#include <unistd.h>

#include <condition_variable>

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/access_log.h"
#include "proxy/connection_budget.h"
#include "proxy/metrics.h"
#include "proxy/session.h"
#include "proxy/socket_registry.h"
#include "proxy/socket_util.h"

namespace tollgate::proxy {
namespace {
constexpr std::string_view kLog = "proxy";
}

Result<std::shared_ptr<OutboundListener>> OutboundListener::create(ProxyInputs& inputs,
                                                                   PodInfo pod,
                                                                   NetnsRunner runner) {
  std::shared_ptr<OutboundListener> l(new OutboundListener(inputs, std::move(pod), std::move(runner)));
  if (inputs.budget) {
    inputs.budget->podAdded();
    l->countedIn_ = inputs.budget;
  }
  uint16_t port = inputs.options.outboundPort;
  for (bool v6 : {false, true}) {
    Endpoint bind{*policy::IpAddress::parse(v6 ? "::1" : "127.0.0.1"), port};
    SocketKey key{l->pod_.key(), SocketTransport::Tcp, bind.str()};
    auto fd = l->runner_([bind, key, reg = inputs.sockets]() {
      return obtainSocket(reg, key, [bind] { return makeListener(bind); });
    });
    if (!fd) {
      if (v6 && (fd.error().code == EADDRNOTAVAIL || fd.error().code == EAFNOSUPPORT)) {
        // No IPv6 in this netns: nothing can be sent over it, and the redirect drops it anyway.
        log::warn(kLog, "pod {}: no IPv6 listener: {}", l->pod_.key(), fd.error().str());
        continue;
      }
      return std::unexpected(fd.error().wrap(fmt::format("pod {}: listener", l->pod_.key())));
    }
    auto acc = std::make_unique<asio::ip::tcp::acceptor>(asio::make_strand(inputs.io));
    boost::system::error_code ec;
    acc->assign(v6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), *fd, ec);
    if (ec) {
      ::close(*fd);
      return fail(fmt::format("pod {}: assign listener: {}", l->pod_.key(), ec.message()));
    }
    l->acceptors_.push_back(std::move(acc));
  }
  return l;
}

OutboundListener::~OutboundListener() {
  if (countedIn_) countedIn_->podRemoved();
  // The last owner is going away, so nothing else can be using the acceptors: close them here
  // rather than posting to an io_context that may itself be shutting down.
  for (auto& acc : acceptors_) {
    boost::system::error_code ec;
    acc->close(ec);
  }
}

void OutboundListener::start() {
  listening_ = true;
  // The holder keeps this listener alive while it calls, and drops the entry once it is gone.
  inputs_.snapshots.observe(weak_from_this(), [this] { revalidateSessions(); });
  for (auto& acc : acceptors_) {
    asio::co_spawn(acc->get_executor(),
                   [self = shared_from_this(), a = acc.get()]() { return self->acceptLoop(a); },
                   asio::detached);
  }
}

void OutboundListener::close(bool closeSessions) {
  listening_ = false;
  if (closeSessions) aborting_ = true;
  for (auto& acc : acceptors_) {
    // The acceptor lives on its strand; closing from elsewhere must go through it.
    asio::post(acc->get_executor(), [a = acc.get(), keep = weak_from_this()] {
      if (keep.expired()) return;
      boost::system::error_code ec;
      a->close(ec);
    });
  }
  if (closeSessions) {
    std::lock_guard lock(mu_);
    for (auto& w : sessions_) {
      if (auto s = w.lock()) s->abort();
    }
  }
}

void OutboundListener::revalidateSessions() {
  std::lock_guard lock(mu_);
  for (auto& w : sessions_) {
    if (auto s = w.lock()) s->revalidate();
  }
}

std::vector<AccessRecord> OutboundListener::describeSessions(std::chrono::milliseconds timeout) {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(mu_);
    for (auto& w : sessions_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  struct Gather {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<AccessRecord> records;
    size_t answered = 0;
  };
  auto g = std::make_shared<Gather>();
  for (auto& s : live) {
    s->describe([g](AccessRecord r) {
      std::lock_guard lock(g->mu);
      g->records.push_back(std::move(r));
      g->answered++;
      g->cv.notify_all();
    });
  }
  std::unique_lock lock(g->mu);
  g->cv.wait_for(lock, timeout, [&] { return g->answered == live.size(); });
  return g->records;
}

void OutboundListener::sessionStarted(const std::shared_ptr<Session>& s) {
  active_++;
  std::lock_guard lock(mu_);
  sessions_.insert(s);
}

void OutboundListener::sessionEnded(Session* s) {
  active_--;
  if (inputs_.budget) inputs_.budget->release();
  std::lock_guard lock(mu_);
  // Expired entries (this one is being destroyed or about to be) are pruned here.
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto sp = it->lock();
    if (!sp || sp.get() == s) {
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

void OutboundListener::refuseOverLimit(int fd, std::string_view reason, size_t limit) {
  inputs_.metrics.countConnection("deny", reason);
  AccessRecord r;
  r.start = std::chrono::system_clock::now();
  r.podNs = pod_.ns;
  r.podName = pod_.name;
  r.decision = "deny";
  r.reason = std::string(reason);
  if (auto local = localEndpoint(fd)) {
    auto dst = inputs_.originalDestination(fd, *local);
    if (dst) r.originalDst = dst->str();
  }
  inputs_.accessLog.write(r);
  uint64_t held = 0;
  if (limitLog_.allow(&held)) {
    if (reason == "connection_limit") {
      log::warn(kLog, "pod {}: connection limit {} reached: reset ({} more since the last report)",
                pod_.key(), limit, held);
    } else {
      log::warn(kLog,
                "pod {}: node connection limit {} reached and the pod holds its share ({} of {} "
                "pods): reset ({} more since the last report)",
                pod_.key(), limit, inputs_.budget->fairShare(), inputs_.budget->pods(), held);
    }
  }
  armReset(fd);
}

awaitable<void> OutboundListener::acceptLoop(asio::ip::tcp::acceptor* acceptor) {
  for (;;) {
    boost::system::error_code ec;
    auto sock = co_await acceptor->async_accept(asio::make_strand(inputs_.io),
                                                asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!listening_ || !acceptor->is_open() || ec == asio::error::operation_aborted) co_return;
      log::warn(kLog, "pod {}: accept: {}", pod_.key(), ec.message());
      // EMFILE and friends: back off instead of spinning.
      asio::steady_timer t(acceptor->get_executor());
      t.expires_after(std::chrono::milliseconds(100));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    // The kernel handed us this connection: it is served even when the listener is closing for
    // a handoff (the next agent accepts from the same queue, so dropping it would fail a client
    // for nothing). Only a pod that is going away (close with closeSessions) drops it.
    if (!listening_ && aborting_) co_return;
    size_t podActive = static_cast<size_t>(active_.load());
    if (podActive >= inputs_.options.maxConnectionsPerPod) {
      inputs_.metrics.limitRejections++;
      refuseOverLimit(sock.native_handle(), "connection_limit",
                      inputs_.options.maxConnectionsPerPod);
      sock.close(ec);
      continue;
    }
    // Released in sessionEnded().
    if (inputs_.budget && !inputs_.budget->acquire(podActive)) {
      inputs_.metrics.nodeLimitRejections++;
      refuseOverLimit(sock.native_handle(), "node_connection_limit", inputs_.budget->limit());
      sock.close(ec);
      continue;
    }
    auto session = std::make_shared<Session>(shared_from_this(), std::move(sock));
    sessionStarted(session);
    session->start();
  }
}

}  // namespace tollgate::proxy
