#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/redirect.h"
#include "bpf/cgroup_links.h"
#include "bpf/skb_backstop.h"
#include "bpf/sock_redirect.h"
#include "common/error.h"
#include "proxy/socket_util.h"

namespace tollgate::agent {

// The eBPF redirect: bpf/sock_redirect and bpf/skb_backstop attached to each pod's cgroup as
// links pinned under <pinDir>/pods/<ns>_<name>/, maps pinned under <pinDir>/maps/ (counters and
// original destinations outlive the agent and are shared with the next one). Nothing is put in
// the pod's netns: the capture listeners are the same ones the nftables mode uses, reached by
// the connect hooks rewriting the destination instead of by REDIRECT. Both objects are loaded with
// the same tg_config and share tg_drops and tg_quic_orig (SkbBackstop::sharedMaps).
//
// install() adopts links a previous agent pinned and replaces their programs atomically; the
// reconciler's verify() finds a detached link or a replaced program and install() repairs it.
class BpfRedirect final : public RedirectInstaller {
 public:
  // Loads both objects (the verifier runs here). `pinDir` must be on a bpf filesystem.
  static Result<std::shared_ptr<BpfRedirect>> create(const RedirectParams& params,
                                                     std::string pinDir);

  const char* mode() const override { return "ebpf"; }
  Status install(const PodTarget& pod) const override;
  Status remove(const PodTarget& pod) const override;
  Result<Drift> verify(const PodTarget& pod) const override;
  // drop_tcp, drop_udp, drop_icmp, drop_other, drop_ipv6: packets the backstop dropped, and
  // sends the redirect refused (counted under their class).
  Result<Counters> counters(const PodTarget& pod) const override;
  Result<std::optional<std::string>> listing(const PodTarget& pod) const override;
  std::string expected() const override;
  const RedirectParams& params() const override { return params_; }
  // The pod's cgroup directory: the programs are attached there.
  Result<std::string> probeCgroup(const PodTarget& pod) const override;

  // The proxy's lookup (ProxyInputs::originalDst): where the connection accepted on `fd` in a
  // pod netns was going, from the redirect's record; an error when there is none.
  Result<proxy::Endpoint> originalDst(int fd) const;
  // The QUIC telemetry's lookup (ProxyInputs::quicOriginalDst): where the datagram that the
  // telemetry socket `fd` in a pod netns received from `from` was going before the redirect sent
  // it there (skb_backstop files it); an error when nothing is recorded for that source.
  Result<proxy::Endpoint> quicOriginalDst(int fd, const proxy::Endpoint& from) const;

 private:
  BpfRedirect(RedirectParams params, std::string pinDir, std::string cgroupMount,
              std::string selfCgroup, bpf::SockRedirect redirect, bpf::SkbBackstop backstop);
  struct Cgroup {
    std::string path;
    uint64_t id = 0;
  };
  Result<Cgroup> cgroupOf(const PodTarget& pod) const;
  std::string linkDir(const PodTarget& pod) const;

  RedirectParams params_;
  std::string pinDir_;
  std::string cgroupMount_;  // the cgroup2 mount and the agent's own cgroup, read in create()
  std::string selfCgroup_;
  bpf::SockRedirect redirect_;
  bpf::SkbBackstop backstop_;
  std::vector<bpf::Hook> hooks_;  // attach order: the backstop's sockops first, its egress last
};

}  // namespace tollgate::agent
