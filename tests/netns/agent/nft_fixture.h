#pragma once

// Helpers for the nftables redirect/fence tests: throwaway network namespaces (removed even when a
// test fails), veth links, and sockets created inside a namespace. Everything is in a namespace
// of its own so other test files of this executable can have helpers with the same names.

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/netns.h"
#include "agent/rule_report.h"
#include "common/error.h"
#include "common/fd.h"

extern char** environ;

namespace tollgate::agent::nft_testing {

// The bound of every wait for something that must happen (a connect, an accept, a datagram, a
// counter): it only catches hangs, so it is generous for a loaded 2-core CI machine. Waits that
// prove something does NOT happen use their own short windows.
inline constexpr int kHangMs = 30000;

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80  // <linux/netfilter_ipv6/ip6_tables.h> clashes with libc headers
#endif

using tollgate::Fd;

inline std::string randomSuffix() {
  std::random_device rd;
  return fmt::format("{:06x}", rd() & 0xffffff);
}

// Runs a program (no shell), returns its exit status (-1 if it could not run); stdout and stderr
// go to *output when given.
inline int runProgram(const std::vector<std::string>& argv, std::string* output = nullptr) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while (rc == 0 && (n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, n);
  ::close(pipefd[0]);
  if (rc != 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return -1;
  if (output) *output = std::move(out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs the command and turns a non-zero exit into an error carrying its output.
inline Status runOk(const std::vector<std::string>& argv) {
  std::string out;
  int rc = runProgram(argv, &out);
  if (rc == 0) return {};
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return fail(fmt::format("`{}` exited {}: {}", cmd, rc, out));
}

// A network namespace named tgt-<random>, deleted (with its interfaces) on destruction.
class ScratchNetns {
 public:
  static Result<ScratchNetns> create(const std::string& role) {
    std::string name = "tgt-" + role + "-" + randomSuffix();
    if (auto st = runOk({"ip", "netns", "add", name}); !st) return std::unexpected(st.error());
    ScratchNetns ns(name);  // from here the destructor cleans up
    auto handle = Netns::open("/run/netns/" + name);
    if (!handle) return std::unexpected(handle.error());
    ns.netns_.emplace(std::move(*handle));
    if (auto st = ns.ip({"link", "set", "lo", "up"}); !st) return std::unexpected(st.error());
    return ns;
  }

  ScratchNetns(ScratchNetns&& o) noexcept
      : name_(std::exchange(o.name_, {})), netns_(std::move(o.netns_)) {}
  ScratchNetns& operator=(ScratchNetns&&) = delete;
  ~ScratchNetns() {
    netns_.reset();
    if (!name_.empty()) runProgram({"ip", "netns", "del", name_});
  }

  const std::string& name() const { return name_; }
  const Netns& netns() const { return *netns_; }

  // `ip -n <name> <args...>`
  Status ip(std::vector<std::string> args) const {
    args.insert(args.begin(), {"ip", "-n", name_});
    return runOk(args);
  }
  // `ip netns exec <name> <args...>`, output captured.
  int exec(std::vector<std::string> args, std::string* output = nullptr) const {
    args.insert(args.begin(), {"ip", "netns", "exec", name_});
    return runProgram(args, output);
  }

 private:
  explicit ScratchNetns(std::string name) : name_(std::move(name)) {}
  std::string name_;
  std::optional<Netns> netns_;
};

// A veth pair with one end in each namespace, both up.
inline Status addVeth(const ScratchNetns& a, const std::string& nameA, const ScratchNetns& b,
                      const std::string& nameB) {
  if (auto st = runOk({"ip", "link", "add", nameA, "netns", a.name(), "type", "veth", "peer",
                       "name", nameB, "netns", b.name()});
      !st) {
    return st;
  }
  if (auto st = a.ip({"link", "set", nameA, "up"}); !st) return st;
  return b.ip({"link", "set", nameB, "up"});
}

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

inline SockAddr makeAddr(const std::string& ip, uint16_t port) {
  SockAddr a;
  if (ip.find(':') == std::string::npos) {
    auto* s = reinterpret_cast<sockaddr_in*>(&a.storage);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &s->sin_addr);
    a.len = sizeof(sockaddr_in);
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&a.storage);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &s->sin6_addr);
    a.len = sizeof(sockaddr_in6);
  }
  return a;
}

// "198.18.0.211:8080" or "[fd00::1]:8080".
inline std::string toString(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &s->sin_addr, text, sizeof text);
    return fmt::format("{}:{}", text, ntohs(s->sin_port));
  }
  auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof text);
  return fmt::format("[{}]:{}", text, ntohs(s->sin6_port));
}

inline uint16_t localPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                                 : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

inline Result<Fd> inNetns(const Netns& ns, const std::function<Result<int>()>& fn) {
  auto fd = ns.runFd(fn);
  if (!fd) return std::unexpected(fd.error());
  return Fd(*fd);
}

inline Result<Fd> tcpListen(const Netns& ns, const std::string& ip, uint16_t port) {
  return inNetns(ns, [&]() -> Result<int> {
    SockAddr a = makeAddr(ip, port);
    int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return failErrno("socket");
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a.family() == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd, a.get(), a.len) != 0 || ::listen(fd, 16) != 0) {
      auto err = failErrno("bind/listen " + ip);
      ::close(fd);
      return err;
    }
    return fd;
  });
}

// Starts a non-blocking connect from inside the netns; mark != 0 sets SO_MARK first.
inline Result<Fd> tcpConnectStart(const Netns& ns, const std::string& ip, uint16_t port,
                                  uint32_t mark = 0) {
  return inNetns(ns, [&]() -> Result<int> {
    SockAddr a = makeAddr(ip, port);
    int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return failErrno("socket");
    if (mark != 0 && ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
      auto err = failErrno("SO_MARK");
      ::close(fd);
      return err;
    }
    if (::connect(fd, a.get(), a.len) != 0 && errno != EINPROGRESS) {
      auto err = failErrno("connect " + ip);
      ::close(fd);
      return err;
    }
    return fd;
  });
}

// 0 once connected, the socket error if the connect failed, ETIMEDOUT if still pending.
inline int waitConnected(int fd, int timeoutMs) {
  pollfd p{fd, POLLOUT, 0};
  int n = ::poll(&p, 1, timeoutMs);
  if (n == 0) return ETIMEDOUT;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

inline bool readableWithin(int fd, int timeoutMs) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeoutMs) == 1 && (p.revents & POLLIN);
}

inline std::optional<Fd> acceptWithin(int listenFd, int timeoutMs) {
  if (!readableWithin(listenFd, timeoutMs)) return std::nullopt;
  int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return std::nullopt;
  return Fd(fd);
}

// The destination the client asked for before the REDIRECT (conntrack), as "ip:port".
inline Result<std::string> originalDst(int fd, int family) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int level = family == AF_INET ? SOL_IP : SOL_IPV6;
  int opt = family == AF_INET ? SO_ORIGINAL_DST : IP6T_SO_ORIGINAL_DST;
  if (::getsockopt(fd, level, opt, &ss, &len) != 0) return failErrno("SO_ORIGINAL_DST");
  return toString(ss);
}

inline Result<Fd> udpSocket(const Netns& ns, int family, const std::string& bindIp = "",
                            uint16_t port = 0) {
  return inNetns(ns, [&]() -> Result<int> {
    int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return failErrno("socket");
    if (!bindIp.empty()) {
      SockAddr a = makeAddr(bindIp, port);
      if (::bind(fd, a.get(), a.len) != 0) {
        auto err = failErrno("bind " + bindIp);
        ::close(fd);
        return err;
      }
    }
    return fd;
  });
}

// 0 when sent, else errno (EPERM: dropped by the local OUTPUT hook).
inline int sendTo(int fd, const std::string& ip, uint16_t port, const std::string& data) {
  SockAddr a = makeAddr(ip, port);
  return ::sendto(fd, data.data(), data.size(), 0, a.get(), a.len) < 0 ? errno : 0;
}

// One datagram within the timeout: its payload, and the sender in *from.
inline std::optional<std::string> recvWithin(int fd, int timeoutMs,
                                             sockaddr_storage* from = nullptr) {
  if (!readableWithin(fd, timeoutMs)) return std::nullopt;
  char buf[2048];
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&ss), &len);
  if (n < 0) return std::nullopt;
  if (from) *from = ss;
  return std::string(buf, n);
}

inline uint16_t icmpChecksum(const unsigned char* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (len & 1) sum += data[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

// Raw ICMP/ICMPv6 socket in the netns (root), for echo requests.
inline Result<Fd> icmpSocket(const Netns& ns, int family) {
  return inNetns(ns, [&]() -> Result<int> {
    int fd = family == AF_INET ? ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP)
                               : ::socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
    if (fd < 0) return failErrno("raw icmp socket");
    return fd;
  });
}

// Sends one echo request; 0 when sent, else errno.
inline int sendEcho(int fd, const std::string& ip) {
  unsigned char pkt[16] = {};
  bool v6 = ip.find(':') != std::string::npos;
  pkt[0] = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
  pkt[4] = 0x74;  // identifier
  pkt[7] = 1;     // sequence
  std::memcpy(pkt + 8, "tollgate", 8);
  if (!v6) {
    uint16_t sum = icmpChecksum(pkt, sizeof pkt);
    std::memcpy(pkt + 2, &sum, 2);
  }  // the kernel fills in the ICMPv6 checksum
  SockAddr a = makeAddr(ip, 0);
  return ::sendto(fd, pkt, sizeof pkt, 0, a.get(), a.len) < 0 ? errno : 0;
}

// Waits (bounded) until counter `name` reaches min packets. Counters cannot be awaited as an
// event, so this polls; it returns as soon as the value is there.
template <typename Reader>
inline uint64_t waitCounter(const Reader& read, const std::string& name, uint64_t min,
                            int timeoutMs = kHangMs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  uint64_t packets = 0;
  while (true) {
    auto c = read();
    if (c && c->count(name)) packets = c->at(name).packets;
    if (packets >= min || std::chrono::steady_clock::now() > deadline) return packets;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

inline bool isRoot() { return ::geteuid() == 0; }

}  // namespace tollgate::agent::nft_testing
