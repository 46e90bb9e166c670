#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace tollgate {

// Length-prefixed messages over a connected unix stream socket (enrollment and admin sockets):
// a 4-byte big-endian length, then the payload. Optionally one fd travels as SCM_RIGHTS with
// the first byte of the frame. Blocking; callers set SO_RCVTIMEO/SO_SNDTIMEO for deadlines.
inline constexpr size_t kMaxFrameBytes = 1 << 20;

Status sendFrame(int sock, const std::string& payload, int fdToSend = -1);

struct Frame {
  std::string payload;
  int fd = -1;  // received fd (caller owns it), -1 when none
};
Result<Frame> recvFrame(int sock);

// Connects to a unix stream socket path with a send/receive timeout in milliseconds.
Result<int> connectUnix(const std::string& path, int timeoutMs);
// Creates, binds (replacing a stale socket file) and listens on a unix stream socket path.
Result<int> listenUnix(const std::string& path, int mode = 0600);

}  // namespace tollgate
