#pragma once

// Long-lived descriptors (per-pod netns handles, capture listeners, DNS sockets, the reconciler's
// event watches) live at or above FD_SETSIZE. libnftables select()s on the netlink socket it opens
// for every ruleset operation, and glibc's fortified FD_SET aborts the whole process once that
// socket's number reaches 1024 ("bit out of range 0 - FD_SETSIZE on fd_set"). With about ten
// long-lived fds per pod the agent died near 100 pods (lab scenario 28) — below the kubelet's
// default of 110 pods per node. Kept high, they leave the low numbers to short-lived sockets.
// (agent/nft_table.cc also gives libnftables a private fd table; this keeps the low range free
// for any other select() user too.)

#include <fcntl.h>
#include <unistd.h>

namespace tollgate {

inline constexpr int kHighFdBase = 1024;  // FD_SETSIZE

// Moves `fd` to the lowest free number >= kHighFdBase (close-on-exec) and returns the new number.
// When that is impossible (RLIMIT_NOFILE at or below 1024) the original fd is returned unchanged:
// the process then cannot reach such numbers at all, so there is nothing to avoid.
inline int moveFdHigh(int fd) {
  if (fd < 0 || fd >= kHighFdBase) return fd;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, kHighFdBase);
  if (high < 0) return fd;
  ::close(fd);
  return high;
}

}  // namespace tollgate
