#include <fmt/format.h>

#include <ostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/load_config.h"
#include "cli/output.h"
#include "policy/config_proto.h"

namespace tollgate::cli {
namespace {

constexpr std::string_view kConfigUsage =
    "Usage: tollgatectl config validate DIR\n"
    "       tollgatectl config dump DIR [-o yaml|json]\n"
    "\n"
    "validate: load DIR (every *.yaml, *.yml, *.json below it) and print every error and\n"
    "          warning as file:line: object: field: message. Exit 0 valid, 1 invalid.\n"
    "dump:     print the loaded model (what tollgate understood) as YAML or JSON.\n";

const std::vector<OptionSpec> kValidateOptions = {};
const std::vector<OptionSpec> kDumpOptions = {
    {"output", 'o', true, "FORMAT", "yaml (default) or json"},
};

int usageError(std::ostream& err, std::string_view cmd, const std::string& message) {
  err << "tollgatectl " << cmd << ": " << message << "\n"
      << "Run 'tollgatectl config --help' for usage.\n";
  return kExitUsage;
}

struct KindCount {
  std::string_view kind;
  size_t count;
};

std::vector<KindCount> countKinds(const policy::Config& c) {
  return {{"ServiceEntry", c.serviceEntries.size()},
          {"DestinationRule", c.destinationRules.size()},
          {"Sidecar", c.sidecars.size()},
          {"NetworkPolicy", c.networkPolicies.size()},
          {"AuthorizationPolicy", c.authorizationPolicies.size()},
          {"Namespace", c.namespaces.size()},
          {"Pod", c.pods.size()},
          {"TollgateConfig", c.tollgate ? size_t{1} : size_t{0}}};
}

}  // namespace

int configValidateCommand(const std::vector<std::string>& argv, std::ostream& out,
                          std::ostream& err) {
  auto args = parseArgs(argv, kValidateOptions);
  if (!args) return usageError(err, "config validate", args.error().str());
  if (args->help) {
    out << kConfigUsage;
    return kExitOk;
  }
  if (args->positional.size() != 1) {
    return usageError(err, "config validate", "exactly one DIR expected");
  }
  const std::string& dir = args->positional[0];
  auto loaded = loadConfig(dir, out);
  if (!loaded) return kExitInvalid;
  for (const auto& w : loaded->warnings) out << w.str() << "\n";
  size_t total = 0;
  std::string parts;
  for (const auto& [kind, n] : countKinds(loaded->config)) {
    total += n;
    if (n == 0) continue;
    parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", n, kind);
  }
  // Cross-object rules (one default gateway, gateway annotations, ...) are checked at compile.
  auto snap = policy::Snapshot::compile(std::move(loaded->config));
  if (!snap) {
    out << dir << ": " << snap.error().str() << "\n";
    return kExitInvalid;
  }
  out << fmt::format("{} objects: {}", total, parts.empty() ? "none" : parts);
  if (!loaded->warnings.empty()) out << fmt::format(" ({} warnings)", loaded->warnings.size());
  out << "\n";
  return kExitOk;
}

int configDumpCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  auto args = parseArgs(argv, kDumpOptions);
  if (!args) return usageError(err, "config dump", args.error().str());
  if (args->help) {
    out << kConfigUsage << formatOptions(kDumpOptions);
    return kExitOk;
  }
  if (args->positional.size() != 1) {
    return usageError(err, "config dump", "exactly one DIR expected");
  }
  std::string format = args->get("output").value_or("yaml");
  if (format != "yaml" && format != "json") {
    return usageError(err, "config dump", fmt::format("-o \"{}\": expected yaml or json", format));
  }
  auto loaded = loadConfig(args->positional[0], err);
  if (!loaded) return kExitUsage;
  for (const auto& w : loaded->warnings) err << w.str() << "\n";

  auto proto = policy::toProto(loaded->config);
  auto text = format == "json" ? toJsonText(proto, true) : toYamlText(proto);
  if (!text) {
    err << "tollgatectl config dump: " << text.error().str() << "\n";
    return kExitUsage;
  }
  out << *text;
  return kExitOk;
}

int configCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  if (argv.empty()) {
    err << kConfigUsage;
    return kExitUsage;
  }
  std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (argv[0] == "--help" || argv[0] == "-h") {
    out << kConfigUsage;
    return kExitOk;
  }
  if (argv[0] == "validate") return configValidateCommand(rest, out, err);
  if (argv[0] == "dump") return configDumpCommand(rest, out, err);
  err << "tollgatectl config: unknown subcommand \"" << argv[0] << "\"\n\n" << kConfigUsage;
  return kExitUsage;
}

}  // namespace tollgate::cli
