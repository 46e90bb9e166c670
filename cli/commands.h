#pragma once

// tollgatectl commands. Each takes its arguments (after the command words), writes its product to
// `out` and diagnostics to `err`, and returns the process exit code (see cli/args.h), so tests
// drive them exactly as the binary does.

#include <iosfwd>
#include <string>
#include <vector>

namespace tollgate::cli {

// The whole command line without the program name: {"check", "--from", ...}.
int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// tollgatectl check --config-dir DIR --from NS/POD DEST:PORT [--sni N | --host N]
//                   [--proto tcp|tls|http|udp] [-o json]
// Exit 0 allowed, 1 denied, 2 bad input.
int checkCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// tollgatectl config validate DIR | config dump DIR [-o yaml|json]
int configCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int configValidateCommand(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err);
int configDumpCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace tollgate::cli
