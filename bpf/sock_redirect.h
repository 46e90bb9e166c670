#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "bpf/cgroup_links.h"
#include "bpf/tollgate_abi.h"
#include "common/error.h"

struct tg_sock_redirect;

namespace tollgate::bpf {

// The eBPF mode's redirect (bpf/sock_redirect.bpf.c), loaded once per agent: cgroup/connect4/6
// send a pod's TCP to the capture listener on its loopback and keep the original destination by
// socket cookie, which the sockops program copies at connect under the client's netns and local
// address and port, for the proxy to take from its accepted socket (takeOriginalDst);
// cgroup/sendmsg4/6 and connect for UDP send port 53 to the DNS proxy, 443 to the QUIC socket and
// refuse the rest; cgroup/recvmsg4/6 make the DNS proxy's replies come from the server the pod
// asked (a resolver that checks the reply's source, as glibc does, would drop them). Move-only;
// unloads on destruction.
//
// Not yet there: getpeername hooks that give a redirected socket's peer name its original
// address back.
class SockRedirect {
 public:
  static Result<SockRedirect> load(const tg_config& config);
  SockRedirect(SockRedirect&&) noexcept;
  SockRedirect& operator=(SockRedirect&&) noexcept;
  ~SockRedirect();

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
