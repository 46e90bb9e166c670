#include "agent/install_cni_command.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <sstream>

#include "agent/cni_installer.h"
#include "cni/json.h"
#include "cni/plugin.h"
#include "common/log.h"

namespace tollgate::agent {

namespace {

constexpr std::string_view kInstall = "install-cni";
constexpr std::string_view kUninstall = "uninstall-cni";

struct CommandOptions {
  CniInstallerOptions installer;
  std::string socket = "/run/tollgate/cni.sock";
  std::string failMode = "closed";
  bool watch = false;
  bool help = false;
};

// The tollgate-cni shipped next to this executable (same image, same directory).
std::string defaultPluginPath() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "tollgate-cni";
  return (self.parent_path() / "tollgate-cni").string();
}

Result<CommandOptions> parse(const std::vector<std::string>& args, bool install) {
  CommandOptions o;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> value;
    if (auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    auto takeValue = [&]() -> Result<std::string> {
      if (value) return *value;
      if (i + 1 >= args.size()) return fail(flag + ": needs a value");
      return args[++i];
    };
    auto assign = [&](std::string& dst) -> Status {
      auto v = takeValue();
      if (!v) return std::unexpected(v.error());
      if (v->empty()) return fail(flag + ": must not be empty");
      dst = *v;
      return {};
    };
    Status s;
    if (flag == cni_flags::kCniBinDir) {
      s = assign(o.installer.cniBinDir);
    } else if (flag == cni_flags::kCniConfDir) {
      s = assign(o.installer.cniConfDir);
    } else if (flag == cni_flags::kPlugin) {
      s = assign(o.installer.pluginBinary);
    } else if (flag == cni_flags::kSocket) {
      s = assign(o.socket);
    } else if (flag == cni_flags::kFailMode) {
      s = assign(o.failMode);
      if (s && o.failMode != "closed" && o.failMode != "open") {
        s = fail(flag + ": must be \"closed\" or \"open\", got \"" + o.failMode + "\"");
      }
    } else if (flag == cni_flags::kWatch && install && !value) {
      o.watch = true;
    } else if (flag == cni_flags::kHelp && !value) {
      o.help = true;
    } else {
      s = fail("unknown flag for " + args[0] + ": " + args[i]);
    }
    if (!s) return std::unexpected(s.error());
  }
  if (o.installer.pluginBinary.empty()) o.installer.pluginBinary = defaultPluginPath();
  o.installer.pluginConfig = defaultPluginConfig(o.socket, o.failMode);
  return o;
}

// SIGTERM (pod deletion) and SIGINT end --watch; CniInstaller::stop() is async-signal-safe.
std::atomic<CniInstaller*> gWatching{nullptr};

void onSignal(int) {
  if (auto* installer = gWatching.load()) installer->stop();
}

void printInstall(const CniInstallReport& r, std::ostream& out) {
  if (!r.convertedFrom.empty())
    out << "converted " << r.convertedFrom << " into " << r.confFile << "\n";
  out << (r.confWritten ? "wrote " : "unchanged ") << r.confFile << "\n";
  if (r.binaryWritten) out << "installed plugin binary\n";
}

// The runtime hands every plugin of a list the list's cniVersion. One tollgate-cni does not
// accept fails every ADD (closed: no pod starts), so say so now rather than at the first pod.
void warnUnsupportedVersion(const std::string& confFile, std::ostream& err) {
  std::ifstream in(confFile, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  auto doc = cni::parseJsonObject(bytes.str());
  if (!doc || !(*doc)["cniVersion"] || !(*doc)["cniVersion"].IsScalar()) return;
  const std::string version = (*doc)["cniVersion"].Scalar();
  const auto& ok = cni::kSupportedVersions;
  if (std::find(ok.begin(), ok.end(), version) != ok.end()) return;
  err << "tollgate-agent install-cni: WARNING: " << confFile << " declares cniVersion " << version
      << "; tollgate-cni accepts " << cni::supportedVersionsText()
      << ", so every pod ADD will fail (closed) until the list's cniVersion is changed\n";
  log::warn("cni", "{}: cniVersion {} is not accepted by tollgate-cni: every pod ADD will fail",
            confFile, version);
}

}  // namespace

bool isCniInstallCommand(const std::string& arg) { return arg == kInstall || arg == kUninstall; }

std::string cniInstallUsage() {
  return "usage: tollgate-agent install-cni [--cni-bin-dir DIR] [--cni-conf-dir DIR] "
         "[--plugin PATH]\n"
         "                                 [--socket PATH] [--fail-mode closed|open] [--watch]\n"
         "       tollgate-agent uninstall-cni [--cni-bin-dir DIR] [--cni-conf-dir DIR] "
         "[--plugin PATH]\n"
         "  --cni-bin-dir   runtime's CNI plugin dir (default /opt/cni/bin)\n"
         "  --cni-conf-dir  runtime's CNI config dir (default /etc/cni/net.d)\n"
         "  --plugin        tollgate-cni binary to copy (default: next to this executable)\n"
         "  --socket        agent enrollment socket written into the plugin config\n"
         "                  (default /run/tollgate/cni.sock)\n"
         "  --fail-mode     closed (default): pods do not start while the agent is unreachable;\n"
         "                  open: they start WITHOUT egress control\n"
         "  --watch         keep the plugin chained while the primary CNI rewrites its config\n";
}

int runCniInstallCommand(const std::vector<std::string>& args, std::ostream& out,
                         std::ostream& err) {
  if (args.empty() || !isCniInstallCommand(args[0])) {
    err << "tollgate-agent: expected install-cni or uninstall-cni\n" << cniInstallUsage();
    return 2;
  }
  const bool install = args[0] == kInstall;
  auto options = parse(args, install);
  if (!options) {
    err << "tollgate-agent " << args[0] << ": " << options.error().str() << "\n"
        << cniInstallUsage();
    return 2;
  }
  if (options->help) {
    out << cniInstallUsage();
    return 0;
  }
  if (install && options->failMode == "open") {
    err << "tollgate-agent install-cni: WARNING: --fail-mode open: pods start WITHOUT egress "
           "control whenever the agent is unreachable\n";
  }

  CniInstaller installer(options->installer);
  if (!install) {
    auto r = installer.uninstall();
    if (!r) {
      err << "tollgate-agent uninstall-cni: " << r.error().str() << "\n";
      return 1;
    }
    for (const auto& f : r->filesRestored) out << "restored " << f << "\n";
    for (const auto& f : r->filesChanged) out << "removed tollgate-cni from " << f << "\n";
    if (r->binaryRemoved) out << "removed plugin binary\n";
    return 0;
  }

  // One pass first, so a one-shot run fails loudly and --watch starts from a known state.
  auto r = installer.install();
  if (!r) {
    err << "tollgate-agent install-cni: " << r.error().str() << "\n";
    if (!options->watch) return 1;
  } else {
    printInstall(*r, out);
    warnUnsupportedVersion(r->confFile, err);
  }
  if (!options->watch) return 0;
  out.flush();

  gWatching.store(&installer);
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction oldTerm {
  }, oldInt{};
  ::sigaction(SIGTERM, &sa, &oldTerm);
  ::sigaction(SIGINT, &sa, &oldInt);
  auto watched = installer.watch();
  ::sigaction(SIGTERM, &oldTerm, nullptr);
  ::sigaction(SIGINT, &oldInt, nullptr);
  gWatching.store(nullptr);
  if (!watched) {
    err << "tollgate-agent install-cni: " << watched.error().str() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace tollgate::agent
