#include "bpf/cgroup_links.h"

#include <bpf/libbpf.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

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

}  // namespace tollgate::bpf
