#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <ostream>
#include <regex>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/load_config.h"
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

// Strings that a YAML reader would take for another type must be quoted to stay strings.
bool looksTyped(const std::string& s) {
  static const std::regex kTyped(
      R"(|~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|no|on|off|Yes|No|On|Off|)"
      R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|)"
      R"(0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\.inf|\.nan)");
  return std::regex_match(s, kTyped);
}

// Re-emits a node parsed from JSON as block YAML. JSON strings come back with tag "!" (quoted);
// keep them strings even when they look like numbers.
void emitYaml(YAML::Emitter& e, const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      e << YAML::BeginMap;
      for (const auto& kv : n) {
        e << YAML::Key << kv.first.Scalar() << YAML::Value;
        emitYaml(e, kv.second);
      }
      e << YAML::EndMap;
      return;
    case YAML::NodeType::Sequence:
      e << YAML::BeginSeq;
      for (const auto& item : n) emitYaml(e, item);
      e << YAML::EndSeq;
      return;
    case YAML::NodeType::Scalar:
      if (n.Tag() == "!" && looksTyped(n.Scalar())) {
        e << YAML::DoubleQuoted << n.Scalar();
      } else {
        e << n.Scalar();
      }
      return;
    default:
      e << YAML::Null;
  }
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

  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = format == "json";
  auto status =
      google::protobuf::util::MessageToJsonString(policy::toProto(loaded->config), &json, opts);
  if (!status.ok()) {
    err << "tollgatectl config dump: " << status.ToString() << "\n";
    return kExitUsage;
  }
  if (format == "json") {
    out << json;
    if (!json.ends_with("\n")) out << "\n";
    return kExitOk;
  }
  YAML::Emitter e;
  emitYaml(e, YAML::Load(json));
  out << e.c_str() << "\n";
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
