#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bpf/cgroup_links.h"
#include "bpf/tollgate_abi.h"
#include "common/error.h"

struct tg_skb_backstop;

namespace tollgate::bpf {

// Counter names as the metrics and tollgatectl show them (the nftables mode's names), by enum
// tg_drop_class.
inline constexpr std::array<const char*, TG_COUNTER_SLOTS> kCounterNames = {
    "drop_tcp", "drop_udp", "drop_icmp", "drop_other", "drop_ipv6", "dns", "drop_dot"};

// The maps the backstop owns and sock_redirect writes too (SockRedirect::load reuses them): the
// drop counters and the QUIC destinations by socket cookie. -1: sock_redirect's own.
struct SharedMaps {
  int drops = -1;
  int quicOrig = -1;
};

// The eBPF mode's backstop (bpf/skb_backstop.bpf.c), loaded once per agent: a cgroup_skb/egress
// program that drops and counts what would leave a pod's cgroup on a device other than lo and is
// not the pod answering a connection made to it, and files where datagrams to the QUIC telemetry
// socket on lo were going; and the sockops program that records the sockets a pod opened itself.
// Move-only; unloads on destruction (links keep attached programs alive: see CgroupLinks).
class SkbBackstop {
 public:
  // Opens and loads the skeleton (verifier) and creates the counter bucket 0 for drops that
  // belong to no tracked cgroup. Of `config` it reads quic_port (0: files no QUIC destination);
  // to drop, it knows loopback and answers only. `pinMaps` (a bpffs directory): its maps are
  // pinned there, or the ones already pinned there are reused, so counters, the record of active
  // opens and the QUIC destinations outlive the agent and are shared with the next one. Empty:
  // private maps.
  static Result<SkbBackstop> load(const tg_config& config, const std::string& pinMaps = "");

  SkbBackstop(SkbBackstop&&) noexcept;
  SkbBackstop& operator=(SkbBackstop&&) noexcept;
  ~SkbBackstop();

  // Both programs attached to one cgroup as BPF links (sockops first, so that no socket the
  // pod opens once the egress program is live goes unrecorded); detached when the result goes.
  // `cgroupFd`: an open directory of the cgroup2 hierarchy (never the root cgroup).
  Result<CgroupLinks> attach(int cgroupFd, const std::string& description) const;

  // Starts counting drops of this cgroup under its own id (else they land in bucket 0).
  Status track(uint64_t cgroupId) const;
  Status untrack(uint64_t cgroupId) const;
  Result<tg_counters> counters(uint64_t cgroupId) const;

  // BPF_PROG_TEST_RUN of the egress program over one Ethernet frame, as if sent on device
  // `ifindex` of the calling thread's netns (which must exist: the kernel looks it up).
  // Returns the program's verdict: 1 pass, 0 drop.
  Result<uint32_t> testRun(std::span<const uint8_t> frame, uint32_t ifindex) const;

  // The programs attach() attaches, in its order, for pinned links (bpf/cgroup_links.h).
  std::vector<Hook> hooks() const;

  // Where the datagram the agent's UDP socket `socketFd` (in a pod's netns) received from `from`
  // was going before the redirect sent it to the QUIC telemetry socket, found by the socket's
  // netns (SO_NETNS_COOKIE) and `from`; nullopt when nothing was filed for that source or it
  // sent to the telemetry socket's address itself. The entry stays: a client sends its Initial
  // more than once.
  Result<std::optional<tg_orig_dst>> quicOriginalDst(int socketFd,
                                                     const sockaddr_storage& from) const;

  // tg_drops and tg_quic_orig, for sock_redirect to write in (SockRedirect::load).
  SharedMaps sharedMaps() const;
  int egressFd() const;
  int sockopsFd() const;

 private:
  explicit SkbBackstop(tg_skb_backstop* skel) : skel_(skel) {}
  tg_skb_backstop* skel_ = nullptr;
};

// The cgroup id of a cgroup2 directory (its inode number, what bpf_skb_cgroup_id returns).
Result<uint64_t> cgroupId(const std::string& path);
// Where cgroup v2 is mounted (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
// hybrid ones), from /proc/self/mounts.
Result<std::string> cgroup2Mount();

}  // namespace tollgate::bpf
