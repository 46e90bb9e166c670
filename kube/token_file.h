#pragma once

#include <mutex>
#include <string>
#include <sys/types.h>

#include "common/error.h"

namespace tollgate::kube {

// A bearer token kept in a file that is replaced on rotation (the kubelet's projected service
// account token, rotated well before it expires). current() re-reads the file when its inode,
// size or mtime changed since the last read; invalidate() (after a 401) forces the next read.
// Thread-safe.
class TokenFile {
 public:
  explicit TokenFile(std::string path) : path_(std::move(path)) {}

  Result<std::string> current();
  void invalidate();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::mutex mu_;
  std::string token_;
  ino_t ino_ = 0;
  off_t size_ = -1;
  int64_t mtimeNs_ = -1;
};

}  // namespace tollgate::kube
