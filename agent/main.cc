// tollgate-agent: the node daemon (standalone mode). Everything lives in the tollgate_agent
// library; this file only dispatches: `install-cni` / `uninstall-cni`, else the daemon.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/install_cni_command.h"
#include "agent/options.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && tollgate::agent::isCniInstallCommand(args[0])) {
    return tollgate::agent::runCniInstallCommand(args, std::cout, std::cerr);
  }
  auto options = tollgate::agent::parseOptions(args);
  if (!options) {
    std::fprintf(stderr, "tollgate-agent: %s\n%s", options.error().str().c_str(),
                 tollgate::agent::usage().c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(tollgate::agent::usage().c_str(), stdout);
    return 0;
  }
  tollgate::agent::Agent agent(std::move(*options));
  return agent.run();
}
