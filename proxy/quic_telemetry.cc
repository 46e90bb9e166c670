#include "proxy/quic_telemetry.h"

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "common/log.h"
#include "proxy/event_journal.h"
#include "proxy/quic_initial.h"
#include "proxy/socket_registry.h"
#include "proxy/udp_receive.h"

namespace tollgate::proxy {
namespace {

constexpr std::string_view kLog = "quic";
// At most one destination lookup per pod this often: a conntrack read is a thread hop into the
// pod netns (the eBPF mode's map lookup is cheap, but the limit also bounds what a flood costs).
constexpr std::chrono::milliseconds kLookupInterval{50};
constexpr size_t kMaxTracked = 4096;

}  // namespace

std::optional<Endpoint> QuicTelemetry::originalDstFromConntrack(std::string_view table,
                                                                const Endpoint& src,
                                                                uint16_t port) {
  std::istringstream in{std::string(table)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string w;
    bool udp = false;
    std::vector<std::pair<std::string, std::string>> kv;
    while (words >> w) {
      if (w == "udp") udp = true;
      auto eq = w.find('=');
      if (eq != std::string::npos) kv.emplace_back(w.substr(0, eq), w.substr(eq + 1));
    }
    if (!udp) continue;
    // Original tuple first (src dst sport dport), then the reply tuple.
    std::vector<std::string> srcs, dsts, sports, dports;
    for (auto& [k, v] : kv) {
      if (k == "src") srcs.push_back(v);
      if (k == "dst") dsts.push_back(v);
      if (k == "sport") sports.push_back(v);
      if (k == "dport") dports.push_back(v);
    }
    if (srcs.size() < 2 || dsts.size() < 1 || sports.size() < 2 || dports.size() < 1) continue;
    auto s = policy::IpAddress::parse(srcs[0]);
    auto d = policy::IpAddress::parse(dsts[0]);
    if (!s || !d || s->unmapped() != src.ip.unmapped()) continue;
    if (sports[0] != std::to_string(src.port) || sports[1] != std::to_string(port)) continue;
    int dport = std::atoi(dports[0].c_str());
    if (dport <= 0 || dport > 65535) continue;
    return Endpoint{*d, static_cast<uint16_t>(dport)};
  }
  return std::nullopt;
}

Result<std::shared_ptr<QuicTelemetry>> QuicTelemetry::create(ProxyInputs& inputs, PodInfo pod,
                                                             NetnsRunner runner, uint16_t port) {
  std::shared_ptr<QuicTelemetry> q(new QuicTelemetry(inputs, std::move(pod), std::move(runner),
                                                     port));
  for (bool v6 : {false, true}) {
    Endpoint bind{*policy::IpAddress::parse(v6 ? "::1" : "127.0.0.1"), port};
    auto fd = q->runner_([bind, reg = inputs.sockets, owner = q->pod_.key()]() {
      return obtainSocket(reg, SocketKey{owner, SocketTransport::Udp, bind.str()},
                          [bind] { return makeUdpSocket(bind); });
    });
    if (!fd) {
      if (v6 && (fd.error().code == EADDRNOTAVAIL || fd.error().code == EAFNOSUPPORT)) continue;
      return std::unexpected(fd.error().wrap(fmt::format("pod {}: QUIC socket", q->pod_.key())));
    }
    auto s = std::make_unique<asio::ip::udp::socket>(asio::make_strand(inputs.io));
    boost::system::error_code ec;
    s->assign(v6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), *fd, ec);
    if (ec) {
      ::close(*fd);
      return fail(fmt::format("pod {}: assign QUIC socket: {}", q->pod_.key(), ec.message()));
    }
    q->sockets_.push_back(std::move(s));
  }
  return q;
}

QuicTelemetry::~QuicTelemetry() {
  boost::system::error_code ec;
  for (auto& s : sockets_) s->close(ec);
}

void QuicTelemetry::start() {
  open_ = true;
  for (auto& s : sockets_) {
    asio::co_spawn(s->get_executor(),
                   [self = shared_from_this(), p = s.get()]() { return self->loop(p); },
                   asio::detached);
  }
}

void QuicTelemetry::close() {
  open_ = false;
  for (auto& s : sockets_) {
    asio::post(s->get_executor(), [p = s.get(), keep = weak_from_this()] {
      if (keep.expired()) return;
      boost::system::error_code ec;
      p->close(ec);
    });
  }
}

std::string QuicTelemetry::lastEvent() const {
  std::lock_guard lock(mu_);
  return lastEvent_;
}

awaitable<void> QuicTelemetry::loop(asio::ip::udp::socket* sock) {
  for (;;) {
    boost::system::error_code ec;
    Datagram d = co_await receiveDatagram(*sock, ec);
    if (!open_ || !sock->is_open() || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    auto ip = policy::IpAddress::parse(d.from.address().to_string());
    if (!ip) continue;
    seen(d.bytes, Endpoint{*ip, d.from.port()}, sock->native_handle());
  }
}

std::optional<Endpoint> QuicTelemetry::originalDst(const Endpoint& from, int fd) {
  if (inputs_.quicOriginalDst) {
    auto dst = inputs_.quicOriginalDst(fd, from);
    if (dst) return *dst;
    log::debug(kLog, "pod {}: {}; trying conntrack", pod_.key(), dst.error().str());
  }
  std::string table;
  (void)runner_([&table]() -> Result<int> {
    std::ifstream f("/proc/thread-self/net/nf_conntrack");
    std::ostringstream ss;
    ss << f.rdbuf();
    table = ss.str();
    return 0;
  });
  return originalDstFromConntrack(table, from, port_);
}

void QuicTelemetry::seen(std::span<const uint8_t> datagram, const Endpoint& from, int fd) {
  QuicInitialInfo info = parseQuicInitial(datagram);
  if (!info.isQuic) return;  // other UDP to 443: dropped without a word, like all UDP
  attempts_++;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (now - lastLookup_ < kLookupInterval) return;
    lastLookup_ = now;
  }
  auto dst = originalDst(from, fd);
  std::string dstText = dst ? dst->str() : "?";
  std::string sni = info.sni.empty() ? "-" : info.sni;
  std::string key = dstText + " " + sni;
  std::string event = fmt::format("pod {} tried QUIC to {} sni={}", pod_.key(), dstText, sni);
  {
    std::lock_guard lock(mu_);
    auto it = lastLogged_.find(key);
    if (it != lastLogged_.end() && now - it->second < kLogInterval) return;
    if (lastLogged_.size() >= kMaxTracked) lastLogged_.clear();
    lastLogged_[key] = now;
    lastEvent_ = event;
  }
  events_++;
  log::warn(kLog, "{}", event);
  if (inputs_.events) {
    Event e;
    e.kind = "quic";
    e.ns = pod_.ns;
    e.pod = pod_.name;
    e.text = fmt::format("tried QUIC to {} sni={}: refused (udp/443 ends at the telemetry socket)", dstText, sni);
    e.fields = {{"dst", dstText}, {"sni", sni}, {"decision", "deny"}, {"reason", "quic"}};
    inputs_.events->append(std::move(e));
  }
}

}  // namespace tollgate::proxy
