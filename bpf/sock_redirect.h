#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpf/cgroup_links.h"
#include "bpf/skb_backstop.h"
#include "bpf/tollgate_abi.h"
#include "common/error.h"

struct tg_sock_redirect;

namespace tollgate::bpf {

// The eBPF mode's redirect (bpf/sock_redirect.bpf.c), loaded once per agent and attached to each
// pod's cgroup:
//   cgroup/connect4/6      a TCP connect off loopback goes to the capture listener on the pod's
//                          loopback (:proxy_port), its original destination kept by socket cookie;
//                          UDP as for sendmsg
//   cgroup/sendmsg4/6      UDP to port 53 goes to the DNS proxy (:dns_port), the server asked
//                          kept by socket cookie; 443 to the QUIC socket, where it was going
//                          kept by socket cookie for the backstop (SkbBackstop::quicOriginalDst);
//                          the rest is refused
//   sockops                at TCP connect, copies the original destination under the client's
//                          netns and local address and port, for the proxy to take from its
//                          accepted socket (takeOriginalDst); deletes that entry for a connect
//                          that was not redirected
//   cgroup/recvmsg4/6      the DNS proxy's replies come from the server the pod asked (a resolver
//                          that checks the reply's source, as glibc does, drops them otherwise)
//   cgroup/getpeername4/6  a redirected TCP socket, or a UDP socket connected to port 53, is
//                          told its original destination as its peer, not the loopback target
// Move-only; unloads on destruction.
class SockRedirect {
 public:
  // `pinMaps` (a bpffs directory): the original-destination maps are pinned there or the ones
  // pinned there reused (an agent restart or handoff keeps serving what the old programs
  // recorded); empty: private maps. `shared` (SkbBackstop::sharedMaps): the backstop's tg_drops,
  // so that a pod's refusals are counted with its drops, and its tg_quic_orig, which it reads to
  // file QUIC destinations; -1: a private one.
  static Result<SockRedirect> load(const tg_config& config, const std::string& pinMaps = "",
                                   SharedMaps shared = {});
  SockRedirect(SockRedirect&&) noexcept;
  SockRedirect& operator=(SockRedirect&&) noexcept;
  ~SockRedirect();

  // The programs attach() attaches, in its order, for pinned links (bpf/cgroup_links.h).
  std::vector<Hook> hooks() const;
  // The hooks attached to one cgroup (never the root cgroup).
  Result<CgroupLinks> attach(int cgroupFd, const std::string& description) const;

  // Where the pod's connection the proxy accepted as `acceptedFd` was going before it was
  // redirected, found by the socket's netns (SO_NETNS_COOKIE) and its peer; nullopt when the
  // connection was not redirected (the pod connected to the proxy's port itself) or the answer
  // was taken already: the entry is deleted, an answer is given once.
  Result<std::optional<tg_orig_dst>> takeOriginalDst(int acceptedFd) const;

 private:
  explicit SockRedirect(tg_sock_redirect* skel) : skel_(skel) {}
  tg_sock_redirect* skel_ = nullptr;
};

}  // namespace tollgate::bpf
