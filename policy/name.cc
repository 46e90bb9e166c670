#include "policy/name.h"

#include <fmt/format.h>

#include "policy/ip.h"

namespace tollgate::policy {
namespace {

constexpr size_t kMaxName = 253;
constexpr size_t kMaxLabel = 63;

// Printable form of untrusted bytes for error messages (no control bytes reach the logs).
std::string quoted(std::string_view raw) {
  std::string out;
  size_t n = std::min<size_t>(raw.size(), 80);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(raw[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (raw.size() > n) out += "...";
  return "\"" + out + "\"";
}

bool isDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool validPort(std::string_view s) {
  if (!isDigits(s) || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
  return v <= 65535;
}

// Validates a lowercased, port- and dot-stripped name. `allowWildcard`: a leading "*." label.
Result<std::string> validateLabels(std::string name, std::string_view raw, bool allowWildcard) {
  if (name.empty()) return fail(fmt::format("invalid name {}: empty", quoted(raw)));
  if (name.size() > kMaxName) {
    return fail(fmt::format("invalid name {}: longer than {} bytes", quoted(raw), kMaxName));
  }
  size_t start = 0;
  if (allowWildcard && name.size() >= 2 && name[0] == '*' && name[1] == '.') start = 2;
  size_t labelLen = 0;
  for (size_t i = start; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (labelLen == 0) return fail(fmt::format("invalid name {}: empty label", quoted(raw)));
      if (labelLen > kMaxLabel) {
        return fail(
            fmt::format("invalid name {}: label longer than {} bytes", quoted(raw), kMaxLabel));
      }
      labelLen = 0;
      continue;
    }
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) {
      return fail(fmt::format("invalid name {}: character {} not allowed", quoted(raw),
                              quoted(std::string_view(&name[i], 1))));
    }
    ++labelLen;
  }
  return name;
}

// Shared front half: ASCII check and lowercasing.
Result<std::string> lowerAscii(std::string_view raw) {
  if (raw.empty()) return fail("invalid name \"\": empty");
  std::string s(raw);
  for (char& c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80) return fail(fmt::format("invalid name {}: non-ASCII byte", quoted(raw)));
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace

bool isIpLiteral(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    auto a = IpAddress::parse(text.substr(1, text.size() - 2));
    return a && !a->isV4();
  }
  return IpAddress::parse(text).has_value();
}

Result<std::string> normalizeName(std::string_view raw) {
  auto lowered = lowerAscii(raw);
  if (!lowered) return std::unexpected(lowered.error());
  std::string_view s = *lowered;

  // "[v6]" or "[v6]:port": the brackets only exist to separate the port from the address.
  if (s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) {
      return fail(fmt::format("invalid name {}: unterminated '['", quoted(raw)));
    }
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && validPort(rest.substr(1)))) {
      return fail(fmt::format("invalid name {}: bad port after ']'", quoted(raw)));
    }
    auto a = IpAddress::parse(s.substr(1, close - 1));
    if (!a || a->isV4()) {
      return fail(fmt::format("invalid name {}: not an IPv6 literal in brackets", quoted(raw)));
    }
    return a->str();
  }

  size_t colon = s.find(':');
  if (colon != std::string_view::npos) {
    if (s.find(':', colon + 1) != std::string_view::npos) {
      // Two or more colons: a bare IPv6 literal (no port can be attached without brackets).
      auto a = IpAddress::parse(s);
      if (!a || a->isV4())
        return fail(fmt::format("invalid name {}: bad IPv6 literal", quoted(raw)));
      return a->str();
    }
    if (!validPort(s.substr(colon + 1))) {
      return fail(fmt::format("invalid name {}: bad port", quoted(raw)));
    }
    s = s.substr(0, colon);
  }
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return validateLabels(std::string(s), raw, /*allowWildcard=*/false);
}

Result<std::string> normalizeHostPattern(std::string_view raw) {
  auto lowered = lowerAscii(raw);
  if (!lowered) return std::unexpected(lowered.error());
  std::string s = std::move(*lowered);
  if (s == "*") return s;
  if (s.find(':') != std::string::npos) {
    auto a = IpAddress::parse(s);
    if (a && !a->isV4()) return a->str();
    return fail(fmt::format("invalid host {}: ports are not part of a host", quoted(raw)));
  }
  if (s.back() == '.') s.pop_back();
  return validateLabels(std::move(s), raw, /*allowWildcard=*/true);
}

}  // namespace tollgate::policy
