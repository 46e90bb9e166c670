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

// Commands that ask the running agent over <run-dir>/admin.sock (root only); each takes
// [--run-dir DIR] [-o table|json|yaml]. Exit 0, or 2 with one line on stderr when the agent is
// not running, the socket is not ours to use, or the pod is unknown.
int statusCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int podsCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int rulesCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int certsCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int connsCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// tollgatectl log [NS/POD] [-f] [--tail N] [--kind K] [--count N]: the agent's event journal.
int logCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// tollgatectl learn [-n NS] [--duration D] [--history] [--out FILE]: ServiceEntries for what
// the pods tried (cli/learner.h).
// tollgatectl verify NS/POD [--target IP] [--target6 IP] [--uid UID]: every bypass vector from
// inside the pod; exit 1 when one got through or a defence is missing.
int verifyCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int learnCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace tollgate::cli
