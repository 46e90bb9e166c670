#include "bpf/sock_redirect.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "bpf/peer_key.h"

// The skeleton names struct tg_config from the ABI header, included above.
#include "sock_redirect.skel.h"

namespace tollgate::bpf {

Result<SockRedirect> SockRedirect::load(const tg_config& config, const std::string& pinMaps,
                                        SharedMaps shared) {
  tg_sock_redirect* skel = tg_sock_redirect::open();
  if (!skel) return failErrno("bpf: open sock_redirect");
  skel->rodata->tg_cfg = config;
  const auto failed = [skel](const std::string& what, int rc) {
    tg_sock_redirect::destroy(skel);
    return fail(fmt::format("bpf: sock_redirect: {}: {}", what, std::strerror(-rc)), -rc);
  };
  for (auto [map, fd] : {std::pair{skel->maps.tg_drops, shared.drops},
                         std::pair{skel->maps.tg_quic_orig, shared.quicOrig}}) {
    if (fd < 0) continue;
    if (int rc = bpf_map__reuse_fd(map, fd); rc != 0) {
      return failed(fmt::format("share the backstop's {}", bpf_map__name(map)), rc);
    }
  }
  if (!pinMaps.empty()) {
    for (bpf_map* m : {skel->maps.tg_orig_dst, skel->maps.tg_orig_by_peer, skel->maps.tg_udp_orig}) {
      std::string path = pinMaps + "/" + bpf_map__name(m);
      if (int rc = bpf_map__set_pin_path(m, path.c_str()); rc != 0) return failed("pin " + path, rc);
    }
  }
  if (int rc = tg_sock_redirect::load(skel); rc != 0) {
    tg_sock_redirect::destroy(skel);
    return fail(fmt::format("bpf: load sock_redirect (verifier): {}", std::strerror(-rc)), -rc);
  }
  return SockRedirect(skel);
}

SockRedirect::SockRedirect(SockRedirect&& o) noexcept : skel_(std::exchange(o.skel_, nullptr)) {}

SockRedirect& SockRedirect::operator=(SockRedirect&& o) noexcept {
  if (this != &o) {
    if (skel_) tg_sock_redirect::destroy(skel_);
    skel_ = std::exchange(o.skel_, nullptr);
  }
  return *this;
}

SockRedirect::~SockRedirect() {
  if (skel_) tg_sock_redirect::destroy(skel_);
}

std::vector<Hook> SockRedirect::hooks() const {
  return {
      {"cgroup_connect4", skel_->progs.tg_sock4_connect},
      {"cgroup_connect6", skel_->progs.tg_sock6_connect},
      {"cgroup_sendmsg4", skel_->progs.tg_sock4_sendmsg},
      {"cgroup_sendmsg6", skel_->progs.tg_sock6_sendmsg},
      {"cgroup_recvmsg4", skel_->progs.tg_sock4_recvmsg},
      {"cgroup_recvmsg6", skel_->progs.tg_sock6_recvmsg},
      {"cgroup_getpeername4", skel_->progs.tg_sock4_getpeername},
      {"cgroup_getpeername6", skel_->progs.tg_sock6_getpeername},
      {"sockops_orig", skel_->progs.tg_sockops_orig},
  };
}

Result<CgroupLinks> SockRedirect::attach(int cgroupFd, const std::string& description) const {
  CgroupLinks links;
  for (const auto& h : hooks()) {
    if (auto st = links.attach(h.prog, cgroupFd, fmt::format("{} to cgroup {}", h.name, description));
        !st) {
      return std::unexpected(st.error());
    }
  }
  return links;
}

Result<std::optional<tg_orig_dst>> SockRedirect::takeOriginalDst(int acceptedFd) const {
  const auto what = [acceptedFd] {
    return fmt::format("bpf: original destination of accepted socket {}", acceptedFd);
  };
  auto cookie = netnsCookie(acceptedFd);
  if (!cookie) return std::unexpected(cookie.error().wrap(what()));
  sockaddr_storage peer{};
  socklen_t peerLen = sizeof peer;
  if (::getpeername(acceptedFd, reinterpret_cast<sockaddr*>(&peer), &peerLen) != 0) {
    return failErrno(what() + ": getpeername");
  }
  auto key = peerKey(*cookie, peer);
  if (!key) return std::unexpected(key.error().wrap(what()));
  tg_orig_dst o{};
  int rc = bpf_map__lookup_and_delete_elem(skel_->maps.tg_orig_by_peer, &*key, sizeof *key, &o,
                                           sizeof o, 0);
  if (rc == -ENOENT) return std::optional<tg_orig_dst>();
  if (rc != 0) {
    return fail(fmt::format("{} ({}): tg_orig_by_peer: {}", what(), describe(*key),
                            std::strerror(-rc)),
                -rc);
  }
  return std::optional<tg_orig_dst>(o);
}

}  // namespace tollgate::bpf
