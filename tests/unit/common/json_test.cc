#include "common/json.h"

#include <gtest/gtest.h>

namespace tollgate {
namespace {

TEST(Json, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(jsonEscape(std::string("a\x01\"\\", 4)), "a\\u0001\\\"\\\\");
  EXPECT_EQ(jsonEscape("line\nbreak\ttab\x7f"), "line\\nbreak\\ttab\\u007f");
}

TEST(Json, QuoteAddsQuotes) {
  EXPECT_EQ(jsonQuote("httpbin.test"), "\"httpbin.test\"");
  EXPECT_EQ(jsonQuote(""), "\"\"");
}

}  // namespace
}  // namespace tollgate
