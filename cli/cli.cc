#include <ostream>

#include "cli/args.h"
#include "cli/commands.h"

namespace tollgate::cli {
namespace {

constexpr std::string_view kUsage =
    "Usage: tollgatectl <command> [options]\n"
    "\n"
    "Offline commands (read a configuration directory, no agent needed):\n"
    "  check            decide one flow: tollgatectl check --config-dir DIR --from NS/POD "
    "DEST:PORT\n"
    "  config validate  load a configuration directory and report every error and warning\n"
    "  config dump      print the loaded configuration as YAML or JSON\n"
    "\n"
    "Agent commands (ask the running agent over <run-dir>/admin.sock; root only):\n"
    "  status           version, uptime, config generation, pods, gateways, identity, drift,\n"
    "                   denials, last errors\n"
    "  pods [-n NS]     enrolled pods: IPs, identity, rules ok/drift, connections, drops\n"
    "  rules NS/POD     the pod's nft table as installed, and whether it is what the agent\n"
    "                   expects\n"
    "  certs            SVIDs per service account: SPIFFE ID, serial, expiry, next rotation\n"
    "  conns [NS/POD]   open connections: destination, name, decision, route, bytes, age\n"
    "                   (--watch: again every second)\n"
    "  log [NS/POD]     the node's events: connections as they end, DNS names refused, QUIC\n"
    "                   attempts, drift (-f: follow)\n"
    "  learn [-n NS]    watch what pods try for --duration and print ServiceEntries to review\n"
    "  verify NS/POD    try every known way around the node from inside the pod and check\n"
    "                   that each was refused (exit 1 on a leak)\n"
    "  (each takes --run-dir DIR, default /run/tollgate, and -o table|json|yaml)\n"
    "\n"
    "Run 'tollgatectl <command> --help' for a command's options.\n"
    "Exit codes: 0 ok/allowed, 1 denied/invalid/leak found, 2 usage or input error, agent not running,\n"
    "permission denied, unknown pod.\n";

}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kUsage;
    return kExitUsage;
  }
  const std::string& cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    out << kUsage;
    return kExitOk;
  }
  if (cmd == "check") return checkCommand(rest, out, err);
  if (cmd == "config") return configCommand(rest, out, err);
  if (cmd == "status") return statusCommand(rest, out, err);
  if (cmd == "pods") return podsCommand(rest, out, err);
  if (cmd == "rules") return rulesCommand(rest, out, err);
  if (cmd == "certs") return certsCommand(rest, out, err);
  if (cmd == "conns") return connsCommand(rest, out, err);
  if (cmd == "log") return logCommand(rest, out, err);
  if (cmd == "learn") return learnCommand(rest, out, err);
  if (cmd == "verify") return verifyCommand(rest, out, err);
  err << "tollgatectl: unknown command \"" << cmd << "\"\n\n" << kUsage;
  return kExitUsage;
}

}  // namespace tollgate::cli
