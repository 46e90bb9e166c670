#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace tollgate::policy {

// Host names arrive from untrusted places (TLS SNI, HTTP Host, DNS questions) and from config.
// Both sides are normalised the same way before matching so that "API.Example.com.:443" and
// "api.example.com" are the same key. All functions here are pure and total: any byte string
// yields either a value or an error, never a crash.

// Lowercases, strips a ":port" suffix (and the brackets of "[v6]" / "[v6]:port"), strips one
// trailing dot, then validates: ASCII only, characters [a-z0-9-_.], labels 1..63 bytes, total
// <= 253 bytes. IP literals are accepted and returned in canonical text form ("2001:db8::1").
// "*" is rejected: a flow names one host, never a pattern.
Result<std::string> normalizeName(std::string_view raw);

// Like normalizeName but for registry hosts written in config: additionally accepts the
// match-all host "*" and a leading "*." wildcard label ("*.example.com"). No port is allowed.
Result<std::string> normalizeHostPattern(std::string_view raw);

// True when `text` is an IPv4 or IPv6 literal, with or without brackets ("[::1]").
bool isIpLiteral(std::string_view text);

}  // namespace tollgate::policy
