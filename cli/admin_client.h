#pragma once

// What every tollgatectl command that asks the running agent shares: the request/reply exchange
// over <run-dir>/admin.sock with its one-line errors, and the common flags.

#include <cstddef>
#include <iosfwd>
#include <string>
#include <string_view>
#include <utility>

#include "cli/args.h"
#include "common/error.h"
#include "proto/admin.pb.h"

namespace tollgate::cli {

inline constexpr std::string_view kDefaultRunDir = "/run/tollgate";
inline const OptionSpec kRunDirOption = {"run-dir", 0, true, "DIR",
                                         "the agent's --run-dir (default /run/tollgate)"};
inline const OptionSpec kOutputOption = {"output", 'o', true, "FORMAT", "table (default), json or yaml"};

// One request, one reply. The error is the line the user needs: agent not running, permission
// denied, no answer, or the agent's own refusal (unknown pod...).
// `timeoutMs` bounds each read and write (a hang bound: verify probes for tens of seconds).
Result<admin::AdminReply> askAgent(const std::string& runDir, const admin::AdminRequest& req,
                                   int timeoutMs = 10000);

struct CommonOptions {
  std::string runDir;
  std::string format;  // table | json | yaml
};
// --run-dir and -o, checked.
Result<CommonOptions> commonOptions(const Args& a);

// "NAMESPACE/POD" -> {namespace, pod}.
Result<std::pair<std::string, std::string>> parsePodRef(const std::string& ref);
// A count flag's value: digits only, above 0 unless allowZero.
Result<size_t> parseCount(const std::string& text, std::string_view flag, bool allowZero);

// "tollgatectl <cmd>: <message>" on err; returns kExitUsage.
int failUsage(std::ostream& err, std::string_view cmd, const std::string& message);

}  // namespace tollgate::cli
