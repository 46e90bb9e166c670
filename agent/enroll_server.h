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

  Status start();
  void stop();
  bool up() const { return up_.load(); }
  const std::string& path() const { return path_; }

 private:
  void loop();
  void serve(int conn);

  std::string path_;
  Handler handler_;
  int listenFd_ = -1;
  std::atomic<bool> up_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tollgate::agent
