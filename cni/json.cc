#include "cni/json.h"

#include <regex>

#include <fmt/format.h>

namespace tollgate::cni {

namespace {

// YAML reads an implicit (flow) key of at most 1024 characters: a longer key could be read once
// but not again after toJson() escaped it. No CNI or tollgate key comes close.
constexpr size_t kMaxKeyJsonBytes = 512;

Status checkKeys(const YAML::Node& node) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string& key = kv.first.Scalar();
      if (jsonQuote(key).size() > kMaxKeyJsonBytes) {
        return fail(fmt::format("invalid JSON: object key longer than {} bytes", kMaxKeyJsonBytes));
      }
      if (auto st = checkKeys(kv.second); !st) return st;
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) {
      if (auto st = checkKeys(item); !st) return st;
    }
  }
  return {};
}

}  // namespace

Result<YAML::Node> parseJsonObject(std::string_view text) {
  // JSON allows no raw control characters (RFC 8259: in strings they must be escaped; between
  // tokens only tab, LF and CR may appear, so those three are let through). YAML would take the
  // others, and their escaped form written back by toJson() is six times longer.
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      return fail(fmt::format("invalid JSON: control character 0x{:02x} at byte {}", c, i));
    }
  }
  YAML::Node node;
  try {
    node = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return fail(std::string("invalid JSON: ") + e.what());
  }
  if (!node.IsMap()) return fail("invalid JSON: expected an object at the top level");
  if (auto st = checkKeys(node); !st) return std::unexpected(st.error());
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
