// libFuzzer target for the agent's framed unix sockets (/run/tollgate/cni.sock, also the handoff
// socket, and the admin socket's framing and AdminRequest) as the agent reads them: the input bytes are what a peer wrote before closing its end, decoded by
// the real recvFrame over a unix socketpair (4-byte big-endian length, then the payload), and each
// decoded payload parsed as an EnrollRequest the way agent/enroll_server.cc does, and as an
// AdminRequest. Whatever the
// bytes: no crash, no sanitizer report, never more than kMaxFrameBytes of payload, and a frame
// shorter than its header or length is an error, never a truncated message.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <google/protobuf/stubs/common.h>

#include "common/framing.h"
#include "proto/admin.pb.h"
#include "proto/enroll.pb.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

// Invalid UTF-8 in a string field is a parse failure the target checks for; protobuf would also
// log one line for each, millions of times.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int sv[2];
  check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  // libFuzzer's inputs (-max_len 4096 by default) fit the socket buffer: write all, then EOF.
  size_t off = 0;
  while (off < size) {
    ssize_t n = ::write(sv[1], data + off, size - off);
    check(n > 0);
    off += static_cast<size_t>(n);
  }
  ::close(sv[1]);

  size_t consumed = 0;
  for (;;) {
    auto frame = tollgate::recvFrame(sv[0]);
    if (!frame) {
      check(!frame.error().str().empty());
      break;
    }
    check(frame->fd < 0);  // no SCM_RIGHTS in this input
    check(frame->payload.size() <= tollgate::kMaxFrameBytes);
    consumed += 4 + frame->payload.size();
    check(consumed <= size);
    check(std::memcmp(frame->payload.data(), data + consumed - frame->payload.size(),
                      frame->payload.size()) == 0);

    tollgate::admin::AdminRequest admin;
    if (admin.ParseFromString(frame->payload)) {
      (void)admin.request_case();
      std::string who = admin.rules().namespace_() + "/" + admin.rules().name() +
                        admin.verify().namespace_() + "/" + admin.verify().name();
      std::string again;
      check(admin.SerializeToString(&again));
    }

    tollgate::enroll::EnrollRequest req;
    if (!req.ParseFromString(frame->payload)) continue;  // the agent replies code 100
    // What the handler reads and logs.
    (void)req.op();
    std::string who = req.pod().namespace_() + "/" + req.pod().name() + " " + req.netns_path() +
                      " " + req.container_id() + " " + req.interface() + " " + req.cgroup_path();
    for (const auto& ip : req.pod_ips()) who += ip;
    for (const auto& [k, v] : req.labels()) who += k + v;
    (void)req.netns_fd_attached();
    std::string again;
    check(req.SerializeToString(&again));
  }
  ::close(sv[0]);
  return 0;
}
