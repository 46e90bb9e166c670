#include "agent/config_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "agent/memory.h"
#include "common/log.h"

namespace tollgate::agent {
namespace {
namespace fs = std::filesystem;
constexpr int kPollMs = 1000;
// Editors and kubelet write in several steps; wait for the burst to end before reloading.
constexpr int kSettleMs = 100;
}  // namespace

ConfigWatcher::ConfigWatcher(std::string dir, std::function<void()> onChange)
    : dir_(std::move(dir)), onChange_(std::move(onChange)) {}

ConfigWatcher::~ConfigWatcher() { stop(); }

ConfigWatcher::Fingerprint ConfigWatcher::scan(const std::string& dir) {
  Fingerprint fp;
  std::error_code ec;
  fs::recursive_directory_iterator it(
      dir, fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied,
      ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    fp[it->path().string()] = {static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                               static_cast<int64_t>(st.st_size)};
  }
  return fp;
}

void ConfigWatcher::addWatches() {
  if (inotifyFd_ < 0) return;
  constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM |
                             IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
  ::inotify_add_watch(inotifyFd_, dir_.c_str(), kMask);
  std::error_code ec;
  fs::recursive_directory_iterator it(dir_, fs::directory_options::follow_directory_symlink, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) ::inotify_add_watch(inotifyFd_, it->path().c_str(), kMask);
  }
}

Status ConfigWatcher::start() {
  stopFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stopFd_ < 0) return failErrno("eventfd");
  inotifyFd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotifyFd_ < 0) {
    log::warn("config", "inotify unavailable ({}); polling {} every {} ms", std::strerror(errno),
              dir_, kPollMs);
  }
  addWatches();
  last_ = scan(dir_);
  thread_ = std::thread([this] { loop(); });
  return {};
}

void ConfigWatcher::stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stopFd_, &one, sizeof one);
    thread_.join();
  }
  if (inotifyFd_ >= 0) ::close(inotifyFd_);
  if (stopFd_ >= 0) ::close(stopFd_);
  inotifyFd_ = stopFd_ = -1;
}

void ConfigWatcher::loop() {
  for (;;) {
    pollfd fds[2] = {{stopFd_, POLLIN, 0}, {inotifyFd_, POLLIN, 0}};
    int n = ::poll(fds, inotifyFd_ >= 0 ? 2 : 1, kPollMs);
    if (n > 0 && (fds[0].revents & POLLIN)) return;
    if (n > 0 && (fds[1].revents & POLLIN)) {
      char buf[4096];
      while (::read(inotifyFd_, buf, sizeof buf) > 0) {
      }
      // Let the writer finish, and swallow the events it causes meanwhile.
      pollfd stopOnly{stopFd_, POLLIN, 0};
      if (::poll(&stopOnly, 1, kSettleMs) > 0) return;
      while (::read(inotifyFd_, buf, sizeof buf) > 0) {
      }
      addWatches();  // new subdirectories
    }
    Fingerprint now = scan(dir_);
    if (now != last_) {
      last_ = std::move(now);
      onChange_();
      releaseFreedMemory();  // the parse and the old snapshot's pages (agent/memory.h)
    }
  }
}

}  // namespace tollgate::agent
