#include "agent/pod_cgroup.h"

#include <fmt/format.h>

#include <fstream>
#include <vector>

namespace tollgate::agent {
namespace {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// "a-b-c.slice" -> "a.slice/a-b.slice/a-b-c.slice" (systemd.slice(5)); "-.slice" is the root.
Result<std::string> expandSlice(std::string_view slice) {
  std::string_view base = slice.substr(0, slice.size() - 6);
  if (base.empty() || base == "-" || base.front() == '-' || base.back() == '-' ||
      base.find("--") != std::string_view::npos || base.find('/') != std::string_view::npos) {
    return fail(fmt::format("'{}' is not a systemd slice name below the root", slice));
  }
  std::string out;
  for (size_t i = 0; i <= base.size(); ++i) {
    if (i == base.size() || base[i] == '-') {
      if (!out.empty()) out += '/';
      out += std::string(base.substr(0, i)) + ".slice";
    }
  }
  return out;
}

}  // namespace

Result<std::string> podCgroupPath(std::string_view runtimePath, std::string_view mount,
                                  std::string_view agentCgroup) {
  if (runtimePath.empty()) {
    return fail(
        "the runtime gave no cgroupPath (the CNI plugin needs the cgroupPath capability); the "
        "ebpf mode cannot enrol a pod without its cgroup");
  }
  std::string rel;
  if (runtimePath.ends_with(".slice") && runtimePath.find('/') == std::string_view::npos) {
    auto expanded = expandSlice(runtimePath);
    if (!expanded) return std::unexpected(expanded.error());
    rel = *expanded;
  } else if (runtimePath.find(':') != std::string_view::npos) {
    return fail(fmt::format(
        "cgroupPath '{}' is a container's systemd unit (slice:prefix:name), not the pod's cgroup",
        runtimePath));
  } else {
    std::string_view p = runtimePath;
    std::string prefix = std::string(mount) + "/";
    if (p == mount) p = "/";
    if (p.starts_with(prefix)) p.remove_prefix(prefix.size());
    rel = std::string(p);
  }
  auto parts = split(rel, '/');
  for (const auto& part : parts) {
    if (part == "." || part == "..") {
      return fail(fmt::format("cgroupPath '{}' contains '{}'", runtimePath, part));
    }
  }
  if (parts.empty()) return fail(fmt::format("cgroupPath '{}' is the root cgroup", runtimePath));
  std::string joined;
  for (const auto& part : parts) joined += "/" + part;
  // The agent's own cgroup or one above it: its programs would capture the proxy's own sockets.
  // (Below is fine: a cgroup's programs apply to its processes and descendants only.)
  std::string agent = "/";
  for (const auto& part : split(agentCgroup, '/')) agent += part + "/";
  if (agent.starts_with(joined + "/")) {
    return fail(fmt::format("cgroupPath '{}' holds the agent's own cgroup '{}'", runtimePath,
                            agentCgroup));
  }
  return std::string(mount) + joined;
}

Result<std::string> selfCgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("0::")) return line.substr(3);
  }
  return fail("no cgroup v2 entry (0::) in /proc/self/cgroup");
}

}  // namespace tollgate::agent
