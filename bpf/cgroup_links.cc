#include "bpf/cgroup_links.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/fd.h"

namespace tollgate::bpf {

CgroupLinks& CgroupLinks::operator=(CgroupLinks&& o) noexcept {
  if (this != &o) {
    reset();
    links_ = std::move(o.links_);
    o.links_.clear();
  }
  return *this;
}

Status CgroupLinks::attach(bpf_program* prog, int cgroupFd, const std::string& what) {
  bpf_link* l = bpf_program__attach_cgroup(prog, cgroupFd);
  if (!l) {
    int err = errno;
    return fail(fmt::format("bpf: attach {}: {}", what, std::strerror(err)), err);
  }
  links_.push_back(l);
  return {};
}

void CgroupLinks::reset() {
  while (!links_.empty()) {
    bpf_link__destroy(links_.back());
    links_.pop_back();
  }
}

namespace {

namespace fs = std::filesystem;

std::unexpected<Error> failErr(const std::string& what, int err) {
  return fail(fmt::format("bpf: {}: {}", what, std::strerror(err)), err);
}

struct LinkInfo {
  uint32_t id = 0;
  uint32_t type = 0;
  uint32_t progId = 0;
  uint64_t cgroupId = 0;
  uint32_t attachType = 0;
};

Result<LinkInfo> linkInfo(int fd) {
  bpf_link_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return failErr("link info", errno);
  return LinkInfo{info.id, info.type, info.prog_id, info.cgroup.cgroup_id,
                  info.cgroup.attach_type};
}

Result<uint32_t> progId(const bpf_program* prog) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) {
    return failErr(fmt::format("program {} info", bpf_program__name(prog)), errno);
  }
  return info.id;
}

std::string progName(uint32_t id) {
  Fd fd(bpf_prog_get_fd_by_id(id));
  if (!fd) return "?";
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return "?";
  return info.name;
}

// The pinned link at `path` (-1 with errno ENOENT when there is none).
Fd openPinned(const std::string& path) { return Fd(bpf_obj_get(path.c_str())); }

// Why the pinned link does not run `prog` on the cgroup; empty when it does.
std::string mismatch(const LinkInfo& l, const Hook& h, uint64_t cgroupId, uint32_t wantProg) {
  if (l.type != BPF_LINK_TYPE_CGROUP) return fmt::format("{}: pinned object is not a cgroup link", h.name);
  if (l.cgroupId == 0) return fmt::format("{}: link {} was detached", h.name, l.id);
  if (l.cgroupId != cgroupId) {
    return fmt::format("{}: link {} is on cgroup {}, expected {}", h.name, l.id, l.cgroupId, cgroupId);
  }
  if (l.attachType != static_cast<uint32_t>(bpf_program__expected_attach_type(h.prog))) {
    return fmt::format("{}: link {} has attach type {}", h.name, l.id, l.attachType);
  }
  if (l.progId != wantProg) {
    return fmt::format("{}: link {} runs program {} ({}), expected {}", h.name, l.id, l.progId,
                       progName(l.progId), wantProg);
  }
  return {};
}

}  // namespace

bool onBpffs(const std::string& path) {
  struct statfs st{};
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

Status attachPinned(std::span<const Hook> hooks, int cgroupFd, uint64_t cgroupId,
                    const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(fmt::format("bpf: create {}: {}", dir, ec.message()), ec.value());
  for (const auto& h : hooks) {
    const std::string path = dir + "/" + h.name;
    auto want = progId(h.prog);
    if (!want) return std::unexpected(want.error());
    if (Fd fd = openPinned(path)) {
      auto info = linkInfo(fd.get());
      if (info && info->type == BPF_LINK_TYPE_CGROUP && info->cgroupId == cgroupId &&
          info->attachType == static_cast<uint32_t>(bpf_program__expected_attach_type(h.prog))) {
        if (info->progId == *want) continue;
        // The same link, a new program: atomic, the cgroup is never without one.
        if (bpf_link_update(fd.get(), bpf_program__fd(h.prog), nullptr) != 0) {
          return failErr(fmt::format("replace the program of {}", path), errno);
        }
        continue;
      }
      // Detached, or another cgroup's: nothing of it protects this pod. A new link replaces it.
      if (::unlink(path.c_str()) != 0) return failErr("unpin " + path, errno);
    } else if (errno != ENOENT) {
      return failErr("open pinned link " + path, errno);
    }
    Fd link(bpf_link_create(bpf_program__fd(h.prog), cgroupFd,
                            bpf_program__expected_attach_type(h.prog), nullptr));
    if (!link) return failErr(fmt::format("attach {} to cgroup {}", h.name, cgroupId), errno);
    if (bpf_obj_pin(link.get(), path.c_str()) != 0) return failErr("pin " + path, errno);
  }
  return {};
}

std::vector<std::string> checkPinned(std::span<const Hook> hooks, uint64_t cgroupId,
                                     const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& h : hooks) {
    const std::string path = dir + "/" + h.name;
    Fd fd = openPinned(path);
    if (!fd) {
      out.push_back(errno == ENOENT ? fmt::format("{}: not attached (no pinned link)", h.name)
                                    : fmt::format("{}: pinned link unreadable: {}", h.name,
                                                  std::strerror(errno)));
      continue;
    }
    auto info = linkInfo(fd.get());
    auto want = progId(h.prog);
    if (!info || !want) {
      out.push_back(fmt::format("{}: {}", h.name, (!info ? info.error() : want.error()).str()));
      continue;
    }
    if (auto m = mismatch(*info, h, cgroupId, *want); !m.empty()) out.push_back(std::move(m));
  }
  return out;
}

Result<std::optional<std::string>> listPinned(std::span<const Hook> hooks, const std::string& dir) {
  if (!fs::exists(dir)) return std::optional<std::string>();
  std::string out;
  for (const auto& h : hooks) {
    const std::string path = dir + "/" + h.name;
    Fd fd = openPinned(path);
    if (!fd) {
      out += fmt::format("{} none\n", h.name);
      continue;
    }
    auto info = linkInfo(fd.get());
    if (!info) return std::unexpected(info.error());
    out += fmt::format("{} link {} prog {} {} cgroup {}\n", h.name, info->id, info->progId,
                       progName(info->progId), info->cgroupId);
  }
  return std::optional<std::string>(std::move(out));
}

Status removePinned(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return {};
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    // Detached now: the kernel frees an unpinned link only after an RCU grace period.
    if (Fd link = openPinned(e.path().string())) {
      if (bpf_link_detach(link.get()) != 0 && errno != EINVAL) {
        return failErr("detach " + e.path().string(), errno);
      }
    }
    if (::unlink(e.path().c_str()) != 0 && errno != ENOENT) {
      return failErr("unpin " + e.path().string(), errno);
    }
  }
  if (ec) return fail(fmt::format("bpf: read {}: {}", dir, ec.message()), ec.value());
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return failErr("remove " + dir, errno);
  return {};
}

}  // namespace tollgate::bpf
