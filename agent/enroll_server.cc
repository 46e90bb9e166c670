#include "agent/enroll_server.h"

#include <unistd.h>

#include "agent/memory.h"
#include "common/framing.h"
#include "common/log.h"

namespace tollgate::agent {
namespace {
constexpr std::string_view kLog = "enroll";
// A plugin that connects and then stalls must not hold up every other pod.
constexpr int kIoTimeoutSec = 10;
}  // namespace

EnrollServer::EnrollServer(std::string socketPath, Handler handler)
    : handler_(std::move(handler)),
      server_(std::move(socketPath), std::string(kLog), [this](int conn) { serve(conn); },
              kIoTimeoutSec) {}

void EnrollServer::serve(int conn) {
  auto frame = recvFrame(conn);
  if (!frame) {
    log::warn(kLog, "bad request: {}", frame.error().str());
    return;
  }
  enroll::EnrollRequest req;
  enroll::EnrollReply reply;
  if (!req.ParseFromString(frame->payload)) {
    if (frame->fd >= 0) ::close(frame->fd);
    reply.set_ok(false);
    reply.set_code(100);
    reply.set_msg("malformed EnrollRequest");
    log::warn(kLog, "malformed EnrollRequest ({} bytes)", frame->payload.size());
  } else {
    int fd = frame->fd;
    if (!req.netns_fd_attached() && fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    reply = handler_(req, fd);
  }
  std::string out;
  reply.SerializeToString(&out);
  if (auto st = sendFrame(conn, out); !st) log::warn(kLog, "reply: {}", st.error().str());
  // After the reply, so the runtime never waits for it: an ADD's netns helper threads and
  // libnftables runs leave freed arena pages behind (agent/memory.h).
  releaseFreedMemory();
}

}  // namespace tollgate::agent
