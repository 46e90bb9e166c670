#include "agent/handoff.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "common/framing.h"
#include "common/high_fd.h"
#include "common/log.h"
#include "proxy/metrics.h"

namespace tollgate::agent {
namespace {

constexpr std::string_view kLog = "handoff";
constexpr std::string_view kTakeover = "takeover 1";
constexpr std::string_view kEnd = "end";
constexpr std::string_view kDone = "done";
constexpr std::string_view kRetiring = "retiring";
constexpr std::string_view kRefused = "refused ";

void setTimeouts(int sock, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Result<std::string> recvText(int sock) {
  auto f = recvFrame(sock);
  if (!f) return std::unexpected(f.error());
  if (f->fd >= 0) ::close(f->fd);  // no fd is expected here
  return std::move(f->payload);
}

}  // namespace

std::string HandoffCounters::prometheus() const {
  struct Row {
    const char* name;
    const char* help;
    uint64_t v;
  };
  const Row rows[] = {
      {"tollgate_handoff_sent_total", "Handoffs in which this agent gave its sockets away.",
       sent.load()},
      {"tollgate_handoff_received_total", "Handoffs in which this agent took the sockets over.",
       received.load()},
      {"tollgate_handoff_failed_total",
       "Aborted handoffs (the serving agent kept serving).", failed.load()},
      {"tollgate_handoff_sockets_sent_total", "Listening sockets handed to a new agent.",
       socketsSent.load()},
      {"tollgate_handoff_sockets_received_total", "Listening sockets taken over from an agent.",
       socketsReceived.load()},
      {"tollgate_handoff_drained_connections_total",
       "Connections that ended on their own while this agent drained after a handoff.",
       drained.load()},
      {"tollgate_handoff_drain_cut_connections_total",
       "Connections still open when the drain time ran out (closed).", cut.load()},
  };
  std::string out;
  for (const auto& r : rows) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", r.name, r.help, r.name);
    out += proxy::formatSample(r.name, {}, static_cast<double>(r.v));
  }
  return out;
}

Result<std::unique_ptr<HandoffClient>> HandoffClient::takeover(const std::string& path,
                                                               proxy::SocketRegistry& registry,
                                                               HandoffCounters& counters,
                                                               int timeoutMs) {
  if (::access(path.c_str(), F_OK) != 0) return std::unique_ptr<HandoffClient>();
  auto sock = connectUnix(path, timeoutMs);
  if (!sock) {
    // A socket file nobody listens on: the previous agent is gone (stopped or killed).
    log::info(kLog, "{}: no running agent answers ({}): fresh start", path, sock.error().str());
    return std::unique_ptr<HandoffClient>();
  }
  std::unique_ptr<HandoffClient> client(new HandoffClient(*sock, counters));
  auto abort = [&](const Error& e) -> Result<std::unique_ptr<HandoffClient>> {
    counters.failed++;
    auto dropped = registry.dropUnclaimed();
    return std::unexpected(e.wrap(fmt::format(
        "handoff from the running agent ({}; {} sockets received were closed; it keeps serving)",
        path, dropped.size())));
  };
  log::info(kLog, "{}: a running agent answers: asking for its sockets", path);
  if (auto st = sendFrame(*sock, std::string(kTakeover)); !st) return abort(st.error());
  auto head = recvText(*sock);
  if (!head) return abort(head.error());
  if (head->starts_with(kRefused)) return abort(Error{"refused: " + head->substr(kRefused.size())});
  auto entries = proxy::decodeManifest(*head);
  if (!entries) return abort(entries.error());
  size_t rejected = 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    auto f = recvFrame(*sock);
    if (!f) return abort(f.error());
    if (f->fd < 0 || f->payload != fmt::format("fd {}", i)) {
      if (f->fd >= 0) ::close(f->fd);
      return abort(Error{fmt::format("socket {}: expected 'fd {}' with an fd", i, i)});
    }
    // Long-lived from here on: kept out of libnftables' select() range (common/high_fd.h).
    if (auto st = registry.addInherited((*entries)[i], moveFdHigh(f->fd)); !st) {
      // Left to be created afresh (which fails while the old agent holds the address).
      rejected++;
      log::error(kLog, "{}", st.error().str());
    }
  }
  auto end = recvText(*sock);
  if (!end) return abort(end.error());
  if (*end != kEnd) return abort(Error{"expected 'end' after the sockets"});
  client->sockets_ = entries->size() - rejected;
  counters.socketsReceived += client->sockets_;
  log::info(kLog, "received {} listening sockets ({} rejected) from the running agent",
            client->sockets_, rejected);
  return client;
}

HandoffClient::~HandoffClient() {
  if (!committed_) log::warn(kLog, "handoff not completed: the running agent keeps serving");
  if (sock_ >= 0) ::close(sock_);
}

Status HandoffClient::commit(std::chrono::milliseconds timeout) {
  setTimeouts(sock_, timeout);
  Status st = sendFrame(sock_, std::string(kDone));
  if (st) {
    auto reply = recvText(sock_);
    if (!reply) {
      st = std::unexpected(reply.error());
    } else if (*reply != kRetiring) {
      st = fail(fmt::format("unexpected answer '{}'", reply->substr(0, 64)));
    }
  }
  if (!st) {
    counters_.failed++;
    return std::unexpected(st.error().wrap("handoff commit"));
  }
  committed_ = true;
  counters_.received++;
  ::close(sock_);
  sock_ = -1;
  return {};
}

HandoffServer::HandoffServer(std::string path, proxy::SocketRegistry& registry,
                             HandoffCounters& counters, Hooks hooks,
                             std::chrono::milliseconds commitTimeout)
    : path_(std::move(path)),
      registry_(registry),
      counters_(counters),
      hooks_(std::move(hooks)),
      commitTimeout_(commitTimeout) {}

HandoffServer::~HandoffServer() { stop(); }

Status HandoffServer::start() {
  auto fd = listenUnix(path_, 0600);
  if (!fd) return std::unexpected(fd.error().wrap("handoff socket"));
  listenFd_ = *fd;
  wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) return failErrno("handoff socket: eventfd");
  thread_ = std::thread([this] { loop(); });
  log::info(kLog, "listening on {}", path_);
  return {};
}

void HandoffServer::stop() {
  stopping_ = true;
  if (int c = conn_.load(); c >= 0) ::shutdown(c, SHUT_RDWR);  // a takeover waiting for "done"
  if (wakeFd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wakeFd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (int* fd : {&listenFd_, &wakeFd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void HandoffServer::loop() {
  while (!stopping_) {
    pollfd fds[2] = {{listenFd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::error(kLog, "poll: {}", std::strerror(errno));
      return;
    }
    if (stopping_ || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int conn = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    conn_ = conn;
    bool retired = serve(conn);
    conn_ = -1;
    ::close(conn);
    if (retired) return;
  }
}

bool HandoffServer::serve(int conn) {
  setTimeouts(conn, std::chrono::seconds(5));
  auto req = recvText(conn);
  if (!req) {
    log::warn(kLog, "bad request: {}", req.error().str());
    return false;
  }
  if (*req != kTakeover) {
    log::warn(kLog, "unknown request '{}'", req->substr(0, 64));
    (void)sendFrame(conn, std::string(kRefused) + "unknown request");
    return false;
  }
  log::info(kLog, "a new agent asks for the sockets: pausing enrollment");
  if (hooks_.pause) hooks_.pause();
  auto abort = [&](const std::string& why) {
    counters_.failed++;
    log::error(kLog, "handoff failed: {}; this agent keeps serving (rules untouched)", why);
    if (hooks_.resume) hooks_.resume();
    return false;
  };

  auto exported = registry_.exportLive();
  std::vector<proxy::ManifestEntry> entries;
  for (const auto& e : exported) entries.push_back(e.entry);
  Status st = sendFrame(conn, proxy::encodeManifest(entries));
  for (size_t i = 0; i < exported.size() && st; ++i) {
    st = sendFrame(conn, fmt::format("fd {}", i), exported[i].fd);
  }
  for (const auto& e : exported) ::close(e.fd);  // the new agent holds its own references now
  if (st) st = sendFrame(conn, std::string(kEnd));
  if (!st) return abort("send sockets: " + st.error().str());
  log::info(kLog, "sent {} listening sockets; waiting up to {} ms for the new agent",
            entries.size(), commitTimeout_.count());

  setTimeouts(conn, commitTimeout_);
  auto done = recvText(conn);
  if (!done) return abort("no 'done' from the new agent: " + done.error().str());
  if (*done != kDone) {
    return abort(fmt::format("unexpected '{}' instead of 'done'", done->substr(0, 64)));
  }
  if (hooks_.stopAccepting) hooks_.stopAccepting();
  // Counted before the new agent hears 'retiring': once its start() returns, the count is there.
  counters_.sent++;
  counters_.socketsSent += entries.size();
  if (auto s = sendFrame(conn, std::string(kRetiring)); !s) {
    // Too late to carry on: this agent's listeners are closed. The new agent accepts unless it
    // died right now, in which case the pods are closed (rules stay) until an agent starts.
    counters_.sent--;
    counters_.socketsSent -= entries.size();
    counters_.failed++;
    log::error(kLog, "answer 'retiring': {}; this agent stopped accepting already and retires",
               s.error().str());
    if (hooks_.retire) hooks_.retire();
    return true;
  }
  log::info(kLog, "handoff complete: the new agent accepts on all {} sockets", entries.size());
  if (hooks_.retire) hooks_.retire();
  return true;
}

}  // namespace tollgate::agent
