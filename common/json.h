#pragma once

#include <string>
#include <string_view>

namespace tollgate {

// JSON string escaping for the few places that write JSON by hand (access log, CNI results,
// tollgatectl -o json). Control characters become \uXXXX, so untrusted names (SNI, Host) can
// never break a line or a document.
std::string jsonEscape(std::string_view s);  // without quotes
std::string jsonQuote(std::string_view s);   // with quotes

}  // namespace tollgate
