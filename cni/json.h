#pragma once

// JSON in and out for the CNI plugin without a JSON library: JSON is YAML, so yaml-cpp parses it,
// and the emitter below writes strict JSON back (yaml-cpp's own emitter writes YAML flow style,
// which runtimes would reject). Quoted scalars stay strings; plain ones stay numbers/bools/null.

#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>

#include "common/error.h"
#include "common/json.h"

namespace tollgate::cni {

// Parses a JSON text; fails on syntax errors and on anything but an object at the top.
Result<YAML::Node> parseJsonObject(std::string_view text);

// Serialises a node parsed by parseJsonObject back to compact JSON, keeping key order.
std::string toJson(const YAML::Node& node);

// Same, pretty-printed the way `JSON.stringify(v, null, indent)` and Go's MarshalIndent do: one
// member per line, `"key": value`, empty containers as {} / []; no trailing newline.
std::string toJsonPretty(const YAML::Node& node, int indent = 2);

}  // namespace tollgate::cni
