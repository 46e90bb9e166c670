#pragma once

// Machine-readable output shared by tollgatectl commands: a protobuf message as JSON (proto3
// JSON mapping, field names in lowerCamelCase) or as block YAML made from that same JSON, so
// `-o json` and `-o yaml` always carry the same fields.

#include <google/protobuf/message.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "common/error.h"

namespace tollgate::cli {

Result<std::string> toJsonText(const google::protobuf::Message& m, bool pretty);
Result<std::string> toYamlText(const google::protobuf::Message& m);
// Block YAML for a node parsed from JSON text (quoted JSON strings stay strings).
void emitYaml(YAML::Emitter& e, const YAML::Node& n);

}  // namespace tollgate::cli
