#include "proxy/socket_registry.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "common/high_fd.h"
#include "common/log.h"
#include "proxy/socket_util.h"

namespace tollgate::proxy {
namespace {

constexpr std::string_view kLog = "handoff";
constexpr std::string_view kManifestMagic = "tollgate-handoff-manifest";
constexpr size_t kMaxManifestEntries = 65536;
#ifndef SO_COOKIE
constexpr int SO_COOKIE = 57;
#endif

bool validOwner(std::string_view owner) {
  if (owner == "node") return true;
  auto slash = owner.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == owner.size()) return false;
  for (std::string_view part : {owner.substr(0, slash), owner.substr(slash + 1)}) {
    if (part == "." || part == "..") return false;  // pod state keys are file names
  }
  for (size_t i = 0; i < owner.size(); ++i) {
    char c = owner[i];
    if (i == slash) continue;
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

Result<uint64_t> parseU64(std::string_view s, std::string_view what) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    return fail(fmt::format("{} '{}' is not a number", what, s));
  }
  return v;
}

std::string_view nextField(std::string_view& rest) {
  auto sp = rest.find(' ');
  std::string_view f = rest.substr(0, sp);
  rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
  return f;
}

int getIntOpt(int fd, int level, int opt, bool* ok) {
  int v = 0;
  socklen_t len = sizeof v;
  *ok = ::getsockopt(fd, level, opt, &v, &len) == 0;
  return v;
}

}  // namespace

std::string_view toString(SocketTransport t) {
  switch (t) {
    case SocketTransport::Tcp: return "tcp";
    case SocketTransport::Udp: return "udp";
    case SocketTransport::Unix: return "unix";
  }
  return "?";
}

std::optional<SocketTransport> parseSocketTransport(std::string_view s) {
  if (s == "tcp") return SocketTransport::Tcp;
  if (s == "udp") return SocketTransport::Udp;
  if (s == "unix") return SocketTransport::Unix;
  return std::nullopt;
}

std::string SocketKey::str() const {
  return fmt::format("{} {} {}", owner, toString(transport), local);
}

std::string encodeManifest(const std::vector<ManifestEntry>& entries) {
  std::string out = fmt::format("{} 1 {}\n", kManifestMagic, entries.size());
  for (const auto& e : entries) {
    out += fmt::format("{} {} {} {}\n", toString(e.key.transport), e.netnsInode, e.key.owner,
                       e.key.local);
  }
  return out;
}

Result<std::vector<ManifestEntry>> decodeManifest(std::string_view text) {
  auto lineEnd = text.find('\n');
  if (lineEnd == std::string_view::npos) return fail("manifest: no header line");
  std::string_view header = text.substr(0, lineEnd);
  text.remove_prefix(lineEnd + 1);
  if (nextField(header) != kManifestMagic) return fail("manifest: not a handoff manifest");
  if (nextField(header) != "1") return fail("manifest: unsupported version");
  auto count = parseU64(nextField(header), "manifest: count");
  if (!count) return std::unexpected(count.error());
  if (!header.empty()) return fail("manifest: trailing data in the header");
  if (*count > kMaxManifestEntries) {
    return fail(fmt::format("manifest: {} entries exceed the limit {}", *count,
                            kMaxManifestEntries));
  }
  std::vector<ManifestEntry> out;
  out.reserve(*count);
  while (!text.empty()) {
    lineEnd = text.find('\n');
    if (lineEnd == std::string_view::npos) return fail("manifest: last line is not terminated");
    std::string_view rest = text.substr(0, lineEnd);
    text.remove_prefix(lineEnd + 1);
    size_t lineNo = out.size() + 2;
    ManifestEntry e;
    auto transport = parseSocketTransport(nextField(rest));
    if (!transport) return fail(fmt::format("manifest line {}: unknown transport", lineNo));
    e.key.transport = *transport;
    auto inode = parseU64(nextField(rest), "netns inode");
    if (!inode) return std::unexpected(inode.error().wrap(fmt::format("manifest line {}", lineNo)));
    e.netnsInode = *inode;
    e.key.owner = std::string(nextField(rest));
    if (!validOwner(e.key.owner)) {
      return fail(fmt::format("manifest line {}: invalid owner '{}'", lineNo, e.key.owner));
    }
    if (rest.empty()) return fail(fmt::format("manifest line {}: no local address", lineNo));
    e.key.local = std::string(rest);
    out.push_back(std::move(e));
  }
  if (out.size() != *count) {
    return fail(fmt::format("manifest: header says {} entries, found {}", *count, out.size()));
  }
  return out;
}

Result<uint64_t> currentNetnsInode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return failErrno("stat own netns");
  return static_cast<uint64_t>(st.st_ino);
}

Result<SocketFacts> socketFacts(int fd) {
  SocketFacts f;
  bool ok = false;
  int domain = getIntOpt(fd, SOL_SOCKET, SO_DOMAIN, &ok);
  if (!ok) return failErrno("getsockopt SO_DOMAIN");
  int type = getIntOpt(fd, SOL_SOCKET, SO_TYPE, &ok);
  if (!ok) return failErrno("getsockopt SO_TYPE");
  if (domain == AF_UNIX && type == SOCK_STREAM) {
    f.transport = SocketTransport::Unix;
  } else if ((domain == AF_INET || domain == AF_INET6) && type == SOCK_STREAM) {
    f.transport = SocketTransport::Tcp;
  } else if ((domain == AF_INET || domain == AF_INET6) && type == SOCK_DGRAM) {
    f.transport = SocketTransport::Udp;
  } else {
    return fail(fmt::format("socket of domain {} type {} is not one the agent hands over", domain,
                            type));
  }
  if (type == SOCK_STREAM) f.listening = getIntOpt(fd, SOL_SOCKET, SO_ACCEPTCONN, &ok) != 0 && ok;
  if (f.transport == SocketTransport::Unix) {
    sockaddr_un un{};
    socklen_t len = sizeof un;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&un), &len) != 0) {
      return failErrno("getsockname");
    }
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    f.local = std::string(un.sun_path, ::strnlen(un.sun_path, n));
  } else {
    auto ep = localEndpoint(fd);
    if (!ep) return std::unexpected(ep.error());
    f.local = ep->str();
  }
  int ns = ::ioctl(fd, SIOCGSKNS);
  if (ns < 0) return failErrno("ioctl SIOCGSKNS");
  struct stat st {};
  int rc = ::fstat(ns, &st);
  ::close(ns);
  if (rc != 0) return failErrno("fstat socket netns");
  f.netnsInode = static_cast<uint64_t>(st.st_ino);
  uint64_t cookie = 0;
  socklen_t clen = sizeof cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &clen) != 0) {
    return failErrno("getsockopt SO_COOKIE");
  }
  f.cookie = cookie;
  return f;
}

SocketRegistry::~SocketRegistry() { dropUnclaimed(); }

Status SocketRegistry::addInherited(const ManifestEntry& entry, int fd) {
  auto facts = socketFacts(fd);
  Status st;
  if (!facts) {
    st = std::unexpected(facts.error());
  } else if (facts->transport != entry.key.transport) {
    st = fail(fmt::format("is a {} socket", toString(facts->transport)));
  } else if (facts->transport != SocketTransport::Udp && !facts->listening) {
    st = fail("is not listening");
  } else if (facts->local != entry.key.local) {
    st = fail(fmt::format("is bound to {}", facts->local));
  } else if (facts->netnsInode != entry.netnsInode) {
    st = fail(fmt::format("lives in netns {}, not {}", facts->netnsInode, entry.netnsInode));
  }
  std::lock_guard lock(mu_);
  if (!st) {
    ::close(fd);
    rejected_++;
    return std::unexpected(st.error().wrap("inherited socket " + entry.key.str()));
  }
  inherited_.emplace(entry.key, Inherited{fd, facts->netnsInode});
  return {};
}

size_t SocketRegistry::inheritedCount() const {
  std::lock_guard lock(mu_);
  return inherited_.size();
}

std::vector<SocketKey> SocketRegistry::dropUnclaimed() {
  std::lock_guard lock(mu_);
  std::vector<SocketKey> out;
  for (auto& [key, in] : inherited_) {
    ::close(in.fd);
    out.push_back(key);
  }
  inherited_.clear();
  return out;
}

Result<int> SocketRegistry::obtain(const SocketKey& key,
                                   const std::function<Result<int>()>& make) {
  auto here = currentNetnsInode();
  {
    std::lock_guard lock(mu_);
    auto [lo, hi] = inherited_.equal_range(key);
    for (auto it = lo; it != hi; ++it) {
      if (!here || it->second.netnsInode != *here) {
        // Same name, another netns (a pod re-created under its old name): not this pod's socket.
        log::warn(kLog, "inherited socket {} lives in netns {}, the caller is in {}: not used",
                  key.str(), it->second.netnsInode, here ? *here : 0);
        continue;
      }
      int fd = it->second.fd;
      inherited_.erase(it);
      taken_++;
      record(key, fd);
      log::debug(kLog, "inherited socket {} taken over", key.str());
      return fd;
    }
  }
  auto fd = make();
  if (!fd) return fd;
  std::lock_guard lock(mu_);
  record(key, *fd);
  return fd;
}

void SocketRegistry::record(const SocketKey& key, int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) {
    log::warn(kLog, "socket {}: no SO_COOKIE ({}): it will not be handed over", key.str(),
              std::strerror(errno));
    return;
  }
  live_[key] = Live{fd, cookie};
}

std::vector<SocketRegistry::Exported> SocketRegistry::exportLive() {
  std::lock_guard lock(mu_);
  std::vector<Exported> out;
  for (auto it = live_.begin(); it != live_.end();) {
    // High numbers, as for every long-lived socket (common/high_fd.h).
    int d = ::fcntl(it->second.fd, F_DUPFD_CLOEXEC, kHighFdBase);
    if (d < 0) d = ::fcntl(it->second.fd, F_DUPFD_CLOEXEC, 0);
    std::optional<SocketFacts> facts;
    if (d >= 0) {
      if (auto f = socketFacts(d)) facts = *f;
    }
    if (!facts || facts->cookie != it->second.cookie) {
      // Closed by its owner since (the fd number may belong to another socket by now).
      if (d >= 0) ::close(d);
      it = live_.erase(it);
      continue;
    }
    out.push_back(Exported{ManifestEntry{it->first, facts->netnsInode}, d});
    ++it;
  }
  return out;
}

size_t SocketRegistry::pruneClosed() {
  std::lock_guard lock(mu_);
  for (auto it = live_.begin(); it != live_.end();) {
    uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    bool open = ::getsockopt(it->second.fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0 &&
                cookie == it->second.cookie;
    it = open ? std::next(it) : live_.erase(it);
  }
  return live_.size();
}

size_t SocketRegistry::liveCount() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

uint64_t SocketRegistry::inheritedTaken() const {
  std::lock_guard lock(mu_);
  return taken_;
}

uint64_t SocketRegistry::inheritedRejected() const {
  std::lock_guard lock(mu_);
  return rejected_;
}

Result<int> obtainSocket(SocketRegistry* registry, const SocketKey& key,
                         const std::function<Result<int>()>& make) {
  if (registry == nullptr) return make();
  return registry->obtain(key, make);
}

}  // namespace tollgate::proxy
