// connload: connection-level load for the churn and footprint benchmarks (issue 6).
//
//   connload churn --connect IP:PORT --host NAME [--path P] --clients N --duration S [--warmup S]
//   connload hold  --connect IP:PORT --host NAME --count K [--parallel P]
//
// churn: N concurrent clients, each in a loop: connect, one small HTTP/1.1 request with
// "Connection: close", read the whole response, wait for the server's close, close. Prints one
// JSON line: connections per second over the measured window, failures by kind, latency p50/p99.
// h2load cannot do this (it keeps one connection per client), hence this tool.
//
// hold: opens K connections (P at a time), sends one keep-alive request on each and reads its
// response, so every connection is fully set up through a proxy (sniffed, decided, relayed), then
// keeps them all open and idle. Prints {"mode":"hold","open":...} once set up, then waits for
// stdin to close, SIGTERM/SIGINT or --hold-seconds, and prints how many the peer closed meanwhile.
//
// Single-threaded epoll on purpose: one core of this tool does far more connections per second
// than any proxy under test on the same machine (bench/scenarios/churn.sh measures it direct).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string mode;
  sockaddr_in target{};
  std::string host;
  std::string path = "/";
  int clients = 1;
  double duration = 5;
  double warmup = 1;
  int count = 1000;
  int parallel = 64;
  int timeoutMs = 5000;
  double holdSeconds = 0;  // hold: 0 = until stdin closes or a signal
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "connload: %s\n"
               "usage: connload churn --connect IP:PORT --host NAME [--path P] --clients N "
               "--duration S [--warmup S] [--timeout-ms MS]\n"
               "       connload hold --connect IP:PORT --host NAME --count K [--parallel P] "
               "[--timeout-ms MS] [--hold-seconds S]\n",
               why);
  std::exit(2);
}

Args parseArgs(int argc, char** argv) {
  if (argc < 2) usage("no mode");
  Args a;
  a.mode = argv[1];
  if (a.mode != "churn" && a.mode != "hold") usage("mode must be churn or hold");
  bool haveTarget = false;
  for (int i = 2; i < argc; ++i) {
    std::string f = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + f).c_str());
    std::string v = argv[++i];
    if (f == "--connect") {
      auto colon = v.rfind(':');
      if (colon == std::string::npos) usage("--connect needs IP:PORT");
      a.target.sin_family = AF_INET;
      a.target.sin_port = htons(static_cast<uint16_t>(std::atoi(v.c_str() + colon + 1)));
      if (inet_pton(AF_INET, v.substr(0, colon).c_str(), &a.target.sin_addr) != 1) {
        usage("--connect: not an IPv4 address");
      }
      haveTarget = true;
    } else if (f == "--host") {
      a.host = v;
    } else if (f == "--path") {
      a.path = v;
    } else if (f == "--clients") {
      a.clients = std::max(1, std::atoi(v.c_str()));
    } else if (f == "--duration") {
      a.duration = std::atof(v.c_str());
    } else if (f == "--warmup") {
      a.warmup = std::atof(v.c_str());
    } else if (f == "--count") {
      a.count = std::max(0, std::atoi(v.c_str()));
    } else if (f == "--parallel") {
      a.parallel = std::max(1, std::atoi(v.c_str()));
    } else if (f == "--hold-seconds") {
      a.holdSeconds = std::atof(v.c_str());
    } else if (f == "--timeout-ms") {
      a.timeoutMs = std::max(1, std::atoi(v.c_str()));
    } else {
      usage(("unknown flag " + f).c_str());
    }
  }
  if (!haveTarget) usage("--connect is required");
  if (a.host.empty()) usage("--host is required");
  return a;
}

void raiseFdLimit(size_t want) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  if (r.rlim_cur >= want) return;
  r.rlim_cur = std::min<rlim_t>(r.rlim_max, want);
  setrlimit(RLIMIT_NOFILE, &r);
}

enum class Phase { Connecting, Writing, Reading, Draining, Idle };

// Response progress: enough HTTP/1.1 to know when a response is complete (Content-Length or a
// chunked body's last chunk); anything else completes at EOF.
struct Response {
  std::string buf;
  size_t headerEnd = std::string::npos;
  long contentLength = -1;
  bool chunked = false;
  int status = 0;

  void reset() {
    buf.clear();
    headerEnd = std::string::npos;
    contentLength = -1;
    chunked = false;
    status = 0;
  }

  bool complete() {
    if (headerEnd == std::string::npos) {
      auto e = buf.find("\r\n\r\n");
      if (e == std::string::npos) return false;
      headerEnd = e + 4;
      if (buf.size() >= 12 && buf.compare(0, 5, "HTTP/") == 0) status = std::atoi(buf.c_str() + 9);
      std::string lower(buf, 0, headerEnd);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (auto p = lower.find("\r\ncontent-length:"); p != std::string::npos) {
        contentLength = std::atol(lower.c_str() + p + 17);
      }
      chunked = lower.find("\r\ntransfer-encoding: chunked") != std::string::npos;
    }
    if (contentLength >= 0) return buf.size() >= headerEnd + static_cast<size_t>(contentLength);
    if (chunked) return buf.size() >= headerEnd + 5 && buf.ends_with("0\r\n\r\n");
    return false;
  }
};

struct Conn {
  int fd = -1;
  Phase phase = Phase::Connecting;
  size_t written = 0;
  Clock::time_point started;
  Response resp;
};

struct Stats {
  long ok = 0;
  long connectErr = 0;
  long resetErr = 0;
  long timeoutErr = 0;
  long statusErr = 0;
  long eofEarly = 0;
  std::vector<uint32_t> latUs;
  long failed() const { return connectErr + resetErr + timeoutErr + statusErr + eofEarly; }
};

volatile sig_atomic_t gStop = 0;
void onSignal(int) { gStop = 1; }

class Loop {
 public:
  explicit Loop(const Args& a) : a_(a) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    request_ = "GET " + a.path + " HTTP/1.1\r\nHost: " + a.host + "\r\nUser-Agent: connload\r\n" +
               (a.mode == "churn" ? "Connection: close\r\n" : "") + "\r\n";
  }

  // Starts a connection in slot c; false if socket() itself failed (fd exhaustion).
  bool start(Conn& c) {
    c.resp.reset();
    c.written = 0;
    c.started = Clock::now();
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return false;
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(c.fd, reinterpret_cast<const sockaddr*>(&a_.target), sizeof a_.target);
    if (r != 0 && errno != EINPROGRESS) {
      ::close(c.fd);
      c.fd = -1;
      return false;
    }
    c.phase = Phase::Connecting;
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &c;
    epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    return true;
  }

  void finish(Conn& c) {
    if (c.fd >= 0) ::close(c.fd);  // close() also removes it from the epoll set
    c.fd = -1;
  }

  // Advances c on readiness. Returns true when the connection's request is done (ok or failed);
  // `failure` then says which counter to bump (nullptr: success).
  bool step(Conn& c, uint32_t events, long Stats::** failure) {
    *failure = nullptr;
    if (c.phase == Phase::Connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        *failure = &Stats::connectErr;
        return true;
      }
      if (!(events & EPOLLOUT)) return false;
      c.phase = Phase::Writing;
    }
    if (c.phase == Phase::Writing) {
      while (c.written < request_.size()) {
        ssize_t n = ::send(c.fd, request_.data() + c.written, request_.size() - c.written,
                           MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN) return false;
          *failure = &Stats::resetErr;
          return true;
        }
        c.written += static_cast<size_t>(n);
      }
      c.phase = Phase::Reading;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.ptr = &c;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    }
    char tmp[16384];
    for (;;) {
      ssize_t n = ::recv(c.fd, tmp, sizeof tmp, 0);
      if (n > 0) {
        if (c.phase == Phase::Reading) {
          c.resp.buf.append(tmp, static_cast<size_t>(n));
          if (c.resp.complete()) {
            if (c.resp.status < 200 || c.resp.status >= 300) {
              *failure = &Stats::statusErr;
              return true;
            }
            if (a_.mode == "hold") {
              c.phase = Phase::Idle;
              return true;
            }
            c.phase = Phase::Draining;  // wait for the server's close (Connection: close)
          }
        }
        continue;
      }
      if (n == 0) {
        if (c.phase == Phase::Draining) return true;
        if (c.phase == Phase::Reading && c.resp.headerEnd != std::string::npos &&
            c.resp.contentLength < 0 && !c.resp.chunked) {
          // Close-delimited body: EOF completes it.
          if (c.resp.status < 200 || c.resp.status >= 300) *failure = &Stats::statusErr;
          return true;
        }
        if (c.phase == Phase::Idle) *failure = &Stats::eofEarly;
        if (c.phase == Phase::Reading) *failure = &Stats::eofEarly;
        return true;
      }
      if (errno == EAGAIN) return false;
      *failure = &Stats::resetErr;
      return true;
    }
  }

  int ep() const { return ep_; }

 private:
  const Args& a_;
  int ep_;
  std::string request_;
};

uint32_t percentile(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

int runChurn(const Args& a) {
  raiseFdLimit(static_cast<size_t>(a.clients) + 64);
  Loop loop(a);
  std::vector<Conn> conns(static_cast<size_t>(a.clients));
  Stats stats;
  stats.latUs.reserve(1 << 20);
  auto t0 = Clock::now();
  auto measureFrom = t0 + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(a.warmup));
  auto measureTo = measureFrom + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(a.duration));
  auto timeout = std::chrono::milliseconds(a.timeoutMs);
  for (auto& c : conns) {
    if (!loop.start(c)) ++stats.connectErr;
  }
  std::vector<epoll_event> evs(256);
  auto lastSweep = Clock::now();
  while (!gStop) {
    auto now = Clock::now();
    if (now >= measureTo) break;
    int n = epoll_wait(loop.ep(), evs.data(), static_cast<int>(evs.size()), 50);
    now = Clock::now();
    bool measuring = now >= measureFrom && now < measureTo;
    for (int i = 0; i < n; ++i) {
      auto& c = *static_cast<Conn*>(evs[static_cast<size_t>(i)].data.ptr);
      if (c.fd < 0) continue;
      long Stats::*failure = nullptr;
      if (!loop.step(c, evs[static_cast<size_t>(i)].events, &failure)) continue;
      loop.finish(c);
      if (measuring) {
        if (failure) {
          ++(stats.*failure);
        } else {
          ++stats.ok;
          stats.latUs.push_back(static_cast<uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(now - c.started).count()));
        }
      }
      if (!loop.start(c) && measuring) ++stats.connectErr;
    }
    // Slots whose socket() failed, and stuck connections, are retried/timed out here.
    if (now - lastSweep > std::chrono::milliseconds(100)) {
      lastSweep = now;
      for (auto& c : conns) {
        if (c.fd >= 0 && now - c.started > timeout) {
          loop.finish(c);
          if (measuring) ++stats.timeoutErr;
        }
        if (c.fd < 0 && !loop.start(c) && measuring) ++stats.connectErr;
      }
    }
  }
  double secs = std::chrono::duration<double>(std::min(Clock::now(), measureTo) - measureFrom)
                    .count();
  for (auto& c : conns) loop.finish(c);
  auto p50 = percentile(stats.latUs, 0.50);
  auto p99 = percentile(stats.latUs, 0.99);
  std::printf(
      "{\"mode\":\"churn\",\"clients\":%d,\"seconds\":%.3f,\"ok\":%ld,\"failed\":%ld,"
      "\"cps\":%.1f,\"p50_us\":%u,\"p99_us\":%u,\"errors\":{\"connect\":%ld,\"reset\":%ld,"
      "\"timeout\":%ld,\"status\":%ld,\"eof\":%ld}}\n",
      a.clients, secs, stats.ok, stats.failed(), secs > 0 ? static_cast<double>(stats.ok) / secs : 0,
      p50, p99, stats.connectErr, stats.resetErr, stats.timeoutErr, stats.statusErr,
      stats.eofEarly);
  return stats.ok > 0 ? 0 : 1;
}

int runHold(const Args& a) {
  raiseFdLimit(static_cast<size_t>(a.count) + 64);
  Loop loop(a);
  std::vector<Conn> conns(static_cast<size_t>(a.count));
  Stats stats;
  size_t next = 0, inFlight = 0, open = 0;
  std::vector<epoll_event> evs(256);
  auto timeout = std::chrono::milliseconds(a.timeoutMs);
  auto lastSweep = Clock::now();
  while (!gStop && (next < conns.size() || inFlight > 0)) {
    while (next < conns.size() && inFlight < static_cast<size_t>(a.parallel)) {
      if (loop.start(conns[next])) {
        ++inFlight;
      } else {
        ++stats.connectErr;
      }
      ++next;
    }
    int n = epoll_wait(loop.ep(), evs.data(), static_cast<int>(evs.size()), 50);
    for (int i = 0; i < n; ++i) {
      auto& c = *static_cast<Conn*>(evs[static_cast<size_t>(i)].data.ptr);
      if (c.fd < 0 || c.phase == Phase::Idle) continue;
      long Stats::*failure = nullptr;
      if (!loop.step(c, evs[static_cast<size_t>(i)].events, &failure)) continue;
      --inFlight;
      if (failure) {
        ++(stats.*failure);
        loop.finish(c);
      } else {
        ++open;
      }
    }
    auto now = Clock::now();
    if (now - lastSweep > std::chrono::milliseconds(100)) {
      lastSweep = now;
      for (size_t k = 0; k < next; ++k) {
        auto& c = conns[k];
        if (c.fd >= 0 && c.phase != Phase::Idle && now - c.started > timeout) {
          loop.finish(c);
          --inFlight;
          ++stats.timeoutErr;
        }
      }
    }
  }
  std::printf("{\"mode\":\"hold\",\"open\":%zu,\"failed\":%ld}\n", open, stats.failed());
  std::fflush(stdout);
  // Idle: watch the held connections (a peer close is counted) and, without --hold-seconds,
  // stdin (EOF = stop).
  if (a.holdSeconds <= 0) {
    epoll_event sev{};
    sev.events = EPOLLIN | EPOLLHUP;
    sev.data.ptr = nullptr;
    epoll_ctl(loop.ep(), EPOLL_CTL_ADD, STDIN_FILENO, &sev);
  }
  long dropped = 0;
  const auto holdUntil = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(a.holdSeconds));
  while (!gStop && (a.holdSeconds <= 0 || Clock::now() < holdUntil)) {
    int n = epoll_wait(loop.ep(), evs.data(), static_cast<int>(evs.size()), 1000);
    for (int i = 0; i < n; ++i) {
      auto* p = static_cast<Conn*>(evs[static_cast<size_t>(i)].data.ptr);
      if (p == nullptr) {
        char b[256];
        if (::read(STDIN_FILENO, b, sizeof b) <= 0) gStop = 1;
        continue;
      }
      if (p->fd < 0) continue;
      char b[4096];
      ssize_t r = ::recv(p->fd, b, sizeof b, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN)) {
        ++dropped;
        loop.finish(*p);
      }
    }
  }
  std::fprintf(stderr, "connload hold: %ld of %zu connections closed by the peer while held\n",
               dropped, open);
  std::printf("{\"mode\":\"hold\",\"dropped\":%ld}\n", dropped);
  for (auto& c : conns) loop.finish(c);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parseArgs(argc, argv);
  struct sigaction sa{};
  sa.sa_handler = onSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return a.mode == "churn" ? runChurn(a) : runHold(a);
}
