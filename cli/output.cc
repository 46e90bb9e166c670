#include "cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <regex>

namespace tollgate::cli {
namespace {

// Strings that a YAML reader would take for another type must be quoted to stay strings.
bool looksTyped(const std::string& s) {
  static const std::regex kTyped(
      R"(|~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|no|on|off|Yes|No|On|Off|)"
      R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|)"
      R"(0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\.inf|\.nan)");
  return std::regex_match(s, kTyped);
}

}  // namespace

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

Result<std::string> toJsonText(const google::protobuf::Message& m, bool pretty) {
  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = pretty;
  auto status = google::protobuf::util::MessageToJsonString(m, &json, opts);
  if (!status.ok()) return fail(status.ToString());
  if (!json.ends_with("\n")) json += "\n";
  return json;
}

Result<std::string> toYamlText(const google::protobuf::Message& m) {
  auto json = toJsonText(m, false);
  if (!json) return json;
  YAML::Emitter e;
  emitYaml(e, YAML::Load(*json));
  return std::string(e.c_str()) + "\n";
}

}  // namespace tollgate::cli
