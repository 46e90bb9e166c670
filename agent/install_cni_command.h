#pragma once

// `tollgate-agent install-cni` and `tollgate-agent uninstall-cni`: the CniInstaller as a
// subcommand, so the DaemonSet's init (or sidecar, with --watch) container runs the agent image.

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::agent {

namespace cni_flags {
inline constexpr std::string_view kCniBinDir = "--cni-bin-dir";
inline constexpr std::string_view kCniConfDir = "--cni-conf-dir";
inline constexpr std::string_view kPlugin = "--plugin";
inline constexpr std::string_view kSocket = "--socket";
inline constexpr std::string_view kFailMode = "--fail-mode";
inline constexpr std::string_view kWatch = "--watch";
inline constexpr std::string_view kHelp = "--help";
}  // namespace cni_flags

// True for "install-cni" and "uninstall-cni": main() dispatches on it.
bool isCniInstallCommand(const std::string& arg);

// args[0] is the subcommand ("install-cni" or "uninstall-cni"), the rest its flags, in the
// "--flag value" or "--flag=value" form. Returns the exit code: 0 done, 1 failed, 2 bad usage.
int runCniInstallCommand(const std::vector<std::string>& args, std::ostream& out,
                         std::ostream& err);

std::string cniInstallUsage();

}  // namespace tollgate::agent
