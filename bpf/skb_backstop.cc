#include "bpf/skb_backstop.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "bpf/peer_key.h"

// The skeleton names struct tg_config from the ABI header (bpf/skb_backstop.h).
#include "skb_backstop.skel.h"

namespace tollgate::bpf {
namespace {

// libbpf returns -errno (and sets errno) on failure.
std::unexpected<Error> failBpf(const std::string& what, int rc) {
  int err = rc < 0 ? -rc : errno;
  return fail(fmt::format("bpf: {}: {}", what, std::strerror(err)), err);
}

}  // namespace

Result<SkbBackstop> SkbBackstop::load(const tg_config& config, const std::string& pinMaps) {
  tg_skb_backstop* skel = tg_skb_backstop::open();
  if (!skel) return failBpf("open skb_backstop", -errno);
  skel->rodata->tg_cfg = config;
  if (!pinMaps.empty()) {
    for (bpf_map* m : {skel->maps.tg_drops, skel->maps.tg_active, skel->maps.tg_quic_orig,
                       skel->maps.tg_quic_by_peer}) {
      std::string path = pinMaps + "/" + bpf_map__name(m);
      if (int rc = bpf_map__set_pin_path(m, path.c_str()); rc != 0) {
        tg_skb_backstop::destroy(skel);
        return failBpf("pin path " + path, rc);
      }
    }
  }
  if (int rc = tg_skb_backstop::load(skel); rc != 0) {
    tg_skb_backstop::destroy(skel);
    return failBpf("load skb_backstop (verifier)", rc);
  }
  SkbBackstop b(skel);
  if (auto st = b.track(0); !st) return std::unexpected(st.error());
  return b;
}

SkbBackstop::SkbBackstop(SkbBackstop&& o) noexcept : skel_(std::exchange(o.skel_, nullptr)) {}

SkbBackstop& SkbBackstop::operator=(SkbBackstop&& o) noexcept {
  if (this != &o) {
    if (skel_) tg_skb_backstop::destroy(skel_);
    skel_ = std::exchange(o.skel_, nullptr);
  }
  return *this;
}

SkbBackstop::~SkbBackstop() {
  if (skel_) tg_skb_backstop::destroy(skel_);
}

std::vector<Hook> SkbBackstop::hooks() const {
  return {{"sockops_active", skel_->progs.tg_sockops}, {"skb_egress", skel_->progs.tg_skb_egress}};
}

SharedMaps SkbBackstop::sharedMaps() const {
  return {bpf_map__fd(skel_->maps.tg_drops), bpf_map__fd(skel_->maps.tg_quic_orig)};
}
int SkbBackstop::egressFd() const { return bpf_program__fd(skel_->progs.tg_skb_egress); }
int SkbBackstop::sockopsFd() const { return bpf_program__fd(skel_->progs.tg_sockops); }

Result<CgroupLinks> SkbBackstop::attach(int cgroupFd, const std::string& description) const {
  CgroupLinks links;
  if (auto st = links.attach(skel_->progs.tg_sockops, cgroupFd, "sockops to cgroup " + description);
      !st) {
    return std::unexpected(st.error());
  }
  if (auto st = links.attach(skel_->progs.tg_skb_egress, cgroupFd,
                             "cgroup_skb/egress to cgroup " + description);
      !st) {
    return std::unexpected(st.error());
  }
  return links;
}

Status SkbBackstop::track(uint64_t id) const {
  tg_counters zero{};
  int rc = bpf_map__update_elem(skel_->maps.tg_drops, &id, sizeof id, &zero, sizeof zero,
                                BPF_NOEXIST);
  if (rc != 0 && rc != -EEXIST) return failBpf(fmt::format("track cgroup {}", id), rc);
  return {};
}

Status SkbBackstop::untrack(uint64_t id) const {
  int rc = bpf_map__delete_elem(skel_->maps.tg_drops, &id, sizeof id, 0);
  if (rc != 0 && rc != -ENOENT) return failBpf(fmt::format("untrack cgroup {}", id), rc);
  return {};
}

Result<tg_counters> SkbBackstop::counters(uint64_t id) const {
  tg_counters c{};
  int rc = bpf_map__lookup_elem(skel_->maps.tg_drops, &id, sizeof id, &c, sizeof c, 0);
  if (rc != 0) return failBpf(fmt::format("counters of cgroup {}", id), rc);
  return c;
}

Result<std::optional<tg_orig_dst>> SkbBackstop::quicOriginalDst(
    int socketFd, const sockaddr_storage& from) const {
  const auto what = [socketFd] {
    return fmt::format("bpf: QUIC destination of a datagram on socket {}", socketFd);
  };
  auto cookie = netnsCookie(socketFd);
  if (!cookie) return std::unexpected(cookie.error().wrap(what()));
  auto key = peerKey(*cookie, from);
  if (!key) return std::unexpected(key.error().wrap(what()));
  tg_orig_dst o{};
  int rc = bpf_map__lookup_elem(skel_->maps.tg_quic_by_peer, &*key, sizeof *key, &o, sizeof o, 0);
  if (rc == -ENOENT) return std::optional<tg_orig_dst>();
  if (rc != 0) return failBpf(fmt::format("{} ({}): tg_quic_by_peer", what(), describe(*key)), rc);
  if (o.family != 4 && o.family != 6) return std::optional<tg_orig_dst>();  // sent here itself
  return std::optional<tg_orig_dst>(o);
}

Result<uint32_t> SkbBackstop::testRun(std::span<const uint8_t> frame, uint32_t ifindex) const {
  __sk_buff ctx{};
  ctx.ifindex = ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
              .data_size_in = static_cast<__u32>(frame.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof ctx, .repeat = 1);
  int rc = bpf_prog_test_run_opts(egressFd(), &opts);
  if (rc != 0) return failBpf("BPF_PROG_TEST_RUN tg_skb_egress", rc);
  return opts.retval;
}

Result<uint64_t> cgroupId(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return failErrno("stat cgroup " + path);
  return static_cast<uint64_t>(st.st_ino);
}

Result<std::string> cgroup2Mount() {
  std::ifstream in("/proc/self/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string dev, dir, type;
    if (f >> dev >> dir >> type && type == "cgroup2") return dir;
  }
  return fail("no cgroup2 mount in /proc/self/mounts");
}

}  // namespace tollgate::bpf
