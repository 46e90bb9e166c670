#include "agent/exclusions.h"

#include <sys/stat.h>

#include <algorithm>

namespace tollgate::agent {

bool namespaceExcluded(const policy::TollgateConfig& mesh, std::string_view ns) {
  return !ns.empty() && std::ranges::find(mesh.excludedNamespaces, ns) !=
                            mesh.excludedNamespaces.end();
}

bool isNodeNetns(int netnsFd, const std::string& path) {
  struct stat pod {}, self {};
  int rc = netnsFd >= 0 ? ::fstat(netnsFd, &pod) : path.empty() ? -1 : ::stat(path.c_str(), &pod);
  if (rc != 0 || ::stat("/proc/self/ns/net", &self) != 0) return false;
  return pod.st_dev == self.st_dev && pod.st_ino == self.st_ino;
}

}  // namespace tollgate::agent
