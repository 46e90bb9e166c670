#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "common/error.h"

namespace tollgate::agent {

// A unix stream socket served on its own thread, one connection at a time (the enrollment and
// admin sockets): accept, hand the connection to `serve`, close it. The listening socket may be
// inherited from the previous agent (listener handoff), so it is never shutdown().
class UnixServer {
 public:
  // Called with a connected socket that has `ioTimeoutSec` send/receive timeouts; the server
  // closes it afterwards.
  using Serve = std::function<void(int conn)>;

  UnixServer(std::string socketPath, std::string logComponent, Serve serve, int ioTimeoutSec = 10);
  ~UnixServer();

  // Listens on socketPath (mode 0600), or on `listenFd` (an already listening unix socket, owned
  // from here on: obtained through the SocketRegistry, possibly inherited).
  Status start(int listenFd = -1);
  // Stops serving and closes the socket.
  void stop();
  // Stops accepting after the connection in progress; new ones wait in the backlog.
  void pause();
  void resume();
  bool up() const { return up_.load(); }
  const std::string& path() const { return path_; }

 private:
  void loop();

  std::string path_;
  std::string log_;
  Serve serve_;
  int ioTimeoutSec_;
  int listenFd_ = -1;
  int wakeFd_ = -1;  // eventfd: wakes the loop's poll() for stop/pause
  std::atomic<bool> up_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tollgate::agent
