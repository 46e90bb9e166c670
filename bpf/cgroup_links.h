#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"

struct bpf_link;
struct bpf_program;

namespace tollgate::bpf {

// BPF programs attached to one cgroup as links, detached (in reverse order) when this goes,
// unless pinned (a later step of the eBPF mode). Move-only.
class CgroupLinks {
 public:
  CgroupLinks() = default;
  CgroupLinks(CgroupLinks&& o) noexcept : links_(std::move(o.links_)) { o.links_.clear(); }
  CgroupLinks& operator=(CgroupLinks&& o) noexcept;
  ~CgroupLinks() { reset(); }

  // Attaches `prog` to the cgroup open at `cgroupFd` (never the root cgroup); `what` names both
  // in the error.
  Status attach(bpf_program* prog, int cgroupFd, const std::string& what);
  void reset();
  size_t size() const { return links_.size(); }

 private:
  std::vector<bpf_link*> links_;
};

// One program of a pod's set, by the name it is pinned and shown under ("cgroup_connect4").
struct Hook {
  std::string name;
  bpf_program* prog = nullptr;
};

// Links pinned under bpffs, one directory per pod and one file per hook, so that enforcement
// outlives the agent process: a pinned link stays attached until its file is removed.
//
// Attaches every hook to the cgroup as a link pinned at dir/<name>, in order, or adopts the
// link already pinned there: attached to this cgroup with this attach type, its program is
// replaced atomically (bpf_link_update) when it is not `prog` (an agent restart or handoff loaded
// new programs), so the cgroup never runs without one; a link that was detached, or belongs to
// another cgroup (a pod re-created under the same name), is replaced by a new one.
Status attachPinned(std::span<const Hook> hooks, int cgroupFd, uint64_t cgroupId,
                    const std::string& dir);
// What differs from what attachPinned() would leave: a missing or unreadable pin, a detached
// link, a link on another cgroup, another program than `prog`. Empty: in sync.
std::vector<std::string> checkPinned(std::span<const Hook> hooks, uint64_t cgroupId,
                                     const std::string& dir);
// One line per hook: "cgroup_connect4 link 12 prog 34 tg_sock4_connect cgroup 5678", or why
// not; nullopt when the directory does not exist.
Result<std::optional<std::string>> listPinned(std::span<const Hook> hooks, const std::string& dir);
// Detaches and unpins every link of the directory and removes it; succeeds when it does not
// exist.
Status removePinned(const std::string& dir);
// Whether `path` is on a bpf filesystem (pinning works only there).
bool onBpffs(const std::string& path);

}  // namespace tollgate::bpf
