#pragma once

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

}  // namespace tollgate::bpf
