#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "common/error.h"

namespace tollgate::agent {

// Watches a config directory tree and calls onChange() (on its own thread) when any file's
// mtime, size or presence changes. inotify wakes it early; a 1 s poll comparing mtimes is the
// fallback for filesystems and mounts (ConfigMap symlink swaps) where inotify stays silent.
class ConfigWatcher {
 public:
  using Fingerprint = std::map<std::string, std::pair<int64_t, int64_t>>;  // path -> (mtime ns, size)

  ConfigWatcher(std::string dir, std::function<void()> onChange);
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  // Takes the current fingerprint as the baseline and starts the thread.
  Status start();
  void stop();

  // Every regular file below dir (following symlinks), with mtime and size.
  static Fingerprint scan(const std::string& dir);

 private:
  void loop();
  void addWatches();

  std::string dir_;
  std::function<void()> onChange_;
  int inotifyFd_ = -1;
  int stopFd_ = -1;  // eventfd
  std::thread thread_;
  Fingerprint last_;
};

}  // namespace tollgate::agent
