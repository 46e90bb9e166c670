#include "cni/json.h"

#include <regex>

namespace tollgate::cni {

Result<YAML::Node> parseJsonObject(std::string_view text) {
  YAML::Node node;
  try {
    node = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return fail(std::string("invalid JSON: ") + e.what());
  }
  if (!node.IsMap()) return fail("invalid JSON: expected an object at the top level");
  return node;
}

namespace {

bool isJsonLiteral(const std::string& s) {
  static const std::regex kNumber(R"(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
  return s == "true" || s == "false" || s == "null" || std::regex_match(s, kNumber);
}

void emit(const YAML::Node& node, std::string& out) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out += "null";
      return;
    case YAML::NodeType::Scalar: {
      const std::string& v = node.Scalar();
      // Tag "!" marks a quoted scalar: a JSON string even when it looks like a number.
      if (node.Tag() != "!" && isJsonLiteral(v)) {
        out += v;
      } else {
        out += jsonQuote(v);
      }
      return;
    }
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const auto& item : node) {
        if (!first) out += ',';
        first = false;
        emit(item, out);
      }
      out += ']';
      return;
    }
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& kv : node) {
        if (!first) out += ',';
        first = false;
        out += jsonQuote(kv.first.Scalar());
        out += ':';
        emit(kv.second, out);
      }
      out += '}';
      return;
    }
  }
}

void emitPretty(const YAML::Node& node, int indent, int depth, std::string& out) {
  const bool isMap = node.IsMap();
  if ((!isMap && !node.IsSequence()) || node.size() == 0) {
    if (isMap) {
      out += "{}";
    } else if (node.IsSequence()) {
      out += "[]";
    } else {
      emit(node, out);
    }
    return;
  }
  out += isMap ? '{' : '[';
  bool first = true;
  for (const auto& item : node) {
    if (!first) out += ',';
    first = false;
    out += '\n';
    out.append(static_cast<size_t>(indent * (depth + 1)), ' ');
    if (isMap) {
      out += jsonQuote(item.first.Scalar());
      out += ": ";
      emitPretty(item.second, indent, depth + 1, out);
    } else {
      emitPretty(item, indent, depth + 1, out);
    }
  }
  out += '\n';
  out.append(static_cast<size_t>(indent * depth), ' ');
  out += isMap ? '}' : ']';
}

}  // namespace

std::string toJson(const YAML::Node& node) {
  std::string out;
  emit(node, out);
  return out;
}

std::string toJsonPretty(const YAML::Node& node, int indent) {
  std::string out;
  emitPretty(node, indent, 0, out);
  return out;
}

}  // namespace tollgate::cni
