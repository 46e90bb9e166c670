#include "agent/cni_installer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <system_error>

#include "cni/json.h"
#include "common/json.h"
#include "common/log.h"

namespace tollgate::agent {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kLog = "cni-install";
constexpr std::string_view kBackupSuffix = ".tollgate-orig";
constexpr std::string_view kTempSuffix = ".tollgate-tmp";
constexpr int kDebounceMs = 200;
constexpr int kResyncMs = 60'000;

std::string prefixed(const std::string& path, const std::string& what) {
  return "cni install: " + path + ": " + what;
}

// The extensions libcni's ConfFiles() reads; anything else in the dir is invisible to runtimes,
// which is why our temp and backup files end in other suffixes.
bool isConfName(const std::string& name) {
  auto ext = fs::path(name).extension().string();
  return ext == ".conf" || ext == ".conflist" || ext == ".json";
}

std::string backupPath(const fs::path& dir, const std::string& name) {
  return (dir / ("." + name + std::string(kBackupSuffix))).string();
}

Result<std::optional<std::string>> readIfExists(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return failErrno(prefixed(path, "open"));
  }
  std::string data;
  std::array<char, 65536> buf;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return failErrno(prefixed(path, "read"), err);
    }
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return std::optional<std::string>(std::move(data));
}

Result<std::string> readFile(const std::string& path) {
  auto data = readIfExists(path);
  if (!data) return std::unexpected(data.error());
  if (!*data) return fail(prefixed(path, "no such file"), ENOENT);
  return std::move(**data);
}

Status fsyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failErrno(prefixed(dir.string(), "open dir"));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return failErrno(prefixed(dir.string(), "fsync dir"), err);
  return {};
}

// Readers (runtimes, the binary's exec) see the old bytes or the new ones, never a torn file:
// write a hidden temp file in the same dir, fsync it, rename it over the target.
Status writeFileAtomic(const std::string& path, std::string_view bytes, mode_t mode) {
  fs::path target(path);
  fs::path dir = target.parent_path();
  std::string tmp = (dir / ("." + target.filename().string() + std::string(kTempSuffix) + "." +
                            std::to_string(::getpid())))
                        .string();
  ::unlink(tmp.c_str());  // a leftover of a crashed run with our pid
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return failErrno(prefixed(tmp, "create"));
  auto cleanup = [&](const char* what) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return failErrno(prefixed(tmp, what), err);
  };
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup("write");
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0) return cleanup("chmod");  // the umask must not decide the mode
  if (::fsync(fd) != 0) return cleanup("fsync");
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return failErrno(prefixed(path, "rename"), err);
  }
  return fsyncDir(dir);
}

// The mode a rewritten file keeps: the runtime's (or the primary CNI's) choice, not ours.
mode_t modeOf(const std::string& path, mode_t fallback) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fallback;
  return st.st_mode & 07777;
}

Status removeFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return failErrno(prefixed(path, "remove"));
  return {};
}

// Const lookup: yaml-cpp's non-const operator[] would add the key, and the node its const one
// returns for a missing key throws on IsScalar()/IsSequence(); an Undefined node does not.
YAML::Node get(const YAML::Node& node, const char* key) {
  const YAML::Node& c = node;
  if (!c.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node v = c[key];
  return v.IsDefined() ? v : YAML::Node(YAML::NodeType::Undefined);
}

std::string scalarOr(const YAML::Node& node, const char* key) {
  auto v = get(node, key);
  return v.IsScalar() ? v.Scalar() : std::string();
}

Result<YAML::Node> parseFile(const std::string& path, const std::string& bytes) {
  auto doc = cni::parseJsonObject(bytes);
  if (!doc) {
    std::string msg = doc.error().message;
    constexpr std::string_view kPrefix = "invalid JSON: ";
    if (msg.starts_with(kPrefix)) msg.erase(0, kPrefix.size());
    return fail(prefixed(path, "not valid JSON: " + msg));
  }
  return *doc;
}

std::string render(const YAML::Node& doc) { return cni::toJsonPretty(doc) + "\n"; }

bool sameJson(const YAML::Node& a, const YAML::Node& b) { return cni::toJson(a) == cni::toJson(b); }

// A copy of `plugins` without entries of type `type`; `removed` counts them.
YAML::Node withoutType(const YAML::Node& plugins, const std::string& type, int& removed) {
  YAML::Node out(YAML::NodeType::Sequence);
  removed = 0;
  for (const auto& p : plugins) {
    if (p.IsMap() && scalarOr(p, "type") == type) {
      ++removed;
      continue;
    }
    out.push_back(p);
  }
  return out;
}

// libcni's ConfListFromConf: the single plugin's name and cniVersion lifted to the list.
YAML::Node listFromSingle(const YAML::Node& single) {
  YAML::Node list(YAML::NodeType::Map);
  if (auto v = get(single, "cniVersion"); v.IsDefined()) list["cniVersion"] = v;
  if (auto v = get(single, "name"); v.IsDefined()) list["name"] = v;
  YAML::Node plugins(YAML::NodeType::Sequence);
  plugins.push_back(single);
  list["plugins"] = plugins;
  return list;
}

// Copy of a list document with its "plugins" replaced, keeping the key's position.
YAML::Node withPlugins(const YAML::Node& list, const YAML::Node& plugins) {
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& kv : list) {
    if (kv.first.Scalar() == "plugins") {
      out[kv.first] = plugins;
    } else {
      out[kv.first] = kv.second;
    }
  }
  return out;
}

}  // namespace

std::string defaultPluginConfig(const std::string& socket, const std::string& failMode) {
  // cgroupPath: the runtime passes the pod's cgroup in runtimeConfig (the eBPF mode needs it).
  return "{\"type\":\"tollgate-cni\",\"socket\":" + jsonQuote(socket) +
         ",\"failMode\":" + jsonQuote(failMode) + ",\"capabilities\":{\"cgroupPath\":true}}";
}

CniInstaller::CniInstaller(CniInstallerOptions options) : options_(std::move(options)) {
  if (options_.pluginConfig.empty()) options_.pluginConfig = defaultPluginConfig();
  auto doc = cni::parseJsonObject(options_.pluginConfig);
  if (!doc) {
    pluginError_ = "cni install: plugin config: " + doc.error().message;
  } else {
    pluginType_ = scalarOr(*doc, "type");
    // The type names the binary in the bin dir, so it must be a plain file name.
    if (pluginType_.empty() || pluginType_.find('/') != std::string::npos || pluginType_ == "." ||
        pluginType_ == "..") {
      pluginError_ = "cni install: plugin config: \"type\" must be a plain binary name";
    }
    if (scalarOr(*doc, "failMode") == "open") {
      log::warn(kLog,
                "plugin config has failMode \"open\": pods START WITHOUT EGRESS CONTROL whenever "
                "the agent is unreachable");
    }
  }
  stopFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

CniInstaller::~CniInstaller() {
  if (stopFd_ >= 0) ::close(stopFd_);
}

Result<std::string> CniInstaller::primaryConfFile(const std::string& confDir) {
  std::error_code ec;
  fs::directory_iterator it(confDir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return std::string();
    return fail(prefixed(confDir, "list: " + ec.message()), ec.value());
  }
  std::vector<std::string> names;
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    // libcni skips directories only; a symlink to a file counts.
    std::error_code statEc;
    if (isConfName(name) && !it->is_directory(statEc)) names.push_back(std::move(name));
  }
  if (ec) return fail(prefixed(confDir, "list: " + ec.message()), ec.value());
  // Byte order, as Go's sort.Strings.
  if (names.empty()) return std::string();
  return (fs::path(confDir) / *std::min_element(names.begin(), names.end())).string();
}

Result<bool> CniInstaller::installBinary() {
  if (options_.pluginBinary.empty()) return false;
  auto src = readFile(options_.pluginBinary);
  if (!src) return std::unexpected(src.error());
  std::error_code ec;
  fs::create_directories(options_.cniBinDir, ec);
  if (ec) return fail(prefixed(options_.cniBinDir, "create dir: " + ec.message()), ec.value());
  std::string dst = (fs::path(options_.cniBinDir) / pluginType_).string();
  auto existing = readIfExists(dst);
  if (!existing) return std::unexpected(existing.error());
  if (*existing && **existing == *src) {
    struct stat st {};
    if (::stat(dst.c_str(), &st) == 0 && (st.st_mode & 07777) != 0755 &&
        ::chmod(dst.c_str(), 0755) != 0) {
      return failErrno(prefixed(dst, "chmod"));
    }
    return false;
  }
  if (auto s = writeFileAtomic(dst, *src, 0755); !s) return std::unexpected(s.error());
  log::info(kLog, "installed {} from {}", dst, options_.pluginBinary);
  return true;
}

Result<CniInstallReport> CniInstaller::installConf() {
  CniInstallReport report;
  auto primary = primaryConfFile(options_.cniConfDir);
  if (!primary) return std::unexpected(primary.error());
  if (primary->empty()) {
    return fail("cni install: " + options_.cniConfDir +
                ": no CNI configuration (*.conflist, *.conf, *.json); is the primary CNI "
                "installed yet?");
  }
  const std::string path = *primary;
  const fs::path dir = fs::path(path).parent_path();
  const std::string name = fs::path(path).filename().string();
  auto bytes = readFile(path);
  if (!bytes) return std::unexpected(bytes.error());
  auto doc = parseFile(path, *bytes);
  if (!doc) return std::unexpected(doc.error());
  auto ours = cni::parseJsonObject(options_.pluginConfig);
  if (!ours) return fail(pluginError_);

  auto plugins = get(*doc, "plugins");
  if (plugins.IsDefined()) {
    if (!plugins.IsSequence()) return fail(prefixed(path, "\"plugins\" is not a list"));
    int removed = 0;
    YAML::Node kept = withoutType(plugins, pluginType_, removed);
    kept.push_back(*ours);
    YAML::Node desired = withPlugins(*doc, kept);
    report.confFile = path;
    if (sameJson(desired, *doc)) return report;
    // Our entry absent means the file is the primary CNI's own version: that is the original to
    // give back on uninstall (an older backup is stale).
    const mode_t mode = modeOf(path, 0644);
    if (removed == 0) {
      if (auto s = writeFileAtomic(backupPath(dir, name), *bytes, mode); !s) {
        return std::unexpected(s.error());
      }
    }
    if (auto s = writeFileAtomic(path, render(desired), mode); !s) {
      return std::unexpected(s.error());
    }
    report.confWritten = true;
    log::info(kLog, "{} {} in {}", removed == 0 ? "added" : "updated", pluginType_, path);
    return report;
  }

  if (!get(*doc, "type").IsDefined()) {
    return fail(prefixed(path, "neither \"plugins\" (a .conflist) nor \"type\" (a .conf)"));
  }
  if (fs::path(path).extension() == ".conflist") {
    return fail(prefixed(path, "a .conflist needs \"plugins\""));
  }
  // A single-plugin file: chain it through a .conflist of the same stem, which sorts right after
  // it and so becomes primary once the single file is gone.
  const std::string target = (dir / (fs::path(path).stem().string() + ".conflist")).string();
  auto existing = readIfExists(target);
  if (!existing) return std::unexpected(existing.error());
  if (*existing) {
    // Only our own earlier conversion may be replaced; anything else belongs to someone.
    auto old = cni::parseJsonObject(**existing);
    int removed = 0;
    if (old) {
      auto oldPlugins = get(*old, "plugins");
      if (oldPlugins.IsSequence()) withoutType(oldPlugins, pluginType_, removed);
    }
    if (removed == 0) {
      return fail(prefixed(path, "cannot convert to " + target + ": that file exists and has no " +
                                     pluginType_ + " entry"));
    }
  }
  YAML::Node list = listFromSingle(*doc);
  YAML::Node chained = get(list, "plugins");
  chained.push_back(*ours);
  const mode_t mode = modeOf(path, 0644);
  if (auto s = writeFileAtomic(backupPath(dir, name), *bytes, mode); !s) {
    return std::unexpected(s.error());
  }
  if (auto s = writeFileAtomic(target, render(list), mode); !s) return std::unexpected(s.error());
  if (auto s = removeFile(path); !s) return std::unexpected(s.error());
  if (auto s = fsyncDir(dir); !s) return std::unexpected(s.error());
  report.confFile = target;
  report.confWritten = true;
  report.convertedFrom = path;
  log::info(kLog, "converted {} into {} with {} last", path, target, pluginType_);
  return report;
}

Result<CniInstallReport> CniInstaller::install() {
  if (!pluginError_.empty()) return fail(pluginError_);
  // An unusable primary file stops us before anything is written, the binary included.
  auto primary = primaryConfFile(options_.cniConfDir);
  if (!primary) return std::unexpected(primary.error());
  if (!primary->empty()) {
    auto bytes = readFile(*primary);
    if (!bytes) return std::unexpected(bytes.error());
    if (auto doc = parseFile(*primary, *bytes); !doc) return std::unexpected(doc.error());
  }
  // Binary first: a configuration naming a plugin the runtime cannot find fails every pod ADD.
  auto wrote = installBinary();
  if (!wrote) return std::unexpected(wrote.error());
  auto report = installConf();
  if (!report) return report;
  report->binaryWritten = *wrote;
  return report;
}

Result<CniInstallReport> CniInstaller::reconcileOnce() { return install(); }

Result<CniUninstallReport> CniInstaller::uninstall() {
  if (!pluginError_.empty()) return fail(pluginError_);
  CniUninstallReport report;
  const fs::path dir(options_.cniConfDir);
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    std::error_code statEc;
    if (isConfName(name) && !it->is_directory(statEc)) names.push_back(name);
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return fail(prefixed(dir.string(), "list: " + ec.message()), ec.value());
  }
  std::sort(names.begin(), names.end());

  for (const auto& name : names) {
    const std::string path = (dir / name).string();
    auto bytes = readFile(path);
    if (!bytes) return std::unexpected(bytes.error());
    auto doc = cni::parseJsonObject(*bytes);
    if (!doc) continue;  // not parseable: we never wrote it
    auto plugins = get(*doc, "plugins");
    if (!plugins.IsSequence()) continue;
    int removed = 0;
    YAML::Node stripped = withPlugins(*doc, withoutType(plugins, pluginType_, removed));
    if (removed == 0) continue;

    // Candidates for the original: this file's own backup, or the single-plugin file it was
    // converted from. Restore only when nothing but our entry changed since.
    struct Candidate {
      std::string name;
      bool converted;
    };
    std::vector<Candidate> candidates = {{name, false}};
    if (fs::path(name).extension() == ".conflist") {
      auto stem = fs::path(name).stem().string();
      candidates.push_back({stem + ".conf", true});
      candidates.push_back({stem + ".json", true});
    }
    bool restored = false;
    for (const auto& c : candidates) {
      const std::string backup = backupPath(dir, c.name);
      auto saved = readIfExists(backup);
      if (!saved) return std::unexpected(saved.error());
      if (!*saved) continue;
      auto original = cni::parseJsonObject(**saved);
      if (!original) continue;
      YAML::Node asList = c.converted ? listFromSingle(*original) : *original;
      if (!sameJson(asList, stripped)) {
        log::warn(kLog, "{} changed since install; removing only our entry", path);
        continue;
      }
      const std::string originalPath = (dir / c.name).string();
      if (auto s = writeFileAtomic(originalPath, **saved, modeOf(backup, 0644)); !s) {
        return std::unexpected(s.error());
      }
      if (c.converted) {
        if (auto s = removeFile(path); !s) return std::unexpected(s.error());
      }
      if (auto s = removeFile(backup); !s) return std::unexpected(s.error());
      if (auto s = fsyncDir(dir); !s) return std::unexpected(s.error());
      report.filesRestored.push_back(originalPath);
      restored = true;
      break;
    }
    if (restored) continue;
    if (auto s = writeFileAtomic(path, render(stripped), modeOf(path, 0644)); !s) {
      return std::unexpected(s.error());
    }
    // The originals no longer match what is there; a stale backup must not be restored later.
    for (const auto& c : candidates) {
      if (auto s = removeFile(backupPath(dir, c.name)); !s) return std::unexpected(s.error());
    }
    report.filesChanged.push_back(path);
  }
  for (const auto& f : report.filesChanged) log::info(kLog, "removed {} from {}", pluginType_, f);

  // The binary goes last, and only if it is the one we would install.
  if (!options_.pluginBinary.empty()) {
    const std::string dst = (fs::path(options_.cniBinDir) / pluginType_).string();
    auto installed = readIfExists(dst);
    if (!installed) return std::unexpected(installed.error());
    auto ours = readIfExists(options_.pluginBinary);
    if (!ours) return std::unexpected(ours.error());
    if (*installed && *ours && **installed == **ours) {
      if (auto s = removeFile(dst); !s) return std::unexpected(s.error());
      report.binaryRemoved = true;
      log::info(kLog, "removed {}", dst);
    } else if (*installed) {
      log::warn(kLog, "kept {}: its bytes differ from {}", dst, options_.pluginBinary);
    }
  }
  return report;
}

Status CniInstaller::watch() {
  if (stopFd_ < 0) return fail("cni install: eventfd failed");
  if (!pluginError_.empty()) return fail(pluginError_);
  std::error_code ec;
  fs::create_directories(options_.cniConfDir, ec);
  if (ec) {
    return fail(prefixed(options_.cniConfDir, "create dir: " + ec.message()), ec.value());
  }
  int ifd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ifd < 0) return failErrno("cni install: inotify_init1");
  constexpr uint32_t kMask = IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                             IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;
  int wd = -1;
  auto addWatch = [&]() -> Status {
    wd = ::inotify_add_watch(ifd, options_.cniConfDir.c_str(), kMask);
    if (wd < 0) return failErrno(prefixed(options_.cniConfDir, "inotify_add_watch"));
    return {};
  };
  if (auto s = addWatch(); !s) {
    ::close(ifd);
    return s;
  }

  std::string lastError;
  auto pass = [&] {
    auto r = reconcileOnce();
    if (!r) {
      // Repeated failures (the primary CNI not there yet) are logged once until they change.
      if (r.error().message != lastError) log::warn(kLog, "{}", r.error().message);
      lastError = r.error().message;
      return;
    }
    lastError.clear();
  };
  // Returns false once stop() was called. Sets `dirGone` when the watched dir went away.
  bool dirGone = false;
  auto drain = [&]() {
    alignas(inotify_event) char buf[4096];
    for (;;) {
      ssize_t n = ::read(ifd, buf, sizeof buf);
      if (n <= 0) return;
      for (ssize_t off = 0; off < n;) {
        auto* ev = reinterpret_cast<inotify_event*>(buf + off);
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) dirGone = true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
  };

  bool stopping = false;
  pass();
  while (!stopping) {
    if (dirGone) {
      // The conf dir was deleted or replaced: watch the new one once it exists.
      fs::create_directories(options_.cniConfDir, ec);
      if (wd >= 0) ::inotify_rm_watch(ifd, wd);
      if (addWatch()) dirGone = false;
    }
    pollfd fds[2] = {{stopFd_, POLLIN, 0}, {ifd, POLLIN, 0}};
    int n = ::poll(fds, 2, dirGone ? 1000 : kResyncMs);
    if (n < 0 && errno != EINTR) {
      int err = errno;
      ::close(ifd);
      return failErrno("cni install: poll", err);
    }
    if (fds[0].revents & POLLIN) break;
    if (n > 0 && (fds[1].revents & POLLIN)) {
      // Debounce: runtimes and CNI installers write in bursts (temp file, rename, chmod).
      drain();
      for (;;) {
        pollfd more[2] = {{stopFd_, POLLIN, 0}, {ifd, POLLIN, 0}};
        int m = ::poll(more, 2, kDebounceMs);
        if (m <= 0) break;
        if (more[0].revents & POLLIN) {
          stopping = true;
          break;
        }
        drain();
      }
      if (stopping) break;
    }
    pass();
  }
  ::close(ifd);
  uint64_t count = 0;
  [[maybe_unused]] auto n = ::read(stopFd_, &count, sizeof count);  // re-arm for another watch()
  return {};
}

void CniInstaller::stop() {
  uint64_t one = 1;
  // Only write(2): this runs in signal handlers.
  [[maybe_unused]] auto n = ::write(stopFd_, &one, sizeof one);
}

}  // namespace tollgate::agent
