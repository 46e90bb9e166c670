#pragma once

// The one place tollgatectl parses command lines: "--name value", "--name=value", "-o value",
// boolean flags, "--" to end options, and --help/-h everywhere.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace tollgate::cli {

// Process exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitDenied = 1;   // check: the flow is denied
inline constexpr int kExitInvalid = 1;  // config validate: the configuration has errors
inline constexpr int kExitUsage = 2;    // bad flags, unreadable input, config that does not load

struct OptionSpec {
  std::string_view name;       // long name without "--"
  char shortName = 0;          // 'o' for -o; 0: none
  bool takesValue = true;      // false: a boolean flag
  std::string_view valueName;  // "DIR", for help
  std::string_view help;
};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string, std::less<>> values;  // flags map to ""
  bool help = false;

  bool has(std::string_view name) const { return values.contains(name); }
  std::optional<std::string> get(std::string_view name) const;
};

// Parses argv (without the program and command names) against `specs`. Unknown options, a
// missing value and an option given twice are errors.
Result<Args> parseArgs(const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs);

// The "Options:" block of a help text, one line per option.
std::string formatOptions(const std::vector<OptionSpec>& specs);

}  // namespace tollgate::cli
