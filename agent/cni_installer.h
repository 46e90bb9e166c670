#pragma once

// Installs tollgate-cni as a chained plugin on a node: copies the plugin binary into the runtime's
// CNI bin dir and appends our plugin object to the node's primary network configuration, then keeps
// it there while the primary CNI (Calico, Flannel, ...) rewrites its own file (istio-cni's
// install-cni does the same job for Istio).
//
// Which file is primary: the one the runtime uses, i.e. the lexicographically first *.conf,
// *.conflist or *.json file in the conf dir (libcni ConfFiles + sort, as containerd's go-cni,
// CRI-O's ocicni and kubelet do). If that file is not valid JSON we stop with an error naming it
// and write nothing: the runtime would fail on it too, and patching a later file would chain a
// configuration the runtime does not use.
//
// A single-plugin *.conf / *.json is converted as libcni's ConfListFromConf does (a list with the
// file's "cniVersion" and "name" and the original object as its only plugin, then ours) and written
// as <stem>.conflist; the original file is then removed. This is istio-cni's choice too (it
// rewrites the file and renames it to .conflist): runtimes read *.conf files as single plugins, so
// the list cannot keep the old name.
//
// Every file we write is pretty-printed JSON (2 spaces, trailing newline), so a rewrite normalises
// the original whitespace; key order and every other field and plugin are kept exactly. A file
// whose content already equals what we would write is left alone (no rewrite, mtime unchanged).
// Before the first change to a file its original bytes are saved beside it as
// `.<name>.tollgate-orig` (no CNI extension, so runtimes ignore it); uninstall() restores those
// bytes when nothing but our entry changed since.
//
// Our plugin needs no kubeconfig (unlike istio-cni): it only talks to the agent's unix socket.

#include <filesystem>
#include <string>
#include <vector>

#include "common/error.h"

namespace tollgate::agent {

struct CniInstallerOptions {
  std::string cniBinDir = "/opt/cni/bin";
  std::string cniConfDir = "/etc/cni/net.d";
  // tollgate-cni binary to copy into cniBinDir as "<type>"; empty: do not copy.
  std::string pluginBinary;
  // Our plugin object, a JSON object with "type" (default from defaultPluginConfig()).
  std::string pluginConfig;
};

// {"type":"tollgate-cni","socket":<socket>,"failMode":<failMode>} as JSON text.
std::string defaultPluginConfig(const std::string& socket = "/run/tollgate/cni.sock",
                                const std::string& failMode = "closed");

// What one install()/reconcileOnce() did.
struct CniInstallReport {
  bool binaryWritten = false;  // false: the installed binary already had the same bytes
  std::string confFile;        // the primary file, which now holds our plugin last
  bool confWritten = false;    // false: it already did
  std::string convertedFrom;   // the single-plugin file converted into confFile, if any
};

struct CniUninstallReport {
  std::vector<std::string> filesChanged;   // our entry removed, other changes since kept
  std::vector<std::string> filesRestored;  // original bytes (and name) put back from the backup
  bool binaryRemoved = false;
};

class CniInstaller {
 public:
  explicit CniInstaller(CniInstallerOptions options);
  ~CniInstaller();
  CniInstaller(const CniInstaller&) = delete;
  CniInstaller& operator=(const CniInstaller&) = delete;

  // Copies the binary (temp file + fsync + rename, mode 0755; skipped when the bytes are the
  // same), then puts our plugin last in the primary configuration. Idempotent.
  Result<CniInstallReport> install();

  // Removes what install() added: our entry from every configuration file in the conf dir
  // (restoring the saved original bytes when nothing else changed, converting a .conflist back to
  // the .conf it came from), then the binary if its bytes are ours.
  Result<CniUninstallReport> uninstall();

  // One pass of watch(): the same as install(). Tests drive it directly.
  Result<CniInstallReport> reconcileOnce();

  // Reconciles, then again after each burst of changes in the conf dir (inotify, debounced) and
  // every resync period, until stop(). Errors of a pass are logged, not fatal: the primary CNI may
  // not have written its file yet. Fails only when the watch itself cannot be set up. It does not
  // uninstall on exit: leaving the plugin in place keeps new pods fail-closed while the agent is
  // away.
  Status watch();

  // Makes watch() return; async-signal-safe, callable from any thread.
  void stop();

  // The primary configuration file of `confDir` ("" when there is none).
  static Result<std::string> primaryConfFile(const std::string& confDir);

  // The file name the installed binary gets (the plugin's "type").
  const std::string& pluginType() const { return pluginType_; }

 private:
  Result<bool> installBinary();
  Result<CniInstallReport> installConf();

  CniInstallerOptions options_;
  std::string pluginType_;
  std::string pluginError_;  // non-empty when options_.pluginConfig is unusable
  int stopFd_ = -1;          // eventfd: stop() writes, watch() polls
};

}  // namespace tollgate::agent
