#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

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
  ~EnrollServer();

  // Listens on socketPath, or on `listenFd` (an already listening unix socket, owned from here
  // on: obtained through the SocketRegistry, possibly inherited from the previous agent).
  Status start(int listenFd = -1);
  // Stops serving and closes the socket. Never shutdown(): after a handoff the same listening
  // socket is the next agent's.
  void stop();
  // Stops accepting after the request in progress (handoff: enrollment must not change the pods
  // while their sockets are being handed over); new requests wait in the socket's backlog.
  void pause();
  void resume();
  bool up() const { return up_.load(); }
  const std::string& path() const { return path_; }

 private:
  void loop();
  void serve(int conn);

  std::string path_;
  Handler handler_;
  int listenFd_ = -1;
  int wakeFd_ = -1;  // eventfd: wakes the loop's poll() for stop/pause
  std::atomic<bool> up_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tollgate::agent
