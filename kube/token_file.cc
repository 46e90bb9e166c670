#include "kube/token_file.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace tollgate::kube {

Result<std::string> TokenFile::current() {
  std::lock_guard lock(mu_);
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return failErrno(fmt::format("token file {}", path_));
  int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (!token_.empty() && st.st_ino == ino_ && st.st_size == size_ && mtime == mtimeNs_) return token_;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return failErrno(fmt::format("token file {}: cannot open", path_));
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.empty()) return fail(fmt::format("token file {}: empty", path_));
  if (t.find_first_of("\r\n") != t.npos) return fail(fmt::format("token file {}: more than one line", path_));
  token_ = std::move(t);
  ino_ = st.st_ino;
  size_ = st.st_size;
  mtimeNs_ = mtime;
  return token_;
}

void TokenFile::invalidate() {
  std::lock_guard lock(mu_);
  token_.clear();
}

}  // namespace tollgate::kube
