#pragma once

// Listener handoff between two agent processes over <run-dir>/handoff.sock (framed messages,
// common/framing.h, fds by SCM_RIGHTS):
//
//   new agent                                  old agent (serving)
//   "takeover 1"                        ──►    pauses enrollment and the reconciler
//                                       ◄──    manifest (proxy/socket_registry.h encoding),
//                                              then one frame "fd <i>" per socket carrying it,
//                                              then "end"
//   re-adopts the pods on the inherited
//   sockets, starts accepting on them
//   "done"                              ──►    stops accepting: closes its copies of the
//                                              listeners and waits until they are closed
//                                       ◄──    "retiring"; drains open connections up to
//                                              --drain-time, exits
//
// The two processes hold the same listening sockets (one kernel accept queue per socket): from
// the moment the new one accepts until the old one has closed its copies a connection is
// accepted by exactly one of them, and none is refused or lost; once the new agent's start()
// returns, the old one accepts nothing. Anything but "done" (EOF, timeout, garbage)
// aborts: the old agent resumes enrollment and keeps serving (it never stopped accepting), counts
// and logs the failure; the new agent's start fails. Rules stay in every pod netns throughout.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/error.h"
#include "proxy/socket_registry.h"

namespace tollgate::agent {

struct HandoffCounters {
  std::atomic<uint64_t> sent{0};      // handoffs this agent gave its sockets away in
  std::atomic<uint64_t> received{0};  // handoffs this agent took over by
  std::atomic<uint64_t> failed{0};    // aborted handoffs (either side)
  std::atomic<uint64_t> socketsSent{0};
  std::atomic<uint64_t> socketsReceived{0};
  std::atomic<uint64_t> drained{0};  // connections that ended on their own while draining
  std::atomic<uint64_t> cut{0};      // connections still open at the end of the drain time

  std::string prometheus() const;
};

// The new agent's side.
class HandoffClient {
 public:
  // Asks the agent serving `path` for its sockets and puts them into `registry` (as inherited).
  // nullptr: nobody answers (no agent running: a fresh start). An error: an agent answered but
  // the handoff failed; it keeps serving, and this process must not start.
  static Result<std::unique_ptr<HandoffClient>> takeover(const std::string& path,
                                                         proxy::SocketRegistry& registry,
                                                         HandoffCounters& counters,
                                                         int timeoutMs = 10000);
  ~HandoffClient();  // without commit(): aborts (the old agent carries on)
  HandoffClient(const HandoffClient&) = delete;
  HandoffClient& operator=(const HandoffClient&) = delete;

  // Tells the old agent that this one accepts now, and waits for its "retiring".
  Status commit(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  size_t socketCount() const { return sockets_; }

 private:
  HandoffClient(int sock, HandoffCounters& counters) : sock_(sock), counters_(counters) {}
  int sock_ = -1;
  HandoffCounters& counters_;
  size_t sockets_ = 0;
  bool committed_ = false;
};

// The serving agent's side: answers takeover requests on `path`.
class HandoffServer {
 public:
  struct Hooks {
    std::function<void()> pause;   // stop changing the pods: enrollment, reconcile
    std::function<void()> resume;  // the handoff failed: carry on serving
    // The new agent accepts: close this agent's copies of every listener; returns once they are
    // closed (before "retiring" is sent).
    std::function<void()> stopAccepting;
    // Drain and finish. Runs on the server's thread after "retiring" was sent; the server serves
    // no further takeovers.
    std::function<void()> retire;
  };

  HandoffServer(std::string path, proxy::SocketRegistry& registry, HandoffCounters& counters,
                Hooks hooks, std::chrono::milliseconds commitTimeout = std::chrono::seconds(60));
  ~HandoffServer();

  Status start();
  // Stops serving; never unlinks the path (after a handoff it is the new agent's socket).
  void stop();
  const std::string& path() const { return path_; }

 private:
  void loop();
  // One takeover; true when this agent has handed everything over and retired.
  bool serve(int conn);

  std::string path_;
  proxy::SocketRegistry& registry_;
  HandoffCounters& counters_;
  Hooks hooks_;
  std::chrono::milliseconds commitTimeout_;
  int listenFd_ = -1;
  int wakeFd_ = -1;
  std::atomic<int> conn_{-1};  // the takeover being served (stop() shuts it down)
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tollgate::agent
