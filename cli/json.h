#pragma once

#include <string>
#include <string_view>

namespace tollgate::cli {

// A JSON string literal, quotes included, control characters escaped.
std::string jsonQuote(std::string_view s);

}  // namespace tollgate::cli
