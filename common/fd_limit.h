#pragma once

// The agent holds about ten long-lived descriptors per pod (netns handle, capture listeners, DNS
// and QUIC sockets, reconciler watches) plus two per proxied connection. The usual soft limit of
// 1024 (systemd's default, and what a container runtime passes on) runs out near 100 pods or a
// few hundred connections, well before the hard limit (524288 under systemd). A full table makes
// accept() fail: new connections are refused (fail-closed, counted), but a node should not hit
// that at normal load, so the agent raises its soft limit to the hard one at start.

#include <sys/resource.h>

#include <utility>

#include "common/error.h"

namespace tollgate {

// Sets RLIMIT_NOFILE's soft limit to its hard limit. Returns {old soft, new soft} (equal when
// there was nothing to raise).
inline Result<std::pair<rlim_t, rlim_t>> raiseFdLimitToHard() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return failErrno("getrlimit(RLIMIT_NOFILE)");
  rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur == lim.rlim_max) return std::pair{before, before};
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return failErrno("setrlimit(RLIMIT_NOFILE)");
  return std::pair{before, lim.rlim_cur};
}

}  // namespace tollgate
