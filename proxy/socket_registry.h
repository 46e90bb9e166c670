#pragma once

// Every listening socket of the agent, so that a new agent process can take them over (listener
// handoff, agent/handoff.h) instead of binding its own while the old one still holds the ports.
//
// A socket is keyed by (owner, transport, local address): owner is the pod ("ns/name") for the
// sockets created in a pod netns (capture listeners, DNS proxy, QUIC telemetry) and "node" for the
// agent's own (cni.sock, metrics, health). Components obtain their sockets through obtainSocket():
// an inherited socket is taken when one matches (same key AND the same netns as the caller's
// thread, checked by the kernel, not by what the old agent said), otherwise `make` creates one.
// Every socket handed out is recorded so exportLive() can give them all to the next agent.
//
// The registry never owns a live socket: components close theirs as before. It remembers the fd
// number with the socket's SO_COOKIE and, on export, dup()s the fd and compares cookies, so a
// closed (and possibly reused) fd number is never exported.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace tollgate::proxy {

enum class SocketTransport { Tcp, Udp, Unix };  // Tcp and Unix: listening stream sockets

std::string_view toString(SocketTransport t);
std::optional<SocketTransport> parseSocketTransport(std::string_view s);

struct SocketKey {
  std::string owner;  // "ns/name" (pod) or "node"
  SocketTransport transport = SocketTransport::Tcp;
  std::string local;  // "127.0.0.1:15001", "[::1]:15053", "0.0.0.0:15020", or a unix path

  std::string str() const;  // "default/client tcp 127.0.0.1:15001"
  auto operator<=>(const SocketKey&) const = default;
};

// One socket in a handoff manifest: its key and the inode of the netns it lives in.
struct ManifestEntry {
  SocketKey key;
  uint64_t netnsInode = 0;
  friend bool operator==(const ManifestEntry&, const ManifestEntry&) = default;
};

// The handoff manifest, as text: a header line "tollgate-handoff-manifest 1 <count>", then one
// line per socket "<transport> <netns-inode> <owner> <local>" in the order the fds follow.
// Owners are "node" or "ns/name" (DNS labels); local is an ip:port or a unix path (the rest of
// the line, so a path may contain spaces but not a newline).
std::string encodeManifest(const std::vector<ManifestEntry>& entries);
Result<std::vector<ManifestEntry>> decodeManifest(std::string_view text);

// The kernel's view of a socket fd, used to check an inherited socket against its manifest line.
struct SocketFacts {
  SocketTransport transport = SocketTransport::Tcp;
  bool listening = false;  // SO_ACCEPTCONN (stream sockets)
  std::string local;       // same spelling as SocketKey::local
  uint64_t netnsInode = 0;
  uint64_t cookie = 0;
};
Result<SocketFacts> socketFacts(int fd);
// Inode of the calling thread's netns.
Result<uint64_t> currentNetnsInode();

class SocketRegistry {
 public:
  SocketRegistry() = default;
  ~SocketRegistry();  // closes inherited sockets nobody claimed
  SocketRegistry(const SocketRegistry&) = delete;
  SocketRegistry& operator=(const SocketRegistry&) = delete;

  // A socket received from the previous agent (fd owned by the registry until claimed). It is
  // checked against the kernel: a socket whose type, listening state or address differ from
  // `entry` is closed and reported.
  Status addInherited(const ManifestEntry& entry, int fd);
  size_t inheritedCount() const;
  // Closes every inherited socket nobody claimed (their pod is gone, or a port changed) and
  // returns their keys. The old agent's copies stay open until it exits.
  std::vector<SocketKey> dropUnclaimed();

  // An fd for `key`, on the calling thread (which must be in the netns where the socket lives):
  // the inherited one when it matches the key and this netns, else make(). The result is
  // recorded as live. The caller owns the fd.
  Result<int> obtain(const SocketKey& key, const std::function<Result<int>()>& make);

  // A dup of every live socket, with its manifest entry; fds the owner has closed since are
  // left out (and forgotten). The caller owns the fds.
  struct Exported {
    ManifestEntry entry;
    int fd = -1;
  };
  std::vector<Exported> exportLive();
  size_t liveCount() const;
  // Forgets the sockets their owners have closed since; returns how many are still open.
  size_t pruneClosed();

  // Counters (Prometheus text by the agent).
  uint64_t inheritedTaken() const;
  uint64_t inheritedRejected() const;

 private:
  struct Inherited {
    int fd = -1;
    uint64_t netnsInode = 0;  // from the kernel (SIOCGSKNS)
  };
  struct Live {
    int fd = -1;
    uint64_t cookie = 0;
  };
  void record(const SocketKey& key, int fd);

  mutable std::mutex mu_;
  std::multimap<SocketKey, Inherited> inherited_;
  std::map<SocketKey, Live> live_;
  uint64_t taken_ = 0;
  uint64_t rejected_ = 0;
};

// obtain() through `registry` when there is one, else make(): the one line each socket-creating
// component calls inside its NetnsRunner.
Result<int> obtainSocket(SocketRegistry* registry, const SocketKey& key,
                         const std::function<Result<int>()>& make);

}  // namespace tollgate::proxy
