#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace tollgate::agent {

// Where the eBPF mode attaches a pod's programs: the pod-level cgroup the runtime names in the
// CNI cgroupPath capability (containerd and CRI-O pass the sandbox's cgroup parent), as a path
// under the cgroup2 mount. Accepted forms:
//   "/kubepods/burstable/pod<uid>" or "kubepods/..."  relative to the mount (cgroupfs driver)
//   "<mount>/kubepods/..."                             already absolute under the mount
//   "kubepods-burstable-pod<uid>.slice"                systemd driver: expanded the way systemd
//                                                      nests slices (kubepods.slice/kubepods-
//                                                      burstable.slice/...)
// Refused: an empty path, "..", the root cgroup, and the agent's own cgroup or any above it
// (their programs would capture the proxy's own sockets). Pure: the mount and the agent's cgroup
// (from /proc/self/cgroup, relative to the mount) are given.
Result<std::string> podCgroupPath(std::string_view runtimePath, std::string_view mount,
                                  std::string_view agentCgroup);

// The calling process's cgroup v2 path relative to the mount ("0::/x/y" in /proc/self/cgroup).
Result<std::string> selfCgroup();

}  // namespace tollgate::agent
