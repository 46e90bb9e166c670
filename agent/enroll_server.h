#pragma once

#include <functional>
#include <string>

#include "agent/unix_server.h"
#include "common/error.h"
#include "proto/enroll.pb.h"

namespace tollgate::agent {

// The enrollment socket (<run-dir>/cni.sock): one framed EnrollRequest (netns fd by SCM_RIGHTS)
// per connection, one EnrollReply back. Requests are handled one at a time on the server's own
// thread, so enrollment never races itself.
class EnrollServer {
 public:
  using Handler = std::function<enroll::EnrollReply(const enroll::EnrollRequest&, int fd)>;

  EnrollServer(std::string socketPath, Handler handler);

  // Listens on socketPath, or on `listenFd` (an already listening unix socket, owned from here
  // on: obtained through the SocketRegistry, possibly inherited from the previous agent).
  Status start(int listenFd = -1) { return server_.start(listenFd); }
  // Stops serving and closes the socket. Never shutdown(): after a handoff the same listening
  // socket is the next agent's.
  void stop() { server_.stop(); }
  // Stops accepting after the request in progress (handoff: enrollment must not change the pods
  // while their sockets are being handed over); new requests wait in the socket's backlog.
  void pause() { server_.pause(); }
  void resume() { server_.resume(); }
  bool up() const { return server_.up(); }
  const std::string& path() const { return server_.path(); }

 private:
  void serve(int conn);

  Handler handler_;
  UnixServer server_;  // last: its thread calls serve() until it is destroyed
};

}  // namespace tollgate::agent
