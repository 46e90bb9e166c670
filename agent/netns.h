#pragma once

#include <functional>
#include <string>

#include "common/error.h"

namespace tollgate::agent {

// An open reference to a network namespace (an fd on /proc/<pid>/ns/net, /var/run/netns/<name>,
// or one received by SCM_RIGHTS). Move-only; closes the fd.
class Netns {
 public:
  static Result<Netns> open(const std::string& path);
  static Result<Netns> fromFd(int fd, std::string description);  // takes ownership
  static Result<Netns> current();  // the calling thread's netns

  Netns(Netns&& other) noexcept;
  Netns& operator=(Netns&& other) noexcept;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns();

  int fd() const { return fd_; }
  const std::string& description() const { return description_; }
  // Inode of the namespace: two handles to the same netns compare equal.
  uint64_t inode() const;

  // Runs fn on a short-lived helper thread that has entered this netns (setns), and returns its
  // result. Sockets created inside fn stay in this netns after the thread exits. The calling
  // thread's namespace is never changed.
  Status run(const std::function<Status()>& fn) const;
  // Same, for a function that creates and returns an fd (a listening or marked socket).
  Result<int> runFd(const std::function<Result<int>()>& fn) const;

 private:
  Netns(int fd, std::string description) : fd_(fd), description_(std::move(description)) {}
  int fd_ = -1;
  std::string description_;
};

}  // namespace tollgate::agent
