#include "agent/bpf_redirect.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "agent/pod_cgroup.h"
#include "common/fd.h"

namespace tollgate::agent {

Result<std::shared_ptr<BpfRedirect>> BpfRedirect::create(const RedirectParams& params,
                                                         std::string pinDir) {
  if (params.dnsProxyPort == 0 || params.quicPort == 0) {
    return fail("ebpf mode needs the per-pod DNS proxy and QUIC socket ports (it has no "
                "allow-to-resolvers fallback)");
  }
  std::error_code ec;
  std::filesystem::create_directories(pinDir, ec);
  if (ec) return fail(fmt::format("bpf pin dir {}: {}", pinDir, ec.message()));
  if (!bpf::onBpffs(pinDir)) {
    return fail(fmt::format("bpf pin dir {} is not on a bpf filesystem (mount -t bpf bpf {})",
                            pinDir, pinDir));
  }
  const std::string maps = pinDir + "/maps";
  std::filesystem::create_directories(maps, ec);
  if (ec) return fail(fmt::format("bpf pin dir {}: {}", maps, ec.message()));
  // Whoever can open a pinned link can detach it (BPF_LINK_DETACH checks no capability), so
  // nobody but a process with CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH may even look inside: mode
  // 0 keeps out a root that has only, say, NET_ADMIN (and the owner bits would not, for uid 0).
  if (::chmod(pinDir.c_str(), 0) != 0) return failErrno("bpf pin dir " + pinDir + ": chmod 0");
  // Read once: the mount and the agent's cgroup do not change under a running agent, and
  // cgroupOf() runs for every pod on every reconcile.
  auto mount = bpf::cgroup2Mount();
  if (!mount) return std::unexpected(mount.error());
  auto self = selfCgroup();
  if (!self) return std::unexpected(self.error());
  tg_config cfg{};
  cfg.proxy_port = params.proxyPort;
  cfg.dns_port = params.dnsProxyPort;
  cfg.quic_port = params.quicPort;
  auto backstop = bpf::SkbBackstop::load(cfg, maps);
  if (!backstop) return std::unexpected(backstop.error());
  auto redirect = bpf::SockRedirect::load(cfg, maps, backstop->sharedMaps());
  if (!redirect) return std::unexpected(redirect.error());
  return std::shared_ptr<BpfRedirect>(
      new BpfRedirect(params, std::move(pinDir), std::move(*mount), std::move(*self),
                      std::move(*redirect), std::move(*backstop)));
}

BpfRedirect::BpfRedirect(RedirectParams params, std::string pinDir, std::string cgroupMount,
                         std::string selfCgroup, bpf::SockRedirect redirect,
                         bpf::SkbBackstop backstop)
    : params_(std::move(params)),
      pinDir_(std::move(pinDir)),
      cgroupMount_(std::move(cgroupMount)),
      selfCgroup_(std::move(selfCgroup)),
      redirect_(std::move(redirect)),
      backstop_(std::move(backstop)) {
  auto b = backstop_.hooks();
  hooks_.push_back(b.front());  // sockops: records active opens before egress is judged
  for (auto& h : redirect_.hooks()) hooks_.push_back(std::move(h));
  hooks_.push_back(b.back());
}

Result<BpfRedirect::Cgroup> BpfRedirect::cgroupOf(const PodTarget& pod) const {
  auto path = podCgroupPath(pod.cgroup, cgroupMount_, selfCgroup_);
  if (!path) return std::unexpected(path.error().wrap("pod " + pod.key));
  auto id = bpf::cgroupId(*path);
  if (!id) return std::unexpected(id.error().wrap("pod " + pod.key));
  return Cgroup{*path, *id};
}

Result<std::string> BpfRedirect::probeCgroup(const PodTarget& pod) const {
  auto cg = cgroupOf(pod);
  if (!cg) return std::unexpected(cg.error());
  return cg->path;
}

std::string BpfRedirect::linkDir(const PodTarget& pod) const {
  return pinDir_ + "/pods/" + pod.key;
}

Status BpfRedirect::install(const PodTarget& pod) const {
  if (pod.key.empty()) return fail("bpf: install: the pod has no state key");
  auto cg = cgroupOf(pod);
  if (!cg) return std::unexpected(cg.error());
  Fd dir(::open(cg->path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return failErrno("bpf: open cgroup " + cg->path);
  if (auto st = backstop_.track(cg->id); !st) return st;
  if (auto st = bpf::attachPinned(hooks_, dir.get(), cg->id, linkDir(pod)); !st) {
    return std::unexpected(st.error().wrap(fmt::format("pod {} cgroup {}", pod.key, cg->path)));
  }
  return {};
}

Status BpfRedirect::remove(const PodTarget& pod) const {
  if (pod.key.empty()) return {};
  auto st = bpf::removePinned(linkDir(pod));
  // The counters go with the pod; a cgroup that is already gone has nothing to untrack.
  if (auto cg = cgroupOf(pod)) (void)backstop_.untrack(cg->id);
  return st;
}

Result<Drift> BpfRedirect::verify(const PodTarget& pod) const {
  auto cg = cgroupOf(pod);
  if (!cg) return std::unexpected(cg.error());
  Drift d;
  d.differences = bpf::checkPinned(hooks_, cg->id, linkDir(pod));
  return d;
}

Result<Counters> BpfRedirect::counters(const PodTarget& pod) const {
  auto cg = cgroupOf(pod);
  if (!cg) return std::unexpected(cg.error());
  auto c = backstop_.counters(cg->id);
  if (!c) return std::unexpected(c.error());
  Counters out;
  for (size_t i = 0; i < bpf::kCounterNames.size(); ++i) {
    out[bpf::kCounterNames[i]].packets = c->packets[i];
  }
  return out;
}

Result<std::optional<std::string>> BpfRedirect::listing(const PodTarget& pod) const {
  return bpf::listPinned(hooks_, linkDir(pod));
}

std::string BpfRedirect::expected() const {
  std::string out = fmt::format("ebpf proxy_port {} dns_port {} quic_port {}\n", params_.proxyPort,
                                params_.dnsProxyPort, params_.quicPort);
  for (const auto& h : hooks_) out += fmt::format("{} {}\n", h.name, bpf_program__name(h.prog));
  return out;
}

namespace {

proxy::Endpoint endpointOf(const tg_orig_dst& o) {
  sockaddr_storage ss{};
  if (o.family == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = o.addr[0];
    sin->sin_port = htons(o.port);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, o.addr, sizeof sin6->sin6_addr);
    sin6->sin6_port = htons(o.port);
  }
  return proxy::fromSockaddr(ss);
}

}  // namespace

Result<proxy::Endpoint> BpfRedirect::originalDst(int fd) const {
  auto o = redirect_.takeOriginalDst(fd);
  if (!o) return std::unexpected(o.error());
  if (!*o) return fail("no original destination recorded for this connection (not redirected)");
  return endpointOf(**o);
}

Result<proxy::Endpoint> BpfRedirect::quicOriginalDst(int fd, const proxy::Endpoint& from) const {
  sockaddr_storage ss{};
  proxy::toSockaddr(from, &ss);
  auto o = backstop_.quicOriginalDst(fd, ss);
  if (!o) return std::unexpected(o.error());
  if (!*o) return fail(fmt::format("no destination recorded for the datagram from {}", from.str()));
  return endpointOf(**o);
}

}  // namespace tollgate::agent
