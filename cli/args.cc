#include "cli/args.h"

#include <fmt/format.h>

#include <algorithm>

namespace tollgate::cli {

std::optional<std::string> Args::get(std::string_view name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

Result<Args> parseArgs(const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs) {
  Args args;
  auto byLong = [&](std::string_view n) -> const OptionSpec* {
    auto it = std::find_if(specs.begin(), specs.end(), [&](const auto& s) { return s.name == n; });
    return it == specs.end() ? nullptr : &*it;
  };
  auto byShort = [&](char c) -> const OptionSpec* {
    auto it = std::find_if(specs.begin(), specs.end(),
                           [&](const auto& s) { return s.shortName != 0 && s.shortName == c; });
    return it == specs.end() ? nullptr : &*it;
  };

  bool optionsDone = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (optionsDone || a.size() < 2 || a[0] != '-') {
      args.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      optionsDone = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      args.help = true;
      continue;
    }
    const OptionSpec* spec = nullptr;
    std::optional<std::string> inlineValue;
    std::string shown = a;
    if (a.starts_with("--")) {
      std::string_view body = std::string_view(a).substr(2);
      if (auto eq = body.find('='); eq != std::string_view::npos) {
        inlineValue = std::string(body.substr(eq + 1));
        body = body.substr(0, eq);
        shown = "--" + std::string(body);
      }
      spec = byLong(body);
    } else if (a.size() >= 2) {
      spec = byShort(a[1]);
      shown = a.substr(0, 2);
      if (a.size() > 2) inlineValue = a.substr(a[2] == '=' ? 3 : 2);  // -ojson, -o=json
    }
    if (spec == nullptr) return fail(fmt::format("unknown option {}", shown));
    std::string key(spec->name);
    if (args.values.contains(key)) return fail(fmt::format("option --{} given twice", key));
    if (!spec->takesValue) {
      if (inlineValue) return fail(fmt::format("option --{} takes no value", key));
      args.values[key] = "";
      continue;
    }
    if (inlineValue) {
      args.values[key] = *inlineValue;
    } else if (i + 1 < argv.size()) {
      args.values[key] = argv[++i];
    } else {
      return fail(fmt::format("option --{} needs a value ({})", key,
                              spec->valueName.empty() ? "VALUE" : spec->valueName));
    }
  }
  return args;
}

std::string formatOptions(const std::vector<OptionSpec>& specs) {
  std::string out = "Options:\n";
  for (const auto& s : specs) {
    std::string left = "  ";
    left += s.shortName != 0 ? fmt::format("-{}, ", s.shortName) : "    ";
    left += fmt::format("--{}", s.name);
    if (s.takesValue) left += fmt::format(" {}", s.valueName.empty() ? "VALUE" : s.valueName);
    out += fmt::format("{:<30} {}\n", left, s.help);
  }
  out += fmt::format("{:<30} {}\n", "  -h, --help", "show this help");
  return out;
}

}  // namespace tollgate::cli
