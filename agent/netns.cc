#include "agent/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "common/high_fd.h"

namespace tollgate::agent {

Result<Netns> Netns::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failErrno("open netns " + path);
  return Netns(moveFdHigh(fd), path);  // held as long as the pod (common/high_fd.h)
}

Result<Netns> Netns::fromFd(int fd, std::string description) {
  if (fd < 0) return fail("netns fd is invalid: " + description);
  return Netns(moveFdHigh(fd), std::move(description));  // held as long as the pod
}

Result<Netns> Netns::current() {
  return open("/proc/thread-self/ns/net");
}

Netns::Netns(Netns&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), description_(std::move(other.description_)) {}

Netns& Netns::operator=(Netns&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    description_ = std::move(other.description_);
  }
  return *this;
}

Netns::~Netns() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t Netns::inode() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return 0;
  return st.st_ino;
}

Status Netns::run(const std::function<Status()>& fn) const {
  Status result = fail("netns " + description_ + ": helper thread did not run");
  std::thread t([&] {
    if (::setns(fd_, CLONE_NEWNET) != 0) {
      result = failErrno("setns into " + description_);
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

Result<int> Netns::runFd(const std::function<Result<int>()>& fn) const {
  Result<int> result = fail("netns " + description_ + ": helper thread did not run");
  std::thread t([&] {
    if (::setns(fd_, CLONE_NEWNET) != 0) {
      result = failErrno("setns into " + description_);
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

}  // namespace tollgate::agent
