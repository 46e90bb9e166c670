#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "agent/unix_server.h"
#include "common/error.h"
#include "proto/admin.pb.h"

namespace tollgate::agent {

// The admin socket (<run-dir>/admin.sock) that tollgatectl talks to: one framed AdminRequest per
// connection, one AdminReply back. Root only twice over: the socket file is 0600 root, and the
// peer's credentials (SO_PEERCRED) must say uid 0, so a loosened file mode or a socket passed to
// a pod still refuses. Never reachable from a pod: it lives in the agent's run dir on the node.
class AdminServer {
 public:
  using Handler = std::function<admin::AdminReply(const admin::AdminRequest&)>;

  struct Counters {
    std::atomic<uint64_t> ok{0};
    std::atomic<uint64_t> refused{0};    // peer not root
    std::atomic<uint64_t> malformed{0};  // unreadable frame or request
  };

  AdminServer(std::string socketPath, Handler handler);
  ~AdminServer();

  Status start(int listenFd = -1) { return server_.start(listenFd); }
  // Stops serving and waits for a verify in progress.
  void stop();
  bool up() const { return server_.up(); }
  const std::string& path() const { return server_.path(); }
  const Counters& counters() const { return counters_; }
  // tollgate_admin_requests_total{result}, as Prometheus text.
  std::string collectMetrics() const;

 private:
  void serve(int conn);
  // Runs `req` on the worker thread and answers on a dup of `conn` from there; refuses when the
  // worker is still busy (the one place that keeps verifies one at a time).
  void serveLong(int conn, admin::AdminRequest req);

  Handler handler_;
  Counters counters_;
  std::mutex workerMu_;
  std::thread worker_;
  std::atomic<bool> workerBusy_{false};
  UnixServer server_;  // last: its thread calls serve() until it is destroyed
};

}  // namespace tollgate::agent
