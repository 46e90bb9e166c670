// libFuzzer target for host name normalisation (policy/name.cc): any byte string gives a value or
// an error, never a crash; a normalised name is a fixed point, lowercase ASCII from the allowed
// set and at most 253 bytes; host patterns obey the same rules plus one leading "*." label.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/name.h"

using tollgate::policy::isIpLiteral;
using tollgate::policy::normalizeHostPattern;
using tollgate::policy::normalizeName;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool allowedChar(char c, bool ip) {
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.') {
    return true;
  }
  return ip && c == ':';
}

void checkNormalised(const std::string& n, bool allowWildcard) {
  check(!n.empty());
  check(n.size() <= 253);
  const bool ip = isIpLiteral(n);
  std::string_view body = n;
  if (allowWildcard && body == "*") return;
  if (allowWildcard && body.starts_with("*.")) body.remove_prefix(2);
  for (char c : body) check(allowedChar(c, ip));
  if (!ip) {
    check(body.front() != '.' && body.back() != '.');
    check(body.find("..") == std::string_view::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  if (auto n = normalizeName(in)) {
    checkNormalised(*n, /*allowWildcard=*/false);
    auto again = normalizeName(*n);
    check(again && *again == *n);
    // A name is also a valid (non-wildcard) host pattern, with the same normal form.
    auto pattern = normalizeHostPattern(*n);
    check(pattern && *pattern == *n);
  }

  if (auto p = normalizeHostPattern(in)) {
    checkNormalised(*p, /*allowWildcard=*/true);
    auto again = normalizeHostPattern(*p);
    check(again && *again == *p);
  }

  (void)isIpLiteral(in);
  return 0;
}
