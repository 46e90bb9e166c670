#include "bpf/sock_redirect.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <utility>

// The skeleton names struct tg_config from the ABI header, included above.
#include "sock_redirect.skel.h"

namespace tollgate::bpf {

Result<SockRedirect> SockRedirect::load(const tg_config& config) {
  tg_sock_redirect* skel = tg_sock_redirect::open();
  if (!skel) return failErrno("bpf: open sock_redirect");
  skel->rodata->tg_cfg = config;
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

Result<CgroupLinks> SockRedirect::attach(int cgroupFd, const std::string& description) const {
  CgroupLinks links;
  const std::pair<bpf_program*, const char*> progs[] = {
      {skel_->progs.tg_sock4_connect, "cgroup/connect4"},
      {skel_->progs.tg_sock6_connect, "cgroup/connect6"},
      {skel_->progs.tg_sock4_sendmsg, "cgroup/sendmsg4"},
      {skel_->progs.tg_sock6_sendmsg, "cgroup/sendmsg6"},
  };
  for (const auto& [prog, name] : progs) {
    if (auto st = links.attach(prog, cgroupFd, fmt::format("{} to cgroup {}", name, description));
        !st) {
      return std::unexpected(st.error());
    }
  }
  return links;
}

Result<std::optional<tg_orig_dst>> SockRedirect::originalDst(uint64_t cookie) const {
  tg_orig_dst o{};
  int rc = bpf_map__lookup_elem(skel_->maps.tg_orig_dst, &cookie, sizeof cookie, &o, sizeof o, 0);
  if (rc == -ENOENT) return std::optional<tg_orig_dst>();
  if (rc != 0) {
    return fail(fmt::format("bpf: original destination of socket {}: {}", cookie, std::strerror(-rc)),
                -rc);
  }
  return std::optional<tg_orig_dst>(o);
}

}  // namespace tollgate::bpf
